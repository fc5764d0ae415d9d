// What the CUDA runtime can use on this machine. The extension links the CUDA runtime statically
// and the driver (libcuda.so) is opened by it on first use, so these calls work, and say what is
// missing, on a machine with no driver or no GPU.
#pragma once
#include <cstddef>
#include <string>

namespace dropnet {
namespace cuda {

// Number of CUDA devices the runtime can use; 0 when there is no driver or no GPU.
int device_count();
// Empty when at least one device is usable; otherwise what is missing, for example
// "no CUDA driver: ..." or "no CUDA device: ...", with the runtime's own message.
std::string unavailable_reason();
// Free and total memory of `device` in bytes. Throws std::runtime_error naming what is missing
// (no driver, no device, device out of range).
void mem_get_info(int device, std::size_t* free_bytes, std::size_t* total_bytes);

}  // namespace cuda
}  // namespace dropnet

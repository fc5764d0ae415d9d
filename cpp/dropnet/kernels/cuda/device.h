// What the CUDA runtime can use on this machine. The extension links the CUDA runtime statically
// and the driver (libcuda.so) is opened by it on first use, so these calls work, and say what is
// missing, on a machine with no driver or no GPU.
#pragma once
#include <cstddef>
#include <cstdint>
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

// Makes `device` current for the calls in its scope and restores the previous one after, so a
// kernel launched from Python runs on the device its arrays live on.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device);
  ~ScopedDevice();
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;

 private:
  int previous_ = 0;
};

// Device memory from the stream-ordered allocator (cudaMallocAsync on the legacy default stream,
// which every kernel here runs on), so freed blocks are reused without a hand-written pool.
// A failed allocation throws std::runtime_error saying how many bytes were asked for and how many
// are free on the device. bytes == 0 gives nullptr.
void* device_alloc(std::size_t bytes, int device);
// Stream-ordered free of a device_alloc block; never throws (it runs from destructors).
void device_free(void* ptr, int device) noexcept;
// The device a pointer's memory lives on; throws std::runtime_error when it is not CUDA device
// or managed memory (a host pointer, or one the runtime does not know).
int pointer_device(const void* ptr);
// Copies on the legacy default stream, synchronous with respect to the host.
void copy_to_device(void* dst, const void* host_src, std::size_t bytes, int device);
void copy_to_host(void* host_dst, const void* src, std::size_t bytes, int device);
void copy_device(void* dst, const void* src, std::size_t bytes, int device);
// Waits for the work queued on the legacy default stream of `device`, and for `stream` when it
// is not 0 (a consumer's stream from __cuda_array_interface__ or __dlpack__).
void synchronize(int device, std::uintptr_t stream = 0);

}  // namespace cuda
}  // namespace dropnet

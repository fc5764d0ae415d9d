// The CUDA stream a launch is queued on, named without the CUDA headers (so nn/ and the bindings
// compile without the toolkit): cudaStream_t is `CUstream_st*`, and a null Stream is the default
// stream, as in the CUDA runtime.
#pragma once

struct CUstream_st;

namespace dropnet {
namespace cuda {

using Stream = CUstream_st*;

}  // namespace cuda
}  // namespace dropnet

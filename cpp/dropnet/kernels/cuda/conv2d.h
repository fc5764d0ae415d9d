// CUDA twins of the 2-D convolution (kernels/cpu/conv2d.h): the same contract (NCHW, weights
// F × C/groups × kh × kw, stride, asymmetric padding, dilation, groups; y = act(conv(x, w) + bias);
// dx overwritten, dw and db ACCUMULATED) with *device* pointers, the geometry as a ConvShape
// (kernels/cuda/conv2d_body.h; conv_shape(cpu_geometry) converts) and a stream (null: the default
// stream). Asynchronous; std::runtime_error naming the call when a launch fails, ValueError for a
// bad geometry or a short scratch buffer. Implicit GEMM, no im2col buffer: layouts and orders in
// kernels/cuda/conv2d_body.h. The forward needs no workspace; the backward takes a device scratch
// of conv2d_backward_workspace() floats for the weight gradient's chunk sums.
//
// Bits: every output is one fmaf chain over its reduction in a fixed order (the weight gradient:
// fixed chunks added in order), so a run repeats its bytes on any GPU, but the CPU blocks its
// GEMM (and takes Winograd for some layers) differently: the two agree within the tolerance of
// docs/design.md, "Device kernels". The epilogue (bias, activation) is the CPU's element function.
//
// Backends (kernels/cuda/conv_backend.h): conv2d_forward / conv2d_backward run our implicit GEMM
// above (the default) or cuDNN (set_conv_backend, DROPNET_CUDA_CONV=cudnn), with the same
// contract; conv2d_forward_cudnn / conv2d_backward_cudnn call cuDNN whatever the choice.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

#include "dropnet/core/epilogue.h"
#include "dropnet/kernels/cuda/conv2d_body.h"
#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

void conv2d_forward(const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F, const float* bias,
                    Activation activation, float leaky_slope, float* y, Stream cuda_stream = nullptr);

// Floats of device scratch conv2d_backward needs (the weight gradient's per-chunk sums).
int64_t conv2d_backward_workspace(const ConvShape& g, int64_t N, int64_t F);

// dy: N × F × OH × OW (before any activation). dx (optional) overwritten; dw (F × C/groups × kh × kw)
// and db (F, optional) ACCUMULATED (+=). workspace: device scratch, at least
// conv2d_backward_workspace(g, N, F) floats.
void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F,
                     float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats,
                     Stream cuda_stream = nullptr);

// The argument checks every entry makes first (ValueError naming `what`): at least one channel and
// filter, groups dividing both, kernel, stride and dilation >= 1.
void check_conv_shape(const ConvShape& g, int64_t N, int64_t F, const char* what);

// Through cuDNN (kernels/cuda/conv2d_cudnn.cu), whatever the backend: the same contract as
// conv2d_forward / conv2d_backward (the backward needs no caller workspace: cuDNN's comes from
// cudaMallocAsync on the stream). Deterministic FP32 algorithms: the same bytes run to run on one
// GPU model and cuDNN version, within the float32 bound of the sums
// (docs/design.md, "Device kernels"). Checks, before any CUDA call: the geometry (ValueError), a
// geometry cuDNN cannot express (ValueError, cudnn_conv_unsupported), cuDNN missing
// (std::runtime_error naming the sonames tried, cudnn_unavailable_reason).
void conv2d_forward_cudnn(const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F,
                          const float* bias, Activation activation, float leaky_slope, float* y,
                          Stream cuda_stream = nullptr);
void conv2d_backward_cudnn(const float* dy, const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F,
                           float* dx, float* dw, float* db, Stream cuda_stream = nullptr);

}  // namespace cuda
}  // namespace dropnet

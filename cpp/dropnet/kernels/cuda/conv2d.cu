// CUDA convolution: the three implicit-GEMM passes are one block program
// (conv_gemm_block, kernels/cuda/conv2d_body.h) run by DeviceBlock with the tile's operands in
// static shared memory and each thread's 16 accumulators in registers, plus a grid-stride kernel
// that adds the weight gradient's chunks in order. Compiled with --fmad=false --ftz=true (the
// CPU's floating-point rules); the chains are written as fmaf.
#include "dropnet/core/error.h"
#include "dropnet/kernels/cuda/conv2d.h"
#include "dropnet/kernels/cuda/conv_backend.h"
#include "dropnet/kernels/cuda/launch.cuh"

namespace dropnet {
namespace cuda {
namespace {

template <class Op>
__global__ void __launch_bounds__(kConvThreads) conv_gemm_kernel(Op op, ConvGemmLayout L) {
  __shared__ float shared[kConvSharedFloats];
  DeviceBlock blk;
  DeviceThreadArray<float, kConvAccumulators> regs;
  conv_gemm_block(blk, op, L, shared, regs);
}

__global__ void conv_weight_grad_reduce_kernel(ConvWeightGradReduceArgs a, Grid g) {
  conv_weight_grad_reduce_thread(a, g, blockIdx.x, threadIdx.x);
}

template <class Op>
void launch_gemm(const Op& op, const ConvGemmLayout& L, Stream cuda_stream, const char* what) {
  if (L.tiles() <= 0) return;
  const Grid g = conv_grid(L);
  conv_gemm_kernel<Op><<<g.blocks, g.threads, 0, cuda_stream>>>(op, L);
  check_launch(what);
}

// cuDNN takes the call when it is the backend and can express the geometry; an empty problem or a
// geometry it cannot express runs here (conv_backend.h).
bool cudnn_takes(const ConvShape& g, int64_t N, int64_t F) {
  return conv_backend() == ConvBackend::cudnn && N > 0 && g.OH > 0 && g.OW > 0 &&
         cudnn_conv_unsupported(g, N, F).empty();
}

void check_workspace(const ConvShape& g, int64_t N, int64_t F, const float* workspace, int64_t workspace_floats) {
  const int64_t need = conv_weight_grad_scratch(g, N, F);
  DROPNET_CHECK(workspace != nullptr && workspace_floats >= need, "conv2d_backward: workspace must hold ", need,
                " floats (conv2d_backward_workspace), got ", workspace_floats);
}

}  // namespace

void check_conv_shape(const ConvShape& g, int64_t N, int64_t F, const char* what) {
  DROPNET_CHECK(g.C >= 1 && F >= 1, what, ": needs at least 1 input channel and 1 filter, got ", g.C, " and ", F);
  DROPNET_CHECK(g.groups >= 1 && g.C % g.groups == 0 && F % g.groups == 0, what, ": groups = ", g.groups,
                " must divide the input channels (", g.C, ") and the filters (", F, ")");
  DROPNET_CHECK(N >= 0 && g.kh >= 1 && g.kw >= 1 && g.stride_h >= 1 && g.stride_w >= 1 && g.dil_h >= 1 &&
                    g.dil_w >= 1 && g.OH >= 0 && g.OW >= 0,
                what, ": kernel, stride and dilation must be >= 1, got kernel ", g.kh, "x", g.kw, ", stride ",
                g.stride_h, "x", g.stride_w, ", dilation ", g.dil_h, "x", g.dil_w);
}

void conv2d_forward(const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F, const float* bias,
                    Activation activation, float leaky_slope, float* y, Stream cuda_stream) {
  check_conv_shape(g, N, F, "conv2d_forward");
  if (cudnn_takes(g, N, F)) {
    conv2d_forward_cudnn(x, N, g, w, F, bias, activation, leaky_slope, y, cuda_stream);
    return;
  }
  const ConvForwardArgs a{x, w, bias, y, g, N, F, activation, leaky_slope};
  launch_gemm(ConvForwardOp{a}, conv_forward_layout(g, N, F), cuda_stream, "conv2d_forward");
}

int64_t conv2d_backward_workspace(const ConvShape& g, int64_t N, int64_t F) {
  check_conv_shape(g, N, F, "conv2d_backward_workspace");
  return conv_weight_grad_scratch(g, N, F);
}

void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F,
                     float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats,
                     Stream cuda_stream) {
  check_conv_shape(g, N, F, "conv2d_backward");
  if (cudnn_takes(g, N, F)) {  // the caller's workspace is checked as for ours: one contract for both
    if (dw) check_workspace(g, N, F, workspace, workspace_floats);
    conv2d_backward_cudnn(dy, x, N, g, w, F, dx, dw, db, cuda_stream);
    return;
  }
  if (dx) launch_gemm(ConvInputGradOp{dy, w, dx, g, N, F}, conv_input_grad_layout(g, N, F), cuda_stream,
                      "conv2d_backward (input gradient)");
  if (!dw && !db) return;
  DROPNET_CHECK(dw != nullptr, "conv2d_backward: a bias gradient needs the weight gradient dw too");
  const ConvGemmLayout L = conv_weight_grad_layout(g, N, F, db != nullptr);
  if (L.tiles() <= 0) return;  // no output pixel: nothing adds to dw or db
  check_workspace(g, N, F, workspace, workspace_floats);
  launch_gemm(ConvWeightGradOp{dy, x, workspace, g, N, F}, L, cuda_stream, "conv2d_backward (weight gradient)");
  const ConvWeightGradReduceArgs r{workspace, L.splits, F, conv_reduction(g), dw, db};
  const Grid gr = grid_for(F * (conv_reduction(g) + 1));
  conv_weight_grad_reduce_kernel<<<gr.blocks, gr.threads, 0, cuda_stream>>>(r, gr);
  check_launch("conv2d_backward (weight gradient chunks)");
}

}  // namespace cuda
}  // namespace dropnet

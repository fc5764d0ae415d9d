// The convolution's backend choice (conv_backend.h).
#include "dropnet/kernels/cuda/conv_backend.h"

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace dropnet {
namespace cuda {
namespace {

std::atomic<int> g_conv_backend{-1};  // -1: not chosen yet (read DROPNET_CUDA_CONV)

// cuDNN's output extent of one axis with the same pad on both sides (cudnnGetConvolution2dForwardOutputDim).
int64_t symmetric_extent(int64_t in, int64_t pad, int64_t k, int64_t dil, int64_t stride) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

}  // namespace

ConvBackend parse_conv_backend(const char* v) {
  if (!v || !*v || std::strcmp(v, "implicit_gemm") == 0) return ConvBackend::implicit_gemm;
  if (std::strcmp(v, "cudnn") == 0) return ConvBackend::cudnn;
  throw std::invalid_argument(std::string("DROPNET_CUDA_CONV: expected 'implicit_gemm' or 'cudnn', got '") + v + "'");
}

void set_conv_backend(ConvBackend backend) { g_conv_backend.store(static_cast<int>(backend)); }

ConvBackend conv_backend() {
  int b = g_conv_backend.load();
  if (b < 0) {
    const int from_env = static_cast<int>(parse_conv_backend(std::getenv("DROPNET_CUDA_CONV")));
    g_conv_backend.compare_exchange_strong(b, from_env);
    b = g_conv_backend.load();
  }
  return static_cast<ConvBackend>(b);
}

const char* conv_backend_name(ConvBackend backend) {
  return backend == ConvBackend::cudnn ? "cudnn" : "implicit_gemm";
}

std::string cudnn_conv_unsupported(const ConvShape& g, int64_t N, int64_t F) {
  const int64_t oh = symmetric_extent(g.H, g.pad_top, g.kh, g.dil_h, g.stride_h);
  const int64_t ow = symmetric_extent(g.W, g.pad_left, g.kw, g.dil_w, g.stride_w);
  if (oh != g.OH || ow != g.OW)
    return "cuDNN pads symmetrically: padding " + std::to_string(g.pad_top) + " x " + std::to_string(g.pad_left) +
           " on both sides gives a " + std::to_string(oh) + "x" + std::to_string(ow) + " output, the geometry's is " +
           std::to_string(g.OH) + "x" + std::to_string(g.OW);
  for (int64_t v : {N, F, g.C, g.H, g.W, g.OH, g.OW, N * g.C * g.H * g.W, N * F * g.OH * g.OW})
    if (v > INT_MAX) return "a size or element count past cuDNN's int: " + std::to_string(v);
  return std::string();
}

}  // namespace cuda
}  // namespace dropnet

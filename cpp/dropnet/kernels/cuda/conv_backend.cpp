// The convolution's backend choice (conv_backend.h).
#include "dropnet/kernels/cuda/conv_backend.h"

#include <climits>
#include <string>

#include "dropnet/kernels/cuda/libraries.h"

namespace dropnet {
namespace cuda {
namespace {

LibraryChoice& conv_choice() {
  static LibraryChoice choice("DROPNET_CUDA_CONV", "implicit_gemm", "cudnn");
  return choice;
}

// cuDNN's output extent of one axis with the same pad on both sides (cudnnGetConvolution2dForwardOutputDim).
int64_t symmetric_extent(int64_t in, int64_t pad, int64_t k, int64_t dil, int64_t stride) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

}  // namespace

ConvBackend parse_conv_backend(const char* v) { return static_cast<ConvBackend>(conv_choice().parse(v)); }

void set_conv_backend(ConvBackend backend) { conv_choice().set(static_cast<int>(backend)); }

ConvBackend conv_backend() { return static_cast<ConvBackend>(conv_choice().get()); }

const char* conv_backend_name(ConvBackend backend) { return conv_choice().name(static_cast<int>(backend)); }

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

// The geometry of a 2-D convolution over NCHW images, shared by the CPU kernels
// (kernels/cpu/conv2d.h, im2col.h), the kernel interface (kernels/backend.h) and, through
// cuda::conv_shape, the CUDA twin. Output size as PyTorch:
//   OH = (H + pad_top + pad_bottom - dil_h * (kh - 1) - 1) / stride_h + 1   (same for W);
// only the leading pads move the window, the trailing ones only enter OH / OW.
#pragma once
#include <cstdint>

namespace dropnet {

// groups > 1 splits the C input channels and the F filters into `groups` equal sets; filter set g
// sees only channel set g (groups = C: depthwise). im2col / col2im work on one channel set.
struct ConvGeometry {
  int64_t C = 0, H = 0, W = 0;     // input channels (all groups) and plane
  int64_t groups = 1;
  int64_t kh = 1, kw = 1;          // kernel
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t OH = 0, OW = 0;          // output plane (computed by the caller from all four pads)

  int64_t group_channels() const { return C / groups; }
  int64_t col_rows() const { return group_channels() * kh * kw; }  // K of the GEMM
  int64_t col_cols() const { return OH * OW; }                     // P: output pixels of one image
};

}  // namespace dropnet

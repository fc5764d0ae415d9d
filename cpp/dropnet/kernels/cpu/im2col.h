// im2col / col2im for one NCHW image: the data movement that turns a 2-D convolution into a GEMM.
// Geometry follows PyTorch: weights (F, C, kh, kw), output size
//   OH = (H + pad_top + pad_bottom - dil_h * (kh - 1) - 1) / stride_h + 1   (same for W).
// Padding may be asymmetric ("same" with an even kernel pads one more at the end); only the
// leading pads move the window, the trailing ones only enter OH / OW.
#pragma once
#include <cstdint>

#include "dropnet/core/conv_geometry.h"

namespace dropnet {
namespace cpu {

using dropnet::ConvGeometry;  // core/conv_geometry.h

// x: Cg × H × W (one channel set of one image, Cg = group_channels()).
// cols: (Cg·kh·kw) × (OH·OW), row r = (c·kh + i)·kw + j holds
// x[c, oh·sh - pt + i·dh, ow·sw - pl + j·dw] (0 outside the image), rows ldc floats apart.
// Per row the valid ow range is computed once, so the inner loops are a zero fill, a strided
// (or contiguous for stride 1) copy and a zero fill: no bounds test per element.
void im2col(const float* x, const ConvGeometry& g, float* cols, int64_t ldc);

// Adjoint of im2col (x: Cg × H × W): x = 0, then x[c, ih, iw] += cols[r, p] for every (r, p) in im2col's order
// (rows ascending, pixels ascending), so overlapping windows sum in a fixed order. x overwritten.
void col2im(const float* cols, int64_t ldc, const ConvGeometry& g, float* x);

}  // namespace cpu
}  // namespace dropnet

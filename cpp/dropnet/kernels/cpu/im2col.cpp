#include "dropnet/kernels/cpu/im2col.h"

#include <algorithm>
#include <cstring>

namespace dropnet {
namespace cpu {

namespace {
// Output columns ow whose input column iw = ow·stride + offset lies in [0, W): [lo, hi).
inline void valid_range(int64_t offset, int64_t stride, int64_t W, int64_t OW, int64_t* lo, int64_t* hi) {
  // iw >= 0  <=>  ow >= ceil(-offset / stride);  iw < W  <=>  ow <= floor((W - 1 - offset) / stride)
  int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t last = W - 1 - offset < 0 ? -1 : (W - 1 - offset) / stride;
  *lo = std::min(first, OW);
  *hi = std::max(*lo, std::min(last + 1, OW));
}
}  // namespace

namespace {
// Unit strides and OW == W ("same" padding): a column row is the plane shifted by
// (i·dh - pt) rows and col_off columns, so rows oh_lo..oh_hi-1 are ONE contiguous copy from the
// plane (it stays inside the plane: it starts at a valid cell and ends at one), after which the
// 0-2 cells per row that wrapped into the neighbouring input row are set to 0.
void im2col_same_unit_stride(const float* x, const ConvGeometry& g, float* cols, int64_t ldc) {
  const int64_t HW = g.H * g.W, OW = g.OW;
  for (int64_t c = 0; c < g.group_channels(); ++c) {
    const float* plane = x + c * HW;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        float* row = cols + ((c * g.kh + i) * g.kw + j) * ldc;
        const int64_t row_off = i * g.dil_h - g.pad_top, col_off = j * g.dil_w - g.pad_left;
        int64_t lo, hi, oh_lo, oh_hi;
        valid_range(col_off, 1, g.W, OW, &lo, &hi);
        valid_range(row_off, 1, g.H, g.OH, &oh_lo, &oh_hi);
        std::memset(row, 0, sizeof(float) * oh_lo * OW);
        std::memset(row + oh_hi * OW, 0, sizeof(float) * (g.OH - oh_hi) * OW);
        if (oh_lo == oh_hi || lo == hi) {
          std::memset(row + oh_lo * OW, 0, sizeof(float) * (oh_hi - oh_lo) * OW);
          continue;
        }
        const int64_t first = oh_lo * OW + lo, last = (oh_hi - 1) * OW + hi;  // [first, last) in row
        std::memcpy(row + first, plane + (oh_lo + row_off) * g.W + lo + col_off, sizeof(float) * (last - first));
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          float* out = row + oh * OW;
          for (int64_t ow = 0; ow < lo; ++ow) out[ow] = 0.f;
          for (int64_t ow = hi; ow < OW; ++ow) out[ow] = 0.f;
        }
      }
  }
}
}  // namespace

void im2col(const float* x, const ConvGeometry& g, float* cols, int64_t ldc) {
  if (g.stride_h == 1 && g.stride_w == 1 && g.OW == g.W) return im2col_same_unit_stride(x, g, cols, ldc);
  const int64_t HW = g.H * g.W;
  for (int64_t c = 0; c < g.group_channels(); ++c) {
    const float* plane = x + c * HW;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        float* row = cols + ((c * g.kh + i) * g.kw + j) * ldc;
        const int64_t col_off = j * g.dil_w - g.pad_left;
        int64_t lo, hi;
        valid_range(col_off, g.stride_w, g.W, g.OW, &lo, &hi);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          float* out = row + oh * g.OW;
          const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dil_h;
          if (ih < 0 || ih >= g.H) {
            std::memset(out, 0, sizeof(float) * g.OW);
            continue;
          }
          const float* in = plane + ih * g.W;  // input column of ow: ow·s + col_off
          for (int64_t ow = 0; ow < lo; ++ow) out[ow] = 0.f;
          if (g.stride_w == 1) {  // a loop, not memcpy: rows are short (14, 28 floats) and a call costs more
            const float* src = in + col_off;
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] = src[ow];
          } else {
            const int64_t s = g.stride_w;
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] = in[ow * s + col_off];
          }
          for (int64_t ow = hi; ow < g.OW; ++ow) out[ow] = 0.f;
        }
      }
  }
}

void col2im(const float* cols, int64_t ldc, const ConvGeometry& g, float* x) {
  const int64_t HW = g.H * g.W;
  std::memset(x, 0, sizeof(float) * g.group_channels() * HW);
  for (int64_t c = 0; c < g.group_channels(); ++c) {
    float* plane = x + c * HW;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* row = cols + ((c * g.kh + i) * g.kw + j) * ldc;
        const int64_t col_off = j * g.dil_w - g.pad_left;
        int64_t lo, hi;
        valid_range(col_off, g.stride_w, g.W, g.OW, &lo, &hi);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dil_h;
          if (ih < 0 || ih >= g.H) continue;
          const float* in = row + oh * g.OW;
          float* out = plane + ih * g.W;
          const int64_t s = g.stride_w;
          for (int64_t ow = lo; ow < hi; ++ow) out[ow * s + col_off] += in[ow];
        }
      }
  }
}

}  // namespace cpu
}  // namespace dropnet

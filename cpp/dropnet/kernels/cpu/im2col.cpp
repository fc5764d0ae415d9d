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

void im2col(const float* x, const ConvGeometry& g, float* cols, int64_t ldc) {
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
          if (g.stride_w == 1) {
            std::memcpy(out + lo, in + lo + col_off, sizeof(float) * (hi - lo));
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

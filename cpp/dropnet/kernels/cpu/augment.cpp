#include "dropnet/kernels/cpu/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dropnet/core/parallel.h"
#include "dropnet/core/philox.h"

namespace dropnet {
namespace cpu {

namespace {
// [0, m) from a 32-bit word: the high half of word · m.
inline int64_t draw_below(uint32_t word, int64_t m) {
  return static_cast<int64_t>((static_cast<uint64_t>(word) * static_cast<uint64_t>(m)) >> 32);
}
}  // namespace

void augment_images(const float* x, float* y, int64_t n, int64_t c, int64_t h, int64_t w, const AugmentSpec& spec,
                    uint64_t seed, uint64_t stream, uint64_t first_sample) {
  const int64_t plane = h * w, image = c * plane;
  const uint32_t erase_threshold = spec.erase_p > 0.0 ? keep_threshold(1.0 - spec.erase_p) : 0;
  const int64_t eh_max = std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(h) * spec.erase_max)));
  const int64_t ew_max = std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(w) * spec.erase_max)));
  // Samples are independent: each thread owns whole output images.
  parallel_ranges(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const uint64_t g = first_sample + static_cast<uint64_t>(i);
      const philox::Words a = philox::stream_block(seed, stream, 2 * g);
      const philox::Words b = philox::stream_block(seed, stream, 2 * g + 1);
      const int64_t dy = spec.pad > 0 ? draw_below(a.v[0], 2 * spec.pad + 1) - spec.pad : 0;
      const int64_t dx = spec.pad > 0 ? draw_below(a.v[1], 2 * spec.pad + 1) - spec.pad : 0;
      const bool flip = spec.flip && a.v[2] < 0x80000000u;
      const float* xi = x + i * image;
      float* yi = y + i * image;
      // Output (r, col) reads input (r + dy, src_col + dx), src_col = flip ? w - 1 - col : col; zero outside.
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* xp = xi + ch * plane;
        float* yp = yi + ch * plane;
        for (int64_t r = 0; r < h; ++r) {
          const int64_t sr = r + dy;
          float* yrow = yp + r * w;
          if (sr < 0 || sr >= h) {
            std::fill(yrow, yrow + w, 0.f);
            continue;
          }
          const float* xrow = xp + sr * w;
          for (int64_t col = 0; col < w; ++col) {
            const int64_t sc = (flip ? w - 1 - col : col) + dx;
            yrow[col] = (sc >= 0 && sc < w) ? xrow[sc] : 0.f;
          }
        }
      }
      if (spec.erase_p > 0.0 && a.v[3] < erase_threshold) {
        const int64_t eh = 1 + draw_below(b.v[0], eh_max), ew = 1 + draw_below(b.v[1], ew_max);
        const int64_t top = draw_below(b.v[2], h - eh + 1), left = draw_below(b.v[3], w - ew + 1);
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t r = top; r < top + eh; ++r) std::fill(yi + ch * plane + r * w + left, yi + ch * plane + r * w + left + ew, 0.f);
      }
    }
  });
}

}  // namespace cpu
}  // namespace dropnet

// avx2 unit of the Winograd transforms: the shared bodies, auto-vectorised under this file's
// flags, with row movers on masked loads / stores (no read or write past a row) and shuffles.
#include <immintrin.h>

#include "dropnet/kernels/cpu/conv2d_winograd_body.h"
#include "dropnet/kernels/cpu/vec_avx2.h"

namespace dropnet {
namespace cpu {
namespace {

struct Avx2Rows {
  static void deinterleave(const float* src, int64_t src_stride, int64_t rows, int64_t n_even, int64_t n_odd,
                           float* even, float* odd, int64_t dst_stride) {
    const int64_t n_src = std::max(2 * n_even - 1, 2 * n_odd);
    for (int64_t j = 0; j < std::max(n_even, n_odd); j += 8) {
      const int64_t s0 = 2 * j;
      const __m256i la = first_lanes8(n_src - s0), lb = first_lanes8(n_src - s0 - 8);
      const __m256i se = first_lanes8(n_even - j), so = first_lanes8(n_odd - j);
      for (int64_t r = 0; r < rows; ++r) {
        const float* s = src + r * src_stride + s0;
        const __m256 a = _mm256_maskload_ps(s, la);
        const __m256 b = _mm256_maskload_ps(s + 8, lb);
        // within 128-bit lanes: [a0 a2 b0 b2 | a4 a6 b4 b6], then order the 64-bit pairs
        const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);
        _mm256_maskstore_ps(even + r * dst_stride + j, se,
                            _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
        _mm256_maskstore_ps(odd + r * dst_stride + j, so,
                            _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
      }
    }
  }
  static void interleave(const float* even, const float* odd, int64_t src_stride, int64_t rows, int64_t n, float* out,
                         int64_t out_stride) {
    const int64_t n_even = (n + 1) / 2, n_odd = n / 2;
    for (int64_t j = 0; j < n_even; j += 8) {
      const __m256i le = first_lanes8(n_even - j), lo = first_lanes8(n_odd - j);
      const __m256i s_lo = first_lanes8(n - 2 * j), s_hi = first_lanes8(n - 2 * j - 8);
      for (int64_t r = 0; r < rows; ++r) {
        const __m256 e = _mm256_maskload_ps(even + r * src_stride + j, le);
        const __m256 o = _mm256_maskload_ps(odd + r * src_stride + j, lo);
        const __m256 l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);  // [e0 o0 e1 o1 | e4 o4 e5 o5], ...
        float* d = out + r * out_stride + 2 * j;
        _mm256_maskstore_ps(d, s_lo, _mm256_permute2f128_ps(l, h, 0x20));
        _mm256_maskstore_ps(d + 8, s_hi, _mm256_permute2f128_ps(l, h, 0x31));
      }
    }
  }
};

}  // namespace

WinogradTransforms winograd_transforms_avx2(int64_t tile) { return winograd_transforms_any<Avx2Rows>(tile); }

}  // namespace cpu
}  // namespace dropnet

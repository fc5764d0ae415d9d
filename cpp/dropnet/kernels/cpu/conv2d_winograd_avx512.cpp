// avx512 unit of the Winograd transforms: the shared bodies, auto-vectorised under this file's
// flags, with row movers on masked loads / stores (no read or write past a row) and permutes.
#include <immintrin.h>

#include "dropnet/kernels/cpu/conv2d_winograd_body.h"
#include "dropnet/kernels/cpu/vec_avx512.h"

namespace dropnet {
namespace cpu {
namespace {

struct Avx512Rows {
  static void deinterleave(const float* src, int64_t src_stride, int64_t rows, int64_t n_even, int64_t n_odd,
                           float* even, float* odd, int64_t dst_stride) {
    const __m512i idx_even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i idx_odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const int64_t n_src = std::max(2 * n_even - 1, 2 * n_odd);  // source floats read per row
    for (int64_t j = 0; j < std::max(n_even, n_odd); j += 16) {
      const int64_t s0 = 2 * j;
      const __mmask16 la = first_lanes16(n_src - s0), lb = first_lanes16(n_src - s0 - 16);
      const __mmask16 se = first_lanes16(n_even - j), so = first_lanes16(n_odd - j);
      for (int64_t r = 0; r < rows; ++r) {
        const float* s = src + r * src_stride + s0;
        const __m512 a = _mm512_maskz_loadu_ps(la, s);
        const __m512 b = _mm512_maskz_loadu_ps(lb, s + 16);
        _mm512_mask_storeu_ps(even + r * dst_stride + j, se, _mm512_permutex2var_ps(a, idx_even, b));
        _mm512_mask_storeu_ps(odd + r * dst_stride + j, so, _mm512_permutex2var_ps(a, idx_odd, b));
      }
    }
  }
  static void interleave(const float* even, const float* odd, int64_t src_stride, int64_t rows, int64_t n, float* out,
                         int64_t out_stride) {
    const __m512i idx_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i idx_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const int64_t n_even = (n + 1) / 2, n_odd = n / 2;
    for (int64_t j = 0; j < n_even; j += 16) {
      const __mmask16 le = first_lanes16(n_even - j), lo = first_lanes16(n_odd - j);
      const __mmask16 s_lo = first_lanes16(n - 2 * j), s_hi = first_lanes16(n - 2 * j - 16);
      for (int64_t r = 0; r < rows; ++r) {
        const __m512 e = _mm512_maskz_loadu_ps(le, even + r * src_stride + j);
        const __m512 o = _mm512_maskz_loadu_ps(lo, odd + r * src_stride + j);
        float* d = out + r * out_stride + 2 * j;
        _mm512_mask_storeu_ps(d, s_lo, _mm512_permutex2var_ps(e, idx_lo, o));
        _mm512_mask_storeu_ps(d + 16, s_hi, _mm512_permutex2var_ps(e, idx_hi, o));
      }
    }
  }
};

}  // namespace

WinogradTransforms winograd_transforms_avx512(int64_t tile) { return winograd_transforms_any<Avx512Rows>(tile); }

}  // namespace cpu
}  // namespace dropnet

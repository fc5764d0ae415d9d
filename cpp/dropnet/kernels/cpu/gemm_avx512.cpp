// AVX-512 GEMM kernel set: 12 x 32 register tile, packers that transpose with 16 x 16 shuffles,
// and a vectorised epilogue (bias, activation, pre-activation store, Philox dropout, mask bits).
//
// Micro-kernel: 24 zmm accumulators (12 rows x 2 vectors of 16 columns). Per k it loads the two
// B vectors of the packed panel and broadcasts 12 values of A, for 24 FMAs: enough independent
// chains to cover the FMA latency on both pipes, with loads (14 per 24 FMAs) well below the ports.
#include <immintrin.h>

#include <algorithm>

#include "dropnet/core/philox_avx512.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"

namespace dropnet {
namespace cpu {
namespace gemm_detail {

namespace {

#ifndef DROPNET_GEMM_AVX512_MR  // overridable only to measure other tiles (cpp/bench/bench_gemm.cpp)
#define DROPNET_GEMM_AVX512_MR 12
#define DROPNET_GEMM_AVX512_NV 2
#endif
constexpr int kMr = DROPNET_GEMM_AVX512_MR;
constexpr int kNv = DROPNET_GEMM_AVX512_NV;  // vectors of 16 columns per tile row
constexpr int kNr = 16 * kNv;

inline __mmask16 low_mask16(int n) { return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1); }

// ------------------------------------------------------------------ micro-kernel

// C[M x n] = alpha * A panel . B panel + beta * C; NV vectors cover n (16 * (NV - 1) < n <= 16 * NV).
template <int M, int NV>
void micro_tile(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int n) {
  __m512 acc[M][NV];
  #pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += kMr, b += kNr) {
    __m512 bv[NV];
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
    #pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  // alpha and beta arrive through memory so that no register is held for them across the k loop.
  const float beta = alpha_beta[1];
  const __m512 va = _mm512_set1_ps(alpha_beta[0]), vb = _mm512_set1_ps(beta);
  const __mmask16 last = low_mask16(n - 16 * (NV - 1));
  #pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mk = v == NV - 1 ? last : __mmask16(0xFFFF);
      __m512 r = _mm512_mul_ps(va, acc[i][v]);
      if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, c + 16 * v), r);
      _mm512_mask_storeu_ps(c + 16 * v, mk, r);
    }
  }
}

template <int M, int NV>
void micro_cols(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int n) {
  if constexpr (NV > 1) {
    if (n <= 16 * (NV - 1)) return micro_cols<M, NV - 1>(kc, a, b, C, ldc, alpha_beta, n);
  }
  micro_tile<M, NV>(kc, a, b, C, ldc, alpha_beta, n);
}

template <int M>
void micro_rows(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int m,
                int n) {
  if constexpr (M > 1) {
    if (m < M) return micro_rows<M - 1>(kc, a, b, C, ldc, alpha_beta, m, n);
  }
  micro_cols<M, kNv>(kc, a, b, C, ldc, alpha_beta, n);
}

void micro_avx512(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int m,
                  int n) {
  micro_rows<kMr>(kc, a, b, C, ldc, alpha_beta, m, n);
}

// ------------------------------------------------------------------ packers

// In-register transpose: r[i] lane j -> r[j] lane i.
inline void transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int q = 0; q < 8; ++q) {
    t[2 * q] = _mm512_unpacklo_ps(r[2 * q], r[2 * q + 1]);
    t[2 * q + 1] = _mm512_unpackhi_ps(r[2 * q], r[2 * q + 1]);
  }
  // u[4g + c]: in 128-bit lane L, column 4L + c of rows 4g .. 4g + 3.
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
  }
}

// dst[k * dst_ld + j] = src[j * src_ld + k] for j < rows (<= 16), k < kc; lanes j >= rows get zeros.
// Writes `width` floats per k (rows <= width <= 16).
inline void transpose_pack(const float* src, int64_t src_ld, int rows, int64_t kc, float* dst, int64_t dst_ld,
                           int width) {
  const __mmask16 wmask = low_mask16(width);
  for (int64_t k = 0; k < kc; k += 16) {
    const int kk = static_cast<int>(std::min<int64_t>(16, kc - k));
    const __mmask16 kmask = low_mask16(kk);
    __m512 r[16];
    for (int j = 0; j < 16; ++j)
      r[j] = j < rows ? _mm512_maskz_loadu_ps(kmask, src + j * src_ld + k) : _mm512_setzero_ps();
    transpose16x16(r);
    for (int q = 0; q < kk; ++q) _mm512_mask_storeu_ps(dst + (k + q) * dst_ld, wmask, r[q]);
  }
}

void pack_a_avx512(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   float* dst) {
  for (int64_t ip = 0; ip < mc; ip += kMr, dst += kc * kMr) {
    const int m = static_cast<int>(std::min<int64_t>(kMr, mc - ip));
    if (trans_a) {  // A is K x M: a panel row k is contiguous in A
      const __mmask16 mk = low_mask16(m), store = low_mask16(kMr);
      const float* s = A + p0 * lda + i0 + ip;
      for (int64_t k = 0; k < kc; ++k) _mm512_mask_storeu_ps(dst + k * kMr, store, _mm512_maskz_loadu_ps(mk, s + k * lda));
    } else {
      transpose_pack(A + (i0 + ip) * lda + p0, lda, m, kc, dst, kMr, kMr);
    }
  }
}

void pack_b_avx512(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                   float* dst) {
  for (int64_t jp = 0; jp < nc; jp += kNr, dst += kc * kNr) {
    const int n = static_cast<int>(std::min<int64_t>(kNr, nc - jp));
    if (trans_b) {  // B is N x K: transpose 16 columns of op(B) at a time
      for (int v = 0; v < kNv; ++v) {
        const int rows = std::max(0, std::min(16, n - 16 * v));
        transpose_pack(B + (j0 + jp + 16 * v) * ldb + p0, ldb, rows, kc, dst + 16 * v, kNr, 16);
      }
    } else {
      const float* s = B + p0 * ldb + j0 + jp;
      for (int64_t k = 0; k < kc; ++k)
        for (int v = 0; v < kNv; ++v)
          _mm512_store_ps(dst + k * kNr + 16 * v,
                          _mm512_maskz_loadu_ps(low_mask16(n - 16 * v), s + k * ldb + 16 * v));
    }
  }
}

// ------------------------------------------------------------------ vector activations
// Max relative error a few ulp (exp, sigmoid, tanh); GELU's erf is Abramowitz-Stegun 7.1.26
// (absolute error <= 1.5e-7, the same formula PyTorch vectorises), evaluated through erfc so
// that negative inputs do not cancel.

inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.f)), _mm512_set1_ps(88.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(y, n);
}

inline __m512 sigmoid_ps(__m512 z) {
  const __m512 one = _mm512_set1_ps(1.f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), z))));
}

inline __m512 tanh_ps(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  // |x| < 0.625: odd polynomial (Cephes tanhf); otherwise 1 - 2 / (exp(2|x|) + 1) with x's sign.
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 e = exp_ps(_mm512_add_ps(ax, ax));
  const __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.f), _mm512_add_ps(e, one)));
  const __m512 sign = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
  const __m512 big_signed = _mm512_or_ps(big, sign);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ), big_signed, small);
}

inline __m512 gelu_ps(__m512 z) {
  const __m512 ax = _mm512_abs_ps(_mm512_mul_ps(z, _mm512_set1_ps(0.70710678118654752f)));
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), ax, one));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  const __m512 minus_x2 = _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), ax), ax);
  const __m512 q = _mm512_mul_ps(_mm512_mul_ps(p, t), exp_ps(minus_x2));  // erfc(|x|)
  const __m512 half_q = _mm512_mul_ps(_mm512_set1_ps(0.5f), q);
  // z >= 0: z * (1 - erfc/2); z < 0: z * erfc/2.
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mul_ps(z, _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, half_q), half_q));
}

inline __m512 activate_ps(Activation act, __m512 z, __m512 slope) {
  switch (act) {
    case Activation::identity: return z;
    case Activation::relu: return _mm512_max_ps(z, _mm512_setzero_ps());
    case Activation::leaky_relu:
      return _mm512_mask_mul_ps(z, _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LE_OQ), z, slope);
    case Activation::tanh: return tanh_ps(z);
    case Activation::sigmoid: return sigmoid_ps(z);
    case Activation::gelu: return gelu_ps(z);
  }
  return z;
}

// ------------------------------------------------------------------ epilogue

// Row by row in chunks that one Philox call covers: 64 words from the 4-aligned element at or
// before the chunk's first, so a chunk is 64 - (e0 % 4) elements (all 64 once rows are aligned).
// The chunk's keep bits go to the mask in one atomic update per word.
void epilogue_avx512(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t N,
                     float* C, int64_t ldc) {
  const philox::KeySchedule512 ks(ep.dropout ? ep.seed : 0);
  const __m512 slope = _mm512_set1_ps(ep.leaky_slope), scale = _mm512_set1_ps(ep.scale);
  for (int64_t i = row0; i < row0 + rows; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = col0, n = 0; j < col0 + cols; j += n) {
      const uint64_t e0 = static_cast<uint64_t>(i * N + j);
      n = std::min<int64_t>(64 - static_cast<int64_t>(e0 & 3), col0 + cols - j);
      uint64_t keep = 0;
      if (ep.dropout) keep = philox::keep_bits64(ks, ep.stream, e0 >> 2, ep.threshold) >> (e0 & 3);
      for (int h = 0; h * 16 < n; ++h) {
        const __mmask16 mk = low_mask16(static_cast<int>(n) - 16 * h);
        __m512 z = _mm512_maskz_loadu_ps(mk, c + j + 16 * h);
        if (ep.bias) z = _mm512_add_ps(z, _mm512_maskz_loadu_ps(mk, ep.bias + j + 16 * h));
        if (ep.pre_activation) _mm512_mask_storeu_ps(ep.pre_activation + e0 + 16 * h, mk, z);
        __m512 y = activate_ps(ep.activation, z, slope);
        if (ep.dropout) y = _mm512_maskz_mul_ps(static_cast<__mmask16>(keep >> (16 * h)), y, scale);
        _mm512_mask_storeu_ps(c + j + 16 * h, mk, y);
      }
      if (ep.dropout && ep.mask_bits) mask_write_bits(ep.mask_bits, e0, keep, static_cast<int>(n));
    }
  }
}

}  // namespace

const GemmKernelSet& kernels_avx512() {
  static const GemmKernelSet set{"avx512", kMr, kNr, pack_a_avx512, pack_b_avx512, micro_avx512, epilogue_avx512};
  return set;
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace dropnet

// AVX-512 GEMM kernel set: 12 x 32 register tile, packers that transpose with 16 x 16 shuffles,
// and the vectorised epilogue of gemm_vec_math.h (bias, activation, pre-activation store, Philox
// dropout with keep_bits64, mask bits).
//
// Micro-kernel: 24 zmm accumulators (12 rows x 2 vectors of 16 columns). Per k it loads the two
// B vectors of the packed panel and broadcasts 12 values of A, for 24 FMAs: far more independent
// chains than FMA latency x throughput needs, with loads (14 per 24 FMAs) well below the ports.
// Measured on the Zen 4 host (thread CPU time, 1 thread): 12x32, 6x64, 8x48, 14x32 and 16x16 all
// run at 95-100 % of a pure-FMA loop's rate on the MLP shapes, within noise of one another; 12x32
// was kept (fewest padded columns at N = 100 / 300 among the fastest).
#include <immintrin.h>

#include <algorithm>

#include "dropnet/core/philox_avx512.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"
#include "dropnet/kernels/cpu/gemm_vec_math.h"
#include "dropnet/kernels/cpu/transpose_avx512.h"
#include "dropnet/kernels/cpu/vec_avx512.h"

namespace dropnet {
namespace cpu {
namespace gemm_detail {

namespace {

#ifndef DROPNET_GEMM_AVX512_MR  // overridable (-D) only to measure other tiles
#define DROPNET_GEMM_AVX512_MR 12
#define DROPNET_GEMM_AVX512_NV 2
#endif
constexpr int kMr = DROPNET_GEMM_AVX512_MR;
constexpr int kNv = DROPNET_GEMM_AVX512_NV;  // vectors of 16 columns per tile row
constexpr int kNr = 16 * kNv;


// ------------------------------------------------------------------ micro-kernel

// C[M x n] = alpha * A panel . B panel + beta * C; NV vectors cover n (16 * (NV - 1) < n <= 16 * NV).
// kRowsA: A read in place, row i at a + i·lda, k contiguous (else the packed panel, lda unused).
template <int M, int NV, bool kRowsA>
void micro_tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* C, int64_t ldc,
                const float* alpha_beta, int n) {
  __m512 acc[M][NV];
  // C is read (beta != 0) or written at the end, after kc * M * NV FMAs: start its lines now.
  #pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
    #pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16 * v), _MM_HINT_T0);
  #pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += kRowsA ? 1 : kMr, b += ldb) {
    __m512 bv[NV];
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
    #pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[kRowsA ? i * lda : i]);
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  // alpha and beta arrive through memory so that no register is held for them across the k loop.
  const float beta = alpha_beta[1];
  const __m512 va = _mm512_set1_ps(alpha_beta[0]), vb = _mm512_set1_ps(beta);
  const __mmask16 last = first_lanes16(n - 16 * (NV - 1));
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

template <int M, int NV, bool kRowsA>
void micro_cols(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* C, int64_t ldc,
                const float* alpha_beta, int n) {
  if constexpr (NV > 1) {
    if (n <= 16 * (NV - 1)) return micro_cols<M, NV - 1, kRowsA>(kc, a, lda, b, ldb, C, ldc, alpha_beta, n);
  }
  micro_tile<M, NV, kRowsA>(kc, a, lda, b, ldb, C, ldc, alpha_beta, n);
}

template <int M, bool kRowsA = false>
void micro_rows(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* C, int64_t ldc,
                const float* alpha_beta, int m, int n) {
  if constexpr (M > 1) {
    if (m < M) return micro_rows<M - 1, kRowsA>(kc, a, lda, b, ldb, C, ldc, alpha_beta, m, n);
  }
  micro_cols<M, kNv, kRowsA>(kc, a, lda, b, ldb, C, ldc, alpha_beta, n);
}

void micro_avx512(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int m,
                  int n) {
  micro_rows<kMr>(kc, a, 0, b, kNr, C, ldc, alpha_beta, m, n);
}

void micro_strided_avx512(int64_t kc, const float* a, const float* b, int64_t ldb, float* C, int64_t ldc,
                          const float* alpha_beta, int m, int n) {
  micro_rows<kMr>(kc, a, 0, b, ldb, C, ldc, alpha_beta, m, n);
}

void micro_rows_a_avx512(int64_t kc, const float* a, int64_t lda, const float* b, float* C, int64_t ldc,
                        const float* alpha_beta, int m, int n) {
  micro_rows<kMr, true>(kc, a, lda, b, kNr, C, ldc, alpha_beta, m, n);
}

// ------------------------------------------------------------------ packers

// dst[k * dst_ld + j] = src[j * src_ld + k] for j < rows (<= 16), k < kc; lanes j >= rows get zeros.
// Writes `width` floats per k (rows <= width <= 16).
inline void transpose_pack(const float* src, int64_t src_ld, int rows, int64_t kc, float* dst, int64_t dst_ld,
                           int width) {
  const __mmask16 wmask = first_lanes16(width);
  for (int64_t k = 0; k < kc; k += 16) {
    const int kk = static_cast<int>(std::min<int64_t>(16, kc - k));
    const __mmask16 kmask = first_lanes16(kk);
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
      const __mmask16 mk = first_lanes16(m), store = first_lanes16(kMr);
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
                          _mm512_maskz_loadu_ps(first_lanes16(n - 16 * v), s + k * ldb + 16 * v));
    }
  }
}

// ------------------------------------------------------------------ epilogue

struct Avx512 {
  using F = __m512;
  using Keys = philox::KeySchedule512;
  static constexpr int kWidth = 16, kChunk = 64;
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F zero() { return _mm512_setzero_ps(); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F abs(F a) { return _mm512_abs_ps(a); }
  static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F pow2i(F n) { return _mm512_scalef_ps(_mm512_set1_ps(1.f), n); }
  static __mmask16 lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static __mmask16 le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static F select(__mmask16 m, F t, F f) { return _mm512_mask_blend_ps(m, f, t); }
  static F or_sign(F x, F s) {
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(x), _mm512_castps_si512(s),
                                                         _mm512_set1_epi32(INT32_MIN), 0xF8));  // x | (s & sign)
  }
  static F load(const float* p, int n) { return _mm512_maskz_loadu_ps(first_lanes16(n), p); }
  static void store(float* p, int n, F v) { _mm512_mask_storeu_ps(p, first_lanes16(n), v); }
  static F keep_scale(F v, uint64_t bits, F scale) { return _mm512_maskz_mul_ps(static_cast<__mmask16>(bits), v, scale); }
  static uint64_t keep_bits(const Keys& k, uint64_t stream, uint64_t block, uint32_t threshold) {
    return philox::keep_bits64(k, stream, block, threshold);
  }
};

void epilogue_avx512(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t N,
                     float* C, int64_t ldc) {
  epilogue_v<Avx512>(ep, row0, rows, col0, cols, N, C, ldc);
}

}  // namespace

const GemmKernelSet& kernels_avx512() {
  static const GemmKernelSet set{"avx512", kMr, kNr, pack_a_avx512, pack_b_avx512, micro_avx512, micro_strided_avx512,
                                 micro_rows_a_avx512, epilogue_avx512};
  return set;
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace dropnet

// AVX2 + FMA GEMM kernel set: 6 x 16 register tile (12 ymm accumulators, 2 B loads and 6
// broadcasts per k: 15 of the 16 ymm registers; alpha/beta come through memory), packers
// that transpose with 8 x 8 shuffles, and the vectorised epilogue of gemm_vec_math.h with
// Philox keep_bits32.
#include <immintrin.h>

#include <algorithm>

#include "dropnet/core/philox_avx2.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"
#include "dropnet/kernels/cpu/gemm_vec_math.h"
#include "dropnet/kernels/cpu/transpose_avx2.h"
#include "dropnet/kernels/cpu/vec_avx2.h"

namespace dropnet {
namespace cpu {
namespace gemm_detail {

namespace {

constexpr int kMr = 6;
constexpr int kNv = 2;  // vectors of 8 columns per tile row
constexpr int kNr = 8 * kNv;

// kRowsA: A read in place, row i at a + i·lda, k contiguous (else the packed panel, lda unused).
template <int M, int NV, bool kRowsA>
void micro_tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* C, int64_t ldc,
                const float* alpha_beta, int n) {
  __m256 acc[M][NV];
  #pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += kRowsA ? 1 : kMr, b += ldb) {
    __m256 bv[NV];
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
    #pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + (kRowsA ? i * lda : i));
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  // alpha and beta arrive through memory so that no register is held for them across the k loop.
  const float beta = alpha_beta[1];
  const __m256 va = _mm256_set1_ps(alpha_beta[0]), vb = _mm256_set1_ps(beta);
  const bool full = n == 8 * NV;
  const __m256i last = first_lanes8(n - 8 * (NV - 1));
  #pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      __m256 r = _mm256_mul_ps(va, acc[i][v]);
      if (v < NV - 1 || full) {  // masked stores are microcoded on AMD cores: only for the edge
        if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8 * v), r);
        _mm256_storeu_ps(c + 8 * v, r);
      } else {
        if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + 8 * v, last), r);
        _mm256_maskstore_ps(c + 8 * v, last, r);
      }
    }
  }
}

template <int M, int NV, bool kRowsA>
void micro_cols(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* C, int64_t ldc,
                const float* alpha_beta, int n) {
  if constexpr (NV > 1) {
    if (n <= 8 * (NV - 1)) return micro_cols<M, NV - 1, kRowsA>(kc, a, lda, b, ldb, C, ldc, alpha_beta, n);
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

void micro_avx2(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int m,
                int n) {
  micro_rows<kMr>(kc, a, 0, b, kNr, C, ldc, alpha_beta, m, n);
}

void micro_strided_avx2(int64_t kc, const float* a, const float* b, int64_t ldb, float* C, int64_t ldc,
                        const float* alpha_beta, int m, int n) {
  micro_rows<kMr>(kc, a, 0, b, ldb, C, ldc, alpha_beta, m, n);
}

void micro_rows_a_avx2(int64_t kc, const float* a, int64_t lda, const float* b, float* C, int64_t ldc,
                        const float* alpha_beta, int m, int n) {
  micro_rows<kMr, true>(kc, a, lda, b, kNr, C, ldc, alpha_beta, m, n);
}

// Stores `width` (<= 8) floats of v at dst[k * dst_ld] for k in order. Masked stores are
// microcoded on AMD cores, so rows narrower than 8 are written whole, spilling into the start of
// the next row (rewritten by the next store), and only the last row (k == kc - 1) is masked.
inline void store_row(float* dst, int64_t dst_ld, int64_t k, int64_t kc, int width, __m256 v) {
  if (width == 8 || k + 1 < kc) _mm256_storeu_ps(dst + k * dst_ld, v);
  else _mm256_maskstore_ps(dst + k * dst_ld, first_lanes8(width), v);
}

// dst[k * dst_ld + j] = src[j * src_ld + k] for j < rows (<= 8), k < kc; lanes j >= rows get zeros.
// Writes `width` floats per k (rows <= width <= 8; width < 8 needs dst_ld == width, see store_row).
inline void transpose_pack(const float* src, int64_t src_ld, int rows, int64_t kc, float* dst, int64_t dst_ld,
                           int width) {
  for (int64_t k = 0; k < kc; k += 8) {
    const int kk = static_cast<int>(std::min<int64_t>(8, kc - k));
    __m256 r[8];
    if (kk == 8) {
      for (int j = 0; j < 8; ++j) r[j] = j < rows ? _mm256_loadu_ps(src + j * src_ld + k) : _mm256_setzero_ps();
    } else {
      const __m256i kmask = first_lanes8(kk);
      for (int j = 0; j < 8; ++j) r[j] = j < rows ? _mm256_maskload_ps(src + j * src_ld + k, kmask) : _mm256_setzero_ps();
    }
    transpose8x8(r);
    for (int q = 0; q < kk; ++q) store_row(dst, dst_ld, k + q, kc, width, r[q]);
  }
}

void pack_a_avx2(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                 float* dst) {
  for (int64_t ip = 0; ip < mc; ip += kMr, dst += kc * kMr) {
    const int m = static_cast<int>(std::min<int64_t>(kMr, mc - ip));
    if (trans_a) {  // A is K x M: a panel row k is contiguous in A
      const __m256i mk = first_lanes8(m);
      const float* s = A + p0 * lda + i0 + ip;
      for (int64_t k = 0; k < kc; ++k) store_row(dst, kMr, k, kc, kMr, _mm256_maskload_ps(s + k * lda, mk));
    } else {
      transpose_pack(A + (i0 + ip) * lda + p0, lda, m, kc, dst, kMr, kMr);
    }
  }
}

void pack_b_avx2(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                 float* dst) {
  for (int64_t jp = 0; jp < nc; jp += kNr, dst += kc * kNr) {
    const int n = static_cast<int>(std::min<int64_t>(kNr, nc - jp));
    if (trans_b) {  // B is N x K: transpose 8 columns of op(B) at a time
      for (int v = 0; v < kNv; ++v) {
        const int rows = std::max(0, std::min(8, n - 8 * v));
        transpose_pack(B + (j0 + jp + 8 * v) * ldb + p0, ldb, rows, kc, dst + 8 * v, kNr, 8);
      }
    } else {
      const float* s = B + p0 * ldb + j0 + jp;
      for (int64_t k = 0; k < kc; ++k)
        for (int v = 0; v < kNv; ++v)
          _mm256_store_ps(dst + k * kNr + 8 * v, _mm256_maskload_ps(s + k * ldb + 8 * v, first_lanes8(n - 8 * v)));
    }
  }
}

struct Avx2 {
  using F = __m256;
  using Keys = philox::KeySchedule256;
  static constexpr int kWidth = 8, kChunk = 32;
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F zero() { return _mm256_setzero_ps(); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F pow2i(F n) {  // exponent field n + 127; n in [-126, 127] keeps it a normal number
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static F lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static F le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static F select(F m, F t, F f) { return _mm256_blendv_ps(f, t, m); }
  static F or_sign(F x, F s) { return _mm256_or_ps(x, _mm256_and_ps(s, _mm256_set1_ps(-0.f))); }
  // Whole vectors unmasked: masked stores are microcoded on AMD cores.
  static F load(const float* p, int n) { return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first_lanes8(n)); }
  static void store(float* p, int n, F v) {
    if (n == 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, first_lanes8(n), v);
  }
  static F keep_scale(F v, uint64_t bits, F scale) {
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i kept = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits & 0xFF)), lane_bit), lane_bit);
    return _mm256_and_ps(_mm256_mul_ps(v, scale), _mm256_castsi256_ps(kept));
  }
  static uint64_t keep_bits(const Keys& k, uint64_t stream, uint64_t block, uint32_t threshold) {
    return philox::keep_bits32(k, stream, block, threshold);
  }
};

void epilogue_avx2(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t N,
                   float* C, int64_t ldc) {
  epilogue_v<Avx2>(ep, row0, rows, col0, cols, N, C, ldc);
}

}  // namespace

const GemmKernelSet& kernels_avx2() {
  static const GemmKernelSet set{"avx2", kMr, kNr, pack_a_avx2, pack_b_avx2, micro_avx2, micro_strided_avx2,
                                 micro_rows_a_avx2, epilogue_avx2};
  return set;
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace dropnet

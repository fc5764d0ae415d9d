// Private interface between the GEMM driver (gemm.cpp) and its ISA units (gemm_avx2.cpp,
// gemm_avx512.cpp). Not part of the public kernel API: include it only from gemm*.cpp and tests.
//
// Packed layouts (one micro-kernel serves all four transpose cases because packing absorbs them):
//   packed A: ceil(mc / mr) panels; panel p holds rows [p*mr, p*mr + mr) of op(A) for k in [0, kc),
//             element (k, i) at p*kc*mr + k*mr + i; rows past mc are zero.
//   packed B: ceil(nc / nr) panels; panel q holds columns [q*nr, q*nr + nr) of op(B),
//             element (k, j) at q*kc*nr + k*nr + j; columns past nc are zero.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/kernels/cpu/gemm.h"

namespace dropnet {
namespace cpu {
namespace gemm_detail {

struct GemmKernelSet {
  const char* name;
  int mr, nr;  // register tile of C: mr rows x nr columns
  // Pack op(A) rows [i0, i0 + mc) x k [p0, p0 + kc). op(A)(i, k) = trans_a ? A[k*lda + i] : A[i*lda + k].
  void (*pack_a)(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                 float* dst);
  // Pack op(B) k [p0, p0 + kc) x columns [j0, j0 + nc). op(B)(k, j) = trans_b ? B[j*ldb + k] : B[k*ldb + j].
  void (*pack_b)(bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                 float* dst);
  // C[m x n] = alpha * (packed A panel . packed B panel) + beta * C with {alpha, beta} = alpha_beta[0..1],
  // m <= mr, n <= nr, k in order
  // 0..kc-1 with one accumulator per C element (so the result of an element never depends on the
  // tile it sits in). beta == 0: C is not read (NaN in C does not leak).
  void (*micro)(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int m,
                int n);
  // The same product, operation for operation, with B read in place: element (k, j) at b[k*ldb + j].
  // Reads whole vectors past column n (up to the next multiple of the vector width, ldb's row must
  // have them), whose products are never stored. For operands already laid out k-major with
  // columns contiguous (the Winograd transforms' output), so no packing pass is needed.
  void (*micro_strided)(int64_t kc, const float* a, const float* b, int64_t ldb, float* C, int64_t ldc,
                        const float* alpha_beta, int m, int n);
  // The same product with A read in place, row-major (element (i, k) at a[i*lda + k]) and B packed:
  // for operands whose reduction axis is contiguous (the Winograd weight gradient's A dY Aᵀ).
  void (*micro_rows_a)(int64_t kc, const float* a, int64_t lda, const float* b, float* C, int64_t ldc,
                       const float* alpha_beta, int m, int n);
  // The epilogue (gemm.h) on C rows [row0, row0 + rows) x columns [col0, col0 + cols) of a logical
  // width-N output. Mask words are written with atomic bit operations on this block's bits only,
  // so blocks that share a 64-bit mask word may run on different threads.
  void (*epilogue)(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t N,
                   float* C, int64_t ldc);
};

const GemmKernelSet& kernels_scalar();
const GemmKernelSet& kernels_avx2();
const GemmKernelSet& kernels_avx512();
// The set of the active ISA (active_isa()), the one sgemm runs.
const GemmKernelSet& kernels_active();

// The GEMM's K blocking: blocks of k_block(K) (the last one shorter), a function of K alone, so
// every C element sees the same sequence of K blocks whatever the thread count or caller
// (docs/design.md, "Canonical reduction orders").
int64_t k_block(int64_t K);

// Portable packers (any mr / nr), used by the scalar set.
void pack_a_generic(int mr, bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                    int64_t kc, float* dst);
void pack_b_generic(int nr, bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
                    int64_t nc, float* dst);

// Scalar epilogue on a block (the reference the vector epilogues are checked against).
void epilogue_block_scalar(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t N,
                           float* C, int64_t ldc);

// Scalar activation, shared by every path that has no vector form of it.
inline float activate_scalar(Activation act, float z, float slope) {
  switch (act) {
    case Activation::identity: return z;
    case Activation::relu: return z > 0.f ? z : 0.f;
    case Activation::leaky_relu: return z > 0.f ? z : slope * z;
    case Activation::tanh: return std::tanh(z);
    case Activation::sigmoid: return 1.f / (1.f + std::exp(-z));
    case Activation::gelu: return 0.5f * z * (1.f + std::erf(z * 0.70710678118654752f));
  }
  return z;
}


// Sets bits [e0, e0 + n) of the mask (n <= 64) to the low n bits of `bits`, leaving every other
// bit alone. Atomic per word: two threads may own different bits of one word.
inline void mask_write_bits(uint64_t* words, uint64_t e0, uint64_t bits, int n) {
  while (n > 0) {
    const int off = static_cast<int>(e0 & 63);
    const int take = n < 64 - off ? n : 64 - off;
    const uint64_t field = take == 64 ? ~uint64_t{0} : ((uint64_t{1} << take) - 1);
    const uint64_t sel = field << off, val = (bits & field) << off;
    uint64_t* w = words + (e0 >> 6);
    if (sel == ~uint64_t{0}) {
      __atomic_store_n(w, val, __ATOMIC_RELAXED);
    } else {
      __atomic_fetch_and(w, ~sel, __ATOMIC_RELAXED);
      if (val) __atomic_fetch_or(w, val, __ATOMIC_RELAXED);
    }
    bits = take == 64 ? 0 : bits >> take;
    e0 += static_cast<uint64_t>(take);
    n -= take;
  }
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace dropnet

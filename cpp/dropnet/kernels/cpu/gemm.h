// Single-precision GEMM with a fused epilogue, the three products a dense layer needs:
//   forward   Y  = X · Wᵀ  (trans_b)       X: M × K, W: N × K, Y: M × N
//   backward  dX = dY · W                  dY: M × N, W: N × K
//   weights   dW = dYᵀ · X  (trans_a)      accumulate with beta = 1 to sum over batches
// C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C, then the epilogue on each C element.
// Threads split M and N only; K is summed in a fixed order and blocking, so results are identical
// for any thread count (docs/design.md, Determinism). Denormals are flushed inside the kernel.
#pragma once
#include <cstdint>

#include "dropnet/core/epilogue.h"

namespace dropnet {
namespace cpu {

// The epilogue's descriptor and activations (core/epilogue.h), shared with the CUDA twin
// cuda::apply_epilogue: Activation, GemmEpilogue. Applied to every element of C after the product,
// in this order:
//   z = C + bias[col]                 (bias optional, length N)
//   pre_activation[row*N + col] = z   (optional; needed by backward of e.g. GELU)
//   a = act(z)
//   y = dropout(a): keep iff philox word of element (row*N + col) of (seed, stream) < threshold,
//       y = keep ? a * scale : 0; bit (row*N+col) of mask_bits = keep   (when dropout is on)
// The element index is the flat C-order index of the logical M × N output, whatever ldc is.
// Mask bits of elements outside the output are left as they were; threads that own neighbouring
// tiles update different bits of a shared 64-bit word with atomic and/or, so the mask is the same
// for any thread count. Vector activations (tanh, sigmoid, gelu) agree with the scalar ones to
// ~1e-7 relative to max(1, |z|); the dropout mask agrees bit for bit.
//
// Implementation: gemm.cpp (dispatch, blocking, threads, scalar twin), gemm_avx512.cpp (12 x 32
// micro-kernel), gemm_avx2.cpp (6 x 16), gemm_vec_math.h (vector epilogue), gemm_kernels.h.
using dropnet::Activation;
using dropnet::GemmEpilogue;

// Dispatching entry (active_isa(), get_num_threads()).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           const GemmEpilogue* epilogue = nullptr);

// Scalar reference: triple loop in (i, j, k) order with a float accumulator per C element.
void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                 const GemmEpilogue* epilogue = nullptr);

// The epilogue alone on an M × N block of rows [row0, row0 + rows) (shared by every GEMM path).
void apply_epilogue(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc);

// The same pass on the active ISA's vector epilogue (safe on row blocks of different threads).
void epilogue_pass(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc);

}  // namespace cpu
}  // namespace dropnet

// The rows body of the skip-zeros products (gemm_skip_zeros.h), written once over a vector-ops
// type and compiled in each ISA unit (include only from gemm_skip_zeros_avx2.cpp /
// gemm_skip_zeros_avx512.cpp; everything here has internal linkage).
//
// Ops provides: Vec, kLanes, kSlab (slab width, 4 vectors), zero(), set1(f), loadu(p), add(a, b),
// fmadd(a, b, c), storeu(p, v) and store_first(p, v, n): the first n < kLanes floats of v.
#pragma once
#include <cstdint>

#include "dropnet/kernels/cpu/gemm_skip_zeros.h"

namespace dropnet {
namespace cpu {
namespace {

// C[r, c0 : c0 + width) from the list of row r and its slab (rows of Ops::kSlab floats, zero
// padded, so every load is whole). Entries alternate between two accumulator sets: 2·V
// independent FMA chains.
template <class Ops, int V>
inline void skip_zeros_row_chunk(const int32_t* index, const float* vals, int32_t count, const float* slab,
                                 int64_t width, float* c) {
  using Vec = typename Ops::Vec;
  constexpr int64_t W = Ops::kSlab, L = Ops::kLanes;
  Vec even[V], odd[V];
#pragma GCC unroll 4
  for (int q = 0; q < V; ++q) even[q] = odd[q] = Ops::zero();
  int32_t i = 0;
  for (; i + 1 < count; i += 2) {
    const Vec v0 = Ops::set1(vals[i]), v1 = Ops::set1(vals[i + 1]);
    const float* b0 = slab + index[i] * W;
    const float* b1 = slab + index[i + 1] * W;
#pragma GCC unroll 4
    for (int q = 0; q < V; ++q) {
      even[q] = Ops::fmadd(v0, Ops::loadu(b0 + L * q), even[q]);
      odd[q] = Ops::fmadd(v1, Ops::loadu(b1 + L * q), odd[q]);
    }
  }
  if (i < count) {
    const Vec v0 = Ops::set1(vals[i]);
    const float* b0 = slab + index[i] * W;
#pragma GCC unroll 4
    for (int q = 0; q < V; ++q) even[q] = Ops::fmadd(v0, Ops::loadu(b0 + L * q), even[q]);
  }
#pragma GCC unroll 4
  for (int q = 0; q < V; ++q) {
    const Vec sum = Ops::add(even[q], odd[q]);
    const int64_t left = width - L * q;
    if (left >= L) Ops::storeu(c + L * q, sum);
    else Ops::store_first(c + L * q, sum, static_cast<int>(left));
  }
}

// Rows [r0, r1) of C. Slab outer, rows inner: a slab (R·kSlab floats, 32 KB for 128 rows of
// 64) is read by every row of the piece while it is still in cache; the lists are re-read per
// slab (8 bytes an entry).
template <class Ops>
void skip_zeros_rows_impl(const NonzeroLists& Ls, int64_t r0, int64_t r1, const float* P, int64_t R, int64_t K,
                          float* C, int64_t ldc) {
  constexpr int64_t W = Ops::kSlab, L = Ops::kLanes;
  static_assert(W == 4 * L, "slabs are 4 vectors wide");
  for (int64_t c0 = 0; c0 < K; c0 += W) {
    const float* slab = P + c0 * R;
    const int64_t width = K - c0 < W ? K - c0 : W;
    const int V = static_cast<int>((width + L - 1) / L);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r - r0;
      const int32_t* index = Ls.index + j * Ls.stride;
      const float* vals = Ls.values + j * Ls.stride;
      float* c = C + r * ldc + c0;
      switch (V) {
        case 4: skip_zeros_row_chunk<Ops, 4>(index, vals, Ls.count[j], slab, width, c); break;
        case 3: skip_zeros_row_chunk<Ops, 3>(index, vals, Ls.count[j], slab, width, c); break;
        case 2: skip_zeros_row_chunk<Ops, 2>(index, vals, Ls.count[j], slab, width, c); break;
        default: skip_zeros_row_chunk<Ops, 1>(index, vals, Ls.count[j], slab, width, c);
      }
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet

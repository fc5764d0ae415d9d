// The vector bodies of csr_matmul.h, written once over a vector-ops type and compiled in each ISA
// unit (include only from csr_matmul_avx2.cpp / csr_matmul_avx512.cpp; internal linkage).
// Ops provides: Vec, kLanes, zero(), set1(f), loadu(p), storeu(p, v), fmadd(a, b, c), add(a, b),
// max(a, b), and kVecs16 / reduce16(v) for the canonical 16-lane sum (lanes16.h).
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/kernels/cpu/csr_matmul.h"

namespace dropnet {
namespace cpu {
namespace {

// Columns [j, j + V·kLanes) of row r of C.
template <class Ops, int V>
inline void matmul_chunk(const CsrView& S, int64_t r, const float* B, int64_t ldb, int64_t j, float add, bool relu,
                         float* c) {
  using Vec = typename Ops::Vec;
  Vec acc[V];
  for (int v = 0; v < V; ++v) acc[v] = Ops::zero();
  for (int64_t p = S.indptr[r]; p < S.indptr[r + 1]; ++p) {
    const Vec w = Ops::set1(S.values[p]);
    const float* b = B + static_cast<int64_t>(S.indices[p]) * ldb + j;
    for (int v = 0; v < V; ++v) acc[v] = Ops::fmadd(w, Ops::loadu(b + v * Ops::kLanes), acc[v]);
  }
  const Vec a = Ops::set1(add);
  for (int v = 0; v < V; ++v) {
    Vec y = Ops::add(acc[v], a);
    if (relu) y = Ops::max(y, Ops::zero());
    Ops::storeu(c + j + v * Ops::kLanes, y);
  }
}

template <class Ops>
void csr_matmul_impl(const CsrView& S, const float* B, int64_t ldb, int64_t P, const float* bias, bool relu, float* C,
                     int64_t ldc) {
  constexpr int64_t L = Ops::kLanes;
  for (int64_t r = 0; r < S.rows; ++r) {
    float* c = C + r * ldc;
    const float add = bias ? bias[r] : 0.f;
    int64_t j = 0;
    for (; j + 8 * L <= P; j += 8 * L) matmul_chunk<Ops, 8>(S, r, B, ldb, j, add, relu, c);
    for (; j + 4 * L <= P; j += 4 * L) matmul_chunk<Ops, 4>(S, r, B, ldb, j, add, relu, c);
    for (; j + L <= P; j += L) matmul_chunk<Ops, 1>(S, r, B, ldb, j, add, relu, c);
    for (; j < P; ++j) {  // fewer than a vector left: the same fma chain, one element at a time
      float acc = 0.f;
      for (int64_t p = S.indptr[r]; p < S.indptr[r + 1]; ++p)
        acc = std::fma(S.values[p], B[static_cast<int64_t>(S.indices[p]) * ldb + j], acc);
      const float y = acc + add;
      c[j] = relu && !(y > 0.f) ? 0.f : y;
    }
  }
}

// Each stored entry's dot product in the canonical 16-lane order (lanes16.h) over the first
// P / 16 * 16 columns, then the remaining columns in one fma chain on the lane sum.
template <class Ops>
void csr_sampled_dot_impl(const CsrView& S, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t P,
                          float* out) {
  using Vec = typename Ops::Vec;
  constexpr int64_t L = Ops::kLanes;
  constexpr int NV = Ops::kVecs16;
  constexpr int G = 4;  // entries per step: G + 1 loads per G FMAs
  const int64_t full = P / 16 * 16;
  for (int64_t r = 0; r < S.rows; ++r) {
    const float* a = A + r * lda;
    const int64_t end = S.indptr[r + 1];
    for (int64_t p = S.indptr[r]; p < end; p += G) {
      const int g = static_cast<int>(end - p < G ? end - p : G);
      const float* b[G];
      for (int i = 0; i < G; ++i) b[i] = B + static_cast<int64_t>(S.indices[p + (i < g ? i : 0)]) * ldb;
      Vec acc[G][NV];
      for (int i = 0; i < G; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = Ops::zero();
      for (int64_t j = 0; j < full; j += 16)
        for (int v = 0; v < NV; ++v) {
          const Vec x = Ops::loadu(a + j + v * L);
          for (int i = 0; i < G; ++i) acc[i][v] = Ops::fmadd(x, Ops::loadu(b[i] + j + v * L), acc[i][v]);
        }
      for (int i = 0; i < g; ++i) {
        float s = Ops::reduce16(acc[i]);
        for (int64_t j = full; j < P; ++j) s = std::fma(a[j], b[i][j], s);
        out[p + i] += s;
      }
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet

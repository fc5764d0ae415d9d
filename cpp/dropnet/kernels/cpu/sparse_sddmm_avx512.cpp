// AVX-512 body of sddmm: dot products over the batch padded to 16 rows, 16 floats per step (the
// canonical 16 lanes and tree of lanes16.h), 4 entries at once.
#include <immintrin.h>

#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/vec_avx512.h"

namespace dropnet {
namespace cpu {

namespace {

// Batches of up to 128 (NC vectors of 16): row n of dYᵀ stays in NC registers through the row, so
// an entry costs one load per FMA instead of 1 + 1/G. Same per-entry order of operations as the
// general loop below, so the same bits. Measured against it (whole sddmm, 2 threads, 90 %, three
// interleaved runs): 784 -> 300 batch 64 0.052 vs 0.061 ms, batch 128 0.10-0.11 vs 0.12 ms;
// 4096 x 4096 batch 64 3.2-3.6 vs 3.8-4.0 ms. At batch 256 (16 registers) the rows kernel alone
// was slower (0.158 vs 0.143 ms at 784 -> 300), so wider batches take the general loop.
template <int NC>
void rows_dy_in_registers(const float* dYt, const float* Xt, const CsrView& S, int64_t n0, int64_t n1, float* dW,
                          bool accumulate) {
  constexpr int G = 4;
  constexpr int64_t Mpad = 16 * NC;
  for (int64_t n = n0; n < n1; ++n) {
    __m512 d[NC];
    for (int c = 0; c < NC; ++c) d[c] = _mm512_loadu_ps(dYt + n * Mpad + 16 * c);
    const int64_t end = S.indptr[n + 1];
    for (int64_t p = S.indptr[n]; p < end; p += G) {
      const int g = static_cast<int>(end - p < G ? end - p : G);
      const float* x[G];
      for (int i = 0; i < G; ++i) x[i] = Xt + static_cast<int64_t>(S.indices[p + (i < g ? i : 0)]) * Mpad;
      __m512 acc[G];
      for (int i = 0; i < G; ++i) acc[i] = _mm512_setzero_ps();
      for (int c = 0; c < NC; ++c)
        for (int i = 0; i < G; ++i) acc[i] = _mm512_fmadd_ps(d[c], _mm512_loadu_ps(x[i] + 16 * c), acc[i]);
      for (int i = 0; i < g; ++i) {
        const float s = Avx512Vec::reduce16(&acc[i]);
        dW[p + i] = accumulate ? dW[p + i] + s : s;
      }
    }
  }
}

}  // namespace

void sddmm_rows_avx512(const float* dYt, const float* Xt, int64_t Mpad, const CsrView& S, int64_t n0, int64_t n1,
                       float* dW, bool accumulate) {
  switch (Mpad / 16) {
    case 1: return rows_dy_in_registers<1>(dYt, Xt, S, n0, n1, dW, accumulate);
    case 2: return rows_dy_in_registers<2>(dYt, Xt, S, n0, n1, dW, accumulate);
    case 3: return rows_dy_in_registers<3>(dYt, Xt, S, n0, n1, dW, accumulate);
    case 4: return rows_dy_in_registers<4>(dYt, Xt, S, n0, n1, dW, accumulate);
    case 5: return rows_dy_in_registers<5>(dYt, Xt, S, n0, n1, dW, accumulate);
    case 6: return rows_dy_in_registers<6>(dYt, Xt, S, n0, n1, dW, accumulate);
    case 7: return rows_dy_in_registers<7>(dYt, Xt, S, n0, n1, dW, accumulate);
    case 8: return rows_dy_in_registers<8>(dYt, Xt, S, n0, n1, dW, accumulate);
    default: break;
  }
  constexpr int G = 4;  // entries per step: G + 1 loads per G FMAs
  for (int64_t n = n0; n < n1; ++n) {
    const float* dy = dYt + n * Mpad;
    const int64_t end = S.indptr[n + 1];
    int64_t p = S.indptr[n];
    for (; p < end; p += G) {
      const int g = static_cast<int>(end - p < G ? end - p : G);
      const float* x[G];
      for (int i = 0; i < G; ++i) x[i] = Xt + static_cast<int64_t>(S.indices[p + (i < g ? i : 0)]) * Mpad;
      __m512 acc[G];
      for (int i = 0; i < G; ++i) acc[i] = _mm512_setzero_ps();
      for (int64_t m = 0; m < Mpad; m += 16) {
        const __m512 d = _mm512_loadu_ps(dy + m);
        for (int i = 0; i < G; ++i) acc[i] = _mm512_fmadd_ps(d, _mm512_loadu_ps(x[i] + m), acc[i]);
      }
      for (int i = 0; i < g; ++i) {
        const float s = Avx512Vec::reduce16(&acc[i]);
        dW[p + i] = accumulate ? dW[p + i] + s : s;
      }
    }
  }
}

}  // namespace cpu
}  // namespace dropnet

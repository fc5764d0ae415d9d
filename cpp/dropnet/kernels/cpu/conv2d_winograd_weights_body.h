// Weight transforms of the Winograd convolutions (conv2d_winograd.h): the filters' G g Gᵀ for the
// forward and input-gradient products and the weight gradient's Gᵀ dU G, compiled once per ISA
// unit with that unit's flags (included by conv2d_winograd_body.h; the anonymous namespace keeps
// each unit's copy private). The loops run along contiguous channels or filters, where they
// vectorise; every value is one fixed expression (no contraction: -ffp-contract=off), so every
// unit gives the scalar unit's bits.
#pragma once
#include <algorithm>
#include <cstdint>

namespace dropnet {
namespace cpu {
namespace {

// u[ξ·stride] = (G g Gᵀ)_ξ, G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], the 3 × 3 filter g read as
// g[i·si + j·sj] (negative strides read it flipped). Columns of G g first, then its rows.
void weight_transform2(const float* g, int64_t si, int64_t sj, float* u, int64_t stride) {
  float h[4][3];
  for (int j = 0; j < 3; ++j) {
    const float g0 = g[j * sj], g1 = g[si + j * sj], g2 = g[2 * si + j * sj];
    h[0][j] = g0;
    h[1][j] = 0.5f * ((g0 + g1) + g2);
    h[2][j] = 0.5f * ((g0 - g1) + g2);
    h[3][j] = g2;
  }
  for (int k = 0; k < 4; ++k) {
    const float a = h[k][0], b = h[k][1], c = h[k][2];
    u[(4 * k + 0) * stride] = a;
    u[(4 * k + 1) * stride] = 0.5f * ((a + b) + c);
    u[(4 * k + 2) * stride] = 0.5f * ((a - b) + c);
    u[(4 * k + 3) * stride] = c;
  }
}

// out[(r·9 + k)·Q + q] = (Gᵀ X G)[k] (3 × 3, k = 3i + j) of the 4 × 4 X read at
// du[ξ·stride + r·ld + q], for every r < R and q < Q: columns of X first, then rows. The loop runs
// over q, where du is contiguous, so it vectorises (the small loops inside are unrolled so that
// q is the loop vectorised); every value is the same expression whatever
// the loop (no contraction), so the layout changes no bit.
void weight_grad_transform2(const float* du, int64_t stride, int64_t R, int64_t ld, int64_t Q, float* out) {
  for (int64_t r = 0; r < R; ++r) {
    const float* x = du + r * ld;
    float* o = out + r * 9 * Q;
#pragma omp simd
    for (int64_t q = 0; q < Q; ++q) {
      float h[3][4];
#pragma GCC unroll 4
      for (int l = 0; l < 4; ++l) {
        const float x0 = x[l * stride + q], x1 = x[(4 + l) * stride + q], x2 = x[(8 + l) * stride + q],
                    x3 = x[(12 + l) * stride + q];
        const float s = 0.5f * (x1 + x2);
        h[0][l] = x0 + s;
        h[1][l] = 0.5f * (x1 - x2);
        h[2][l] = s + x3;
      }
#pragma GCC unroll 3
      for (int i = 0; i < 3; ++i) {
        const float s = 0.5f * (h[i][1] + h[i][2]);
        o[(i * 3 + 0) * Q + q] = h[i][0] + s;
        o[(i * 3 + 1) * Q + q] = 0.5f * (h[i][1] - h[i][2]);
        o[(i * 3 + 2) * Q + q] = s + h[i][3];
      }
    }
  }
}

// F(4×4, 3×3): G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1] applied to
// (g_0, g_1, g_2) with the sums before the one product by an inexact constant.
constexpr float kSixth = 1.f / 6, kTwelfth = 1.f / 12, kTwentyFourth = 1.f / 24;

inline void g6(float g0, float g1, float g2, float o[6]) {
  const float s = g0 + g2, t = g0 + 4.f * g2;
  o[0] = 0.25f * g0;
  o[1] = -kSixth * (s + g1);
  o[2] = -kSixth * (s - g1);
  o[3] = kTwentyFourth * (t + 2.f * g1);
  o[4] = kTwentyFourth * (t - 2.f * g1);
  o[5] = g2;
}

// Gᵀ applied to (x_0 … x_5): the adjoint of g6. Scalars in and out, so that loops over channels
// vectorise (arrays in the loop body kept GCC from it).
inline __attribute__((always_inline)) void gt3(float x0, float x1, float x2, float x3, float x4, float x5, float& o0,
                                               float& o1, float& o2) {
  const float s12 = x1 + x2, s34 = x3 + x4;
  o0 = (0.25f * x0 - kSixth * s12) + kTwentyFourth * s34;
  o1 = kSixth * (x2 - x1) + kTwelfth * (x3 - x4);
  o2 = kSixth * (s34 - s12) + x5;
}

// u[ξ·stride] = (G g Gᵀ)_ξ, ξ = 6k + l, for F(4×4): columns of G g first, then its rows.
void weight_transform4(const float* g, int64_t si, int64_t sj, float* u, int64_t stride) {
  float h[6][3];
  for (int j = 0; j < 3; ++j) {
    float o[6];
    g6(g[j * sj], g[si + j * sj], g[2 * si + j * sj], o);
    for (int k = 0; k < 6; ++k) h[k][j] = o[k];
  }
  for (int k = 0; k < 6; ++k) {
    float o[6];
    g6(h[k][0], h[k][1], h[k][2], o);
    for (int l = 0; l < 6; ++l) u[(6 * k + l) * stride] = o[l];
  }
}

// weight_grad_transform2's contract for F(4×4): (Gᵀ X G) of the 6 × 6 X, columns then rows. Two
// passes over blocks of kQ channels through a buffer in L1: per column l, h_i = (Gᵀ X[·][l])_i from
// 6 streams of dU; then per row i of h, the 3 outputs from 6 lines of the buffer. One pass over
// all 36 positions at once read 36 streams (planes 66 KB apart at 128 × 128, the chunk's dU past
// L2) and ran at a fraction of the bandwidth (24 % of a 128 → 128, 7 × 7 weight gradient). The
// same expressions in the same order, so the same bits.
void weight_grad_transform4(const float* du, int64_t stride, int64_t R, int64_t ld, int64_t Q, float* out) {
  constexpr int64_t kQ = 64;
  alignas(64) float h[3][6][kQ];
  for (int64_t r = 0; r < R; ++r) {
    const float* x = du + r * ld;
    float* o = out + r * 9 * Q;
    for (int64_t q0 = 0; q0 < Q; q0 += kQ) {
      const int64_t nq = std::min(kQ, Q - q0);
      for (int l = 0; l < 6; ++l) {
        const float* __restrict x0 = x + l * stride + q0;
        const float* __restrict x1 = x0 + 6 * stride;
        const float* __restrict x2 = x0 + 12 * stride;
        const float* __restrict x3 = x0 + 18 * stride;
        const float* __restrict x4 = x0 + 24 * stride;
        const float* __restrict x5 = x0 + 30 * stride;
        float* __restrict h0 = h[0][l];
        float* __restrict h1 = h[1][l];
        float* __restrict h2 = h[2][l];
#pragma omp simd
        for (int64_t q = 0; q < nq; ++q) {
          gt3(x0[q], x1[q], x2[q], x3[q], x4[q], x5[q], h0[q], h1[q], h2[q]);
        }
      }
      for (int i = 0; i < 3; ++i) {
        float* __restrict o0 = o + (i * 3 + 0) * Q + q0;
        float* __restrict o1 = o + (i * 3 + 1) * Q + q0;
        float* __restrict o2 = o + (i * 3 + 2) * Q + q0;
        const float* __restrict h0 = h[i][0];
        const float* __restrict h1 = h[i][1];
        const float* __restrict h2 = h[i][2];
        const float* __restrict h3 = h[i][3];
        const float* __restrict h4 = h[i][4];
        const float* __restrict h5 = h[i][5];
#pragma omp simd
        for (int64_t q = 0; q < nq; ++q) gt3(h0[q], h1[q], h2[q], h3[q], h4[q], h5[q], o0[q], o1[q], o2[q]);
      }
    }
  }
}

// u[ξ·(F·C) + f·C + c] (or, transposed, u[ξ·(F·C) + c·F + f]) = (G w_fc Gᵀ)_ξ for the F × C
// filters w (F × C × 3 × 3). The inner loop runs along the output's contiguous index, so each of
// the positions' planes is written as one unit-stride stream: one filter at a time wrote the
// positions F·C floats apart, a multiple of 4 KiB at 128 × 128 that kept evicting its own lines
// (9 % of a 128 → 128, 7 × 7 step in two calls). Each value is the same expression in either
// loop order (no contraction), so the order changes no bit.
template <int Tile>
void weight_transforms_tile(const float* w, int64_t F, int64_t C, bool transposed, float* u) {
  const int64_t outer = transposed ? C : F, inner = transposed ? F : C, stride = F * C;
  const int64_t w_outer = transposed ? 9 : C * 9, w_inner = transposed ? C * 9 : 9;
  for (int64_t o = 0; o < outer; ++o) {
    const float* wo = w + o * w_outer;
    float* uo = u + o * inner;
#pragma omp simd
    for (int64_t i = 0; i < inner; ++i) {
      if constexpr (Tile == 4) weight_transform4(wo + i * w_inner, 3, 1, uo + i, stride);
      else weight_transform2(wo + i * w_inner, 3, 1, uo + i, stride);
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet

// Transform bodies of the Winograd F(2×2, 3×3) convolution (conv2d_winograd.h), compiled once per
// ISA unit with that unit's flags; the anonymous namespace keeps each unit's copy private. Every
// value is a fixed expression of additions, subtractions and negations (no multiplies, nothing to
// contract), so the auto-vectorised AVX2 / AVX-512 copies give the scalar copy's bits.
// Loop order: per channel, one loop over all the tiles of the plane (see below).
#pragma once
#include <algorithm>
#include <cstdint>

#include "dropnet/kernels/cpu/conv2d_winograd.h"
#include "dropnet/kernels/cpu/conv2d_winograd4_body.h"
#include "dropnet/kernels/cpu/conv2d_winograd_weights_body.h"

namespace dropnet {
namespace cpu {
namespace {

// The scalar row movers (the generic unit's; the vector units bring their own).
struct ScalarRows {
  static void deinterleave(const float* src, int64_t src_stride, int64_t rows, int64_t n_even, int64_t n_odd,
                           float* even, float* odd, int64_t dst_stride) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = src + r * src_stride;
      for (int64_t j = 0; j < n_even; ++j) even[r * dst_stride + j] = s[2 * j];
      for (int64_t j = 0; j < n_odd; ++j) odd[r * dst_stride + j] = s[2 * j + 1];
    }
  }
  static void interleave(const float* even, const float* odd, int64_t src_stride, int64_t rows, int64_t n, float* out,
                         int64_t out_stride) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* e = even + r * src_stride;
      const float* o = odd + r * src_stride;
      float* d = out + r * out_stride;
      for (int64_t i = 0; i + 1 < n; i += 2) {
        d[i] = e[i / 2];
        d[i + 1] = o[i / 2];
      }
      if (n % 2) d[n - 1] = e[n / 2];
    }
  }
};

// Tiles are numbered t = ty·S + a·TW + tx (image a of the group), so that the four values a tile
// needs from a plane split by row and column parity sit at t, t + 1, t + S, t + S + 1, and every
// transform below is one unit-stride loop over all the tiles of a group's planes (long enough to
// vectorise even for small images). Where the geometry does not pack, S = TW + 1: each tile row
// carries one spare tile (the last), whose outputs are never written back and whose A dY Aᵀ is 0
// (it reads past the output's edge), so it adds nothing to a weight gradient. Where it packs
// (WinogradPlan::packs), S = across·TW: the images of a group share one set of parity planes,
// image a from column a·TW on, and a row's last tile reads the next row's first columns only
// through its overhang output column. The loops run to tiles_padded(), a multiple of 8 tiles (no scalar remainder:
// AVX2 runs whole 8-lane vectors, AVX-512 16-lane ones and at most one 8-lane step): the extra
// tiles land in the next image's columns (written after) or in the slack at the end of every row
// (conv2d_winograd.cpp), and are never read.

// The four parity planes of the padded input: q[(2·rp + cp)·plane_size + ρ·S + m] =
// plane[2ρ + rp - pad_top][2m + cp - pad_left] for ρ in [0, rows), m in [0, width), rows S apart.
// Writes only the entries inside the plane: the caller zeroed q once, and the padding sits at the
// same entries for every call with the same plan. One pass over the source rows, each split into even and odd
// columns by the unit's Rows::deinterleave (permutes; data movement only, so no ISA can change a
// bit), one call per row parity.
template <class Rows>
void split_parity(const float* plane, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left, int64_t rows,
                  int64_t S, int64_t width, int64_t plane_size, float* q) {
  // source column 2j lands at m = j + pad_left / 2 of parity pad_left % 2; 2j + 1 at
  // m = j + (pad_left + 1) / 2 of the other parity; only m < width is kept.
  const int64_t even_m0 = pad_left / 2, odd_m0 = (pad_left + 1) / 2;
  const int64_t even_n = std::max<int64_t>(0, std::min((W + 1) / 2, width - even_m0));
  const int64_t odd_n = std::max<int64_t>(0, std::min(W / 2, width - odd_m0));
  const int even_cp = static_cast<int>(pad_left % 2), odd_cp = 1 - even_cp;
  for (int rp = 0; rp < 2; ++rp) {  // source rows r with (r + pad_top) % 2 == rp, 2W apart
    const int64_t r0 = ((rp - pad_top) % 2 + 2) % 2, rho0 = (r0 + pad_top) / 2;
    const int64_t count = std::min((H - r0 + 1) / 2, rows - rho0);
    if (count <= 0) continue;
    Rows::deinterleave(plane + r0 * W, 2 * W, count, even_n, odd_n,
                       q + (2 * rp + even_cp) * plane_size + rho0 * S + even_m0,
                       q + (2 * rp + odd_cp) * plane_size + rho0 * S + odd_m0, S);
  }
}

// V = Bᵀ d B, Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: rows of the tile first
// (e_0 = d_0 - d_2, e_1 = d_1 + d_2, e_2 = d_2 - d_1, e_3 = d_1 - d_3), then the same on columns.
template <class Rows>
void winograd_input_any(const float* x, int64_t stride, int64_t count, const WinogradPlan& p, float* __restrict v,
                        int64_t ld, int64_t plane, float* scratch) {
  const int64_t S = p.S(), T = p.tiles_padded(), rows = p.TH + 2, HW = p.H * p.W;
  const int64_t PS = T + 2 * S;  // one parity plane: rows × S, and what the last vector reads past it
  // A group short of images: its empty places read 0 (an earlier group wrote them).
  if (count < p.across) std::fill(scratch, scratch + p.in_channels * 4 * PS, 0.f);
  // Every channel's planes first, so that the loads below never wait on the row movers' stores.
  for (int64_t c = 0; c < p.in_channels; ++c)
    for (int64_t a = 0; a < count; ++a)
      split_parity<Rows>(x + a * stride + c * HW, p.H, p.W, p.pad_top, p.pad_left, rows, S, S - a * p.TW, PS,
                         scratch + c * 4 * PS + a * p.TW);
  for (int64_t c = 0; c < p.in_channels; ++c) {
    // d[i][j] = q[i % 2][j % 2][t + (i / 2)·S + j / 2], q = [row parity][column parity]
    const float* q = scratch + c * 4 * PS;
    // One pass per tile row k (4 outputs each, few live pointers): e_j = d[a][j] ± d[b][j],
    // then V[4k + l] from e_0..e_3.
    for (int k = 0; k < 4; ++k) {
      static constexpr int kA[4] = {0, 1, 2, 1}, kB[4] = {2, 2, 1, 3};
      const int a = kA[k], b = kB[k];
      const float* __restrict a0 = q + (2 * (a % 2)) * PS + (a / 2) * S;
      const float* __restrict a1 = a0 + PS;
      const float* __restrict b0 = q + (2 * (b % 2)) * PS + (b / 2) * S;
      const float* __restrict b1 = b0 + PS;
      float* __restrict o0 = v + (4 * k + 0) * plane + c * ld;
      float* __restrict o1 = v + (4 * k + 1) * plane + c * ld;
      float* __restrict o2 = v + (4 * k + 2) * plane + c * ld;
      float* __restrict o3 = v + (4 * k + 3) * plane + c * ld;
      if (k == 1) {
#pragma omp simd
        for (int64_t t = 0; t < T; ++t) {
          const float e0 = a0[t] + b0[t], e1 = a1[t] + b1[t], e2 = a0[t + 1] + b0[t + 1], e3 = a1[t + 1] + b1[t + 1];
          o0[t] = e0 - e2;
          o1[t] = e1 + e2;
          o2[t] = e2 - e1;
          o3[t] = e1 - e3;
        }
      } else {
#pragma omp simd
        for (int64_t t = 0; t < T; ++t) {
          const float e0 = a0[t] - b0[t], e1 = a1[t] - b1[t], e2 = a0[t + 1] - b0[t + 1], e3 = a1[t + 1] - b1[t + 1];
          o0[t] = e0 - e2;
          o1[t] = e1 + e2;
          o2[t] = e2 - e1;
          o3[t] = e1 - e3;
        }
      }
    }
  }
}

// Y = Aᵀ M A, Aᵀ = [1 1 1 0; 0 1 -1 -1]: rows first (a_0 = m_0 + m_1 + m_2, a_1 = m_1 - m_2 - m_3
// per column), then columns; + bias after the transform. Y's four corners go to four arrays
// first, then interleave into the output rows.
template <class Rows>
void winograd_output_any(const float* m, int64_t ld, int64_t plane, const WinogradPlan& p, int64_t channels,
                         const float* bias, float* y, int64_t stride, int64_t count, float* scratch) {
  const int64_t S = p.S(), T = p.tiles_padded(), OW = p.OW, OH = p.OH, P = OH * OW;
  float* __restrict y00 = scratch;
  float* __restrict y01 = scratch + T;
  float* __restrict y10 = scratch + 2 * T;
  float* __restrict y11 = scratch + 3 * T;
  for (int64_t f = 0; f < channels; ++f) {
    // Two passes, one per output row of the tile (12 inputs, 2 outputs each: few live pointers).
    for (int half = 0; half < 2; ++half) {
      // a_l = m_0l + m_1l + m_2l (half 0) or m_1l - m_2l - m_3l (half 1): rows 4·(half + i) + l.
      const float* __restrict r0 = m + (4 * half + 0) * plane + f * ld;
      const float* __restrict r1 = m + (4 * half + 1) * plane + f * ld;
      const float* __restrict r2 = m + (4 * half + 2) * plane + f * ld;
      const float* __restrict r3 = m + (4 * half + 3) * plane + f * ld;
      const float* __restrict s0 = r0 + 4 * plane;
      const float* __restrict s1 = r1 + 4 * plane;
      const float* __restrict s2 = r2 + 4 * plane;
      const float* __restrict s3 = r3 + 4 * plane;
      const float* __restrict z0 = s0 + 4 * plane;
      const float* __restrict z1 = s1 + 4 * plane;
      const float* __restrict z2 = s2 + 4 * plane;
      const float* __restrict z3 = s3 + 4 * plane;
      float* __restrict ya = half == 0 ? y00 : y10;
      float* __restrict yb = half == 0 ? y01 : y11;
      if (half == 0) {
#pragma omp simd
        for (int64_t t = 0; t < T; ++t) {
          const float a0 = (r0[t] + s0[t]) + z0[t], a1 = (r1[t] + s1[t]) + z1[t];
          const float a2 = (r2[t] + s2[t]) + z2[t], a3 = (r3[t] + s3[t]) + z3[t];
          ya[t] = (a0 + a1) + a2;
          yb[t] = (a1 - a2) - a3;
        }
      } else {
#pragma omp simd
        for (int64_t t = 0; t < T; ++t) {
          const float a0 = (r0[t] - s0[t]) - z0[t], a1 = (r1[t] - s1[t]) - z1[t];
          const float a2 = (r2[t] - s2[t]) - z2[t], a3 = (r3[t] - s3[t]) - z3[t];
          ya[t] = (a0 + a1) + a2;
          yb[t] = (a1 - a2) - a3;
        }
      }
    }
    if (bias) {
      const float b = bias[f];
      for (int64_t t = 0; t < 4 * T; ++t) scratch[t] = scratch[t] + b;
    }
    for (int64_t a = 0; a < count; ++a) {
      float* yf = y + a * stride + f * P;
      const int64_t t0 = a * p.TW;  // the image's first tile column
      // output rows a, a + 2, ... from the corners' tile rows 0, 1, ...
      Rows::interleave(y00 + t0, y01 + t0, S, (OH + 1) / 2, OW, yf, 2 * OW);
      Rows::interleave(y10 + t0, y11 + t0, S, OH / 2, OW, yf + OW, 2 * OW);
    }
  }
}

// U = A dY Aᵀ (A = [1 0; 1 1; 1 -1; 0 -1]) of each 2 × 2 tile of dy (OH × OW planes; 0 past the
// edge): rows r_0, r_0 + r_1, r_0 - r_1, -r_1, then the same on columns.
template <class Rows>
void winograd_grad_output_any(const float* dy, int64_t stride, int64_t count, const WinogradPlan& p, int64_t channels,
                              float* __restrict u, int64_t ld, int64_t plane, float* scratch) {
  const int64_t S = p.S(), T = p.tiles_padded(), P = p.OH * p.OW;
  // A group short of images: its empty places read 0 (an earlier group wrote them). Between the
  // images of a group, the odd column past each one's output (OW odd) stays 0.
  if (count < p.across) std::fill(scratch, scratch + channels * 4 * T, 0.f);
  for (int64_t f = 0; f < channels; ++f)
    for (int64_t a = 0; a < count; ++a)
      split_parity<Rows>(dy + a * stride + f * P, p.OH, p.OW, 0, 0, p.TH, S, S - a * p.TW, T,
                         scratch + f * 4 * T + a * p.TW);
  for (int64_t f = 0; f < channels; ++f) {
    const float* __restrict q00 = scratch + f * 4 * T;  // dy's parity planes, TH × S each
    const float* __restrict q01 = q00 + T;
    const float* __restrict q10 = q00 + 2 * T;
    const float* __restrict q11 = q00 + 3 * T;
    // One pass per tile row k of U (4 outputs each, few live pointers): the row combination p_k
    // (r_0, r_0 + r_1, r_0 - r_1, -r_1 of the dy rows), then its columns the same way.
    for (int k = 0; k < 4; ++k) {
      float* __restrict u0 = u + (4 * k + 0) * plane + f * ld;
      float* __restrict u1 = u + (4 * k + 1) * plane + f * ld;
      float* __restrict u2 = u + (4 * k + 2) * plane + f * ld;
      float* __restrict u3 = u + (4 * k + 3) * plane + f * ld;
#pragma omp simd
      for (int64_t t = 0; t < T; ++t) {
        const float r00 = q00[t], r01 = q01[t], r10 = q10[t], r11 = q11[t];
        const float pe = k == 0 ? r00 : k == 1 ? r00 + r10 : k == 2 ? r00 - r10 : -r10;
        const float po = k == 0 ? r01 : k == 1 ? r01 + r11 : k == 2 ? r01 - r11 : -r11;
        u0[t] = pe;
        u1[t] = pe + po;
        u2[t] = pe - po;
        u3[t] = -po;
      }
    }
  }
}

// Row I of D = B Z Bᵀ for every tile: w_l = (B Z)[I][l] from the rows of Z that B's row I takes
// (z_rl at z + (4r + l)·plane), then D[I][j] = (w B ᵀ)[j] into d + (4I + j)·DS.
template <int I>
inline void input_grad_row(const float* z, int64_t plane, int64_t T, float* d, int64_t DS) {
  const float* __restrict z0 = z;
  const float* __restrict z1 = z + 4 * 1 * plane;
  const float* __restrict z2 = z + 4 * 2 * plane;
  const float* __restrict z3 = z + 4 * 3 * plane;
  float* __restrict o0 = d + (4 * I + 0) * DS;
  float* __restrict o1 = d + (4 * I + 1) * DS;
  float* __restrict o2 = d + (4 * I + 2) * DS;
  float* __restrict o3 = d + (4 * I + 3) * DS;
#pragma omp simd
  for (int64_t t = 0; t < T; ++t) {
    float w[4];
    for (int l = 0; l < 4; ++l) {
      const int64_t k = l * plane + t;
      if constexpr (I == 0) w[l] = z0[k];
      else if constexpr (I == 1) w[l] = (z1[k] - z2[k]) + z3[k];
      else if constexpr (I == 2) w[l] = (z1[k] + z2[k]) - z0[k];
      else w[l] = -z3[k];
    }
    o0[t] = w[0];
    o1[t] = (w[1] - w[2]) + w[3];
    o2[t] = (w[1] + w[2]) - w[0];
    o3[t] = -w[3];
  }
}

// The input gradient, the forward's adjoint: each 4 × 4 input tile gets D = B Z Bᵀ of its
// Z_ξ = Σ_f U_ξ[f][c] · (A dY Aᵀ)_ξ[f] (the caller's products), B = [1 0 0 0; 0 1 -1 1;
// -1 1 1 0; 0 0 0 -1] (rows w_0 = z_0, w_1 = (z_1 - z_2) + z_3, w_2 = (z_1 + z_2) - z_0,
// w_3 = -z_3, then the same on columns), and the overlapping tiles (2 apart, 4 wide) add into the
// padded plane: in the parity planes of the padded plane (split_parity's layout, S = p.S()),
// P[rp][cp][t] = ((D[rp][cp][t] + D[rp][cp + 2][t - 1]) + D[rp + 2][cp][t - S]) + D[rp + 2][cp + 2][t - S - 1],
// the four tiles whose corner it is, in that order. Spare tiles have Z = 0 (their A dY Aᵀ is 0),
// so the tile "left" of a row's first tile adds 0; D is 0 before the first tile row and past the
// last (scratch never written there). dx (channels × H × W) gets the plane's entries at the
// leading pads' offset. scratch: winograd_input_grad_scratch(p), zeroed before the thread's first
// call with the plan.
template <class Rows>
void winograd_input_grad_any(const float* z, int64_t ld, int64_t plane, const WinogradPlan& p, int64_t channels,
                             float* dx, int64_t stride, int64_t count, float* scratch) {
  const int64_t S = p.S(), T = p.TH * S, lead = S + 1, DS = winograd_input_grad_plane(p);
  const int64_t PT = T + S;  // parity-plane entries: tile rows 0..TH
  float* d = scratch + lead;   // D[4i + j] at d + (4i + j)·DS, DS - lead zeros before (never written)
  float* q = scratch + 16 * DS;  // P[2rp + cp] at q + (2rp + cp)·DS
  for (int64_t c = 0; c < channels; ++c) {
    // One pass per row i of D (w_i per column l from the z rows B's row i takes, then the
    // columns), each with only the loads it needs.
    const float* zc = z + c * ld;
    input_grad_row<0>(zc, plane, T, d, DS);
    input_grad_row<1>(zc, plane, T, d, DS);
    input_grad_row<2>(zc, plane, T, d, DS);
    input_grad_row<3>(zc, plane, T, d, DS);
    for (int rp = 0; rp < 2; ++rp)
      for (int cp = 0; cp < 2; ++cp) {
        const float* __restrict a = d + (4 * rp + cp) * DS;
        const float* __restrict b = d + (4 * rp + cp + 2) * DS - 1;
        const float* __restrict e = d + (4 * (rp + 2) + cp) * DS - S;
        const float* __restrict f = d + (4 * (rp + 2) + cp + 2) * DS - S - 1;
        float* __restrict o = q + (2 * rp + cp) * DS;
#pragma omp simd
        for (int64_t t = 0; t < PT; ++t) o[t] = ((a[t] + b[t]) + e[t]) + f[t];
      }
    // dx row r, column x is padded (r + pad_top, x + pad_left): parity plane
    // ((r + pad_top) % 2, (x + pad_left) % 2), entry ((r + pad_top) / 2)·S + (x + pad_left) / 2.
    const int64_t pt = p.pad_top, pleft = p.pad_left, H = p.H, W = p.W;
    for (int64_t a = 0; a < count; ++a) {
      float* out = dx + a * stride + c * H * W;
      for (int rp = 0; rp < 2; ++rp) {
        const int64_t r0 = ((rp - pt) % 2 + 2) % 2, rho0 = (r0 + pt) / 2, n_rows = (H - r0 + 1) / 2;
        if (n_rows <= 0) continue;
        const float* row = q + 2 * rp * DS + rho0 * S + a * p.TW;  // image a's padded column 0
        const float* even = row + (pleft % 2) * DS + pleft / 2;  // x = 2j: entry j + pad_left / 2
        const float* odd = row + ((pleft + 1) % 2) * DS + (pleft + 1) / 2;  // x = 2j + 1: j + (pad_left + 1) / 2
        Rows::interleave(even, odd, S, n_rows, W, out + r0 * W, 2 * W);
      }
    }
  }
}

// Rows: the unit's row movers, for rows r < rows of strided row sets:
// deinterleave(src, src_stride, rows, n_even, n_odd, even, odd, dst_stride): even[r·dst_stride + j]
// = src[r·src_stride + 2j] (j < n_even), odd[...] = src[r·src_stride + 2j + 1] (j < n_odd), reading
// no further; interleave(even, odd, src_stride, rows, n, out, out_stride): out[r·out_stride + i] =
// (i even ? even : odd)[r·src_stride + i / 2] for i < n.
template <class Rows>
WinogradTransforms winograd_transforms_any(int64_t tile) {
  WinogradTransforms t;
  if (tile == 4) {
    t = winograd4_transforms();
    t.weights = weight_transforms_tile<4>;
    t.weight_grad = weight_grad_transform4;
    return t;
  }
  t.input = winograd_input_any<Rows>;
  t.output = winograd_output_any<Rows>;
  t.grad_output = winograd_grad_output_any<Rows>;
  t.input_grad = winograd_input_grad_any<Rows>;
  t.weights = weight_transforms_tile<2>;
  t.weight_grad = weight_grad_transform2;
  return t;
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet

// Transform bodies of the Winograd F(4×4, 3×3) convolution (conv2d_winograd.h, WinogradPlan::tile
// == 4), compiled once per ISA unit with that unit's flags beside the F(2×2, 3×3) bodies
// (conv2d_winograd_body.h, which includes this file). Points 0, ±1, ±2 and ∞ (Lavin and Gray):
//   Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// (G, with its ¼, ⅙, 1/12 and 1/24, is applied once per call in conv2d_winograd.cpp.) Every value
// is one fixed expression of +, −, and products by 2, 4, 5, 8 (each written out; the units compile
// without contraction), so the auto-vectorised AVX2 / AVX-512 copies give the scalar copy's bits.
// The expressions group the sums so that the products by 4 and 8 scale differences of neighbours
// (the usual stable form: docs/design.md, "Convolution paths").
// Layout: as F(2×2): tile t = ty·S + a·TW + tx (a spare tile per tile row unless packed), so a tile's 6 × 6
// input, split by padded row and column mod 4 into 16 phase planes, sits at t, t + 1, t + S,
// t + S + 1 of them, and every transform is one unit-stride loop over all the tiles.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "dropnet/kernels/cpu/conv2d_winograd.h"

namespace dropnet {
namespace cpu {
namespace {

// The rows below are inlined into the vectorised loops (the vectoriser sees only straight-line
// arithmetic); their unused arguments are ignored.
#define DROPNET_W4_INLINE inline __attribute__((always_inline))

// Row K of Bᵀ applied to (d_0 … d_5).
template <int K>
DROPNET_W4_INLINE float bt_row([[maybe_unused]] float d0, [[maybe_unused]] float d1,
    [[maybe_unused]] float d2, [[maybe_unused]] float d3, [[maybe_unused]] float d4,
    [[maybe_unused]] float d5) {
  if constexpr (K == 0) return 4.f * (d0 - d2) + (d4 - d2);
  else if constexpr (K == 1) return (d4 - 4.f * d2) + (d3 - 4.f * d1);
  else if constexpr (K == 2) return (d4 - 4.f * d2) - (d3 - 4.f * d1);
  else if constexpr (K == 3) return (d4 - d2) + 2.f * (d3 - d1);
  else if constexpr (K == 4) return (d4 - d2) - 2.f * (d3 - d1);
  else return 4.f * (d1 - d3) + (d5 - d3);
}

// Row I of Aᵀ applied to (m_0 … m_5).
template <int I>
DROPNET_W4_INLINE float at_row([[maybe_unused]] float m0, [[maybe_unused]] float m1,
    [[maybe_unused]] float m2, [[maybe_unused]] float m3, [[maybe_unused]] float m4,
    [[maybe_unused]] float m5) {
  if constexpr (I == 0) return (m0 + (m1 + m2)) + (m3 + m4);
  else if constexpr (I == 1) return (m1 - m2) + 2.f * (m3 - m4);
  else if constexpr (I == 2) return (m1 + m2) + 4.f * (m3 + m4);
  else return ((m1 - m2) + 8.f * (m3 - m4)) + m5;
}

// Row K of A (the transpose of Aᵀ: 6 × 4) applied to (r_0 … r_3).
template <int K>
DROPNET_W4_INLINE float a_row([[maybe_unused]] float r0, [[maybe_unused]] float r1,
    [[maybe_unused]] float r2, [[maybe_unused]] float r3, [[maybe_unused]] float r4,
    [[maybe_unused]] float r5) {
  if constexpr (K == 0) return r0;
  else if constexpr (K == 1) return (r0 + r2) + (r1 + r3);
  else if constexpr (K == 2) return (r0 + r2) - (r1 + r3);
  else if constexpr (K == 3) return (r0 + 4.f * r2) + 2.f * (r1 + 4.f * r3);
  else if constexpr (K == 4) return (r0 + 4.f * r2) - 2.f * (r1 + 4.f * r3);
  else return r3;
}

// Row I of B (column I of Bᵀ) applied to (z_0 … z_5): the adjoint of bt_row.
template <int I>
DROPNET_W4_INLINE float b_row([[maybe_unused]] float z0, [[maybe_unused]] float z1,
    [[maybe_unused]] float z2, [[maybe_unused]] float z3, [[maybe_unused]] float z4,
    [[maybe_unused]] float z5) {
  if constexpr (I == 0) return 4.f * z0;
  else if constexpr (I == 1) return 4.f * ((z2 - z1) + z5) + 2.f * (z4 - z3);
  else if constexpr (I == 2) return (-5.f * z0 - 4.f * (z1 + z2)) - (z3 + z4);
  else if constexpr (I == 3) return ((z1 - z2) + 2.f * (z3 - z4)) - 5.f * z5;
  else if constexpr (I == 4) return (z0 + (z1 + z2)) + (z3 + z4);
  else return z5;
}

// The four matrices as row sets for lines() below.
struct BtRows {
  template <int K>
  static DROPNET_W4_INLINE float row(float a, float b, float c, float d, float e, float f) {
    return bt_row<K>(a, b, c, d, e, f);
  }
};
struct AtRows {
  template <int K>
  static DROPNET_W4_INLINE float row(float a, float b, float c, float d, float e, float f) {
    return at_row<K>(a, b, c, d, e, f);
  }
};
struct ARows {
  template <int K>
  static DROPNET_W4_INLINE float row(float a, float b, float c, float d, float e, float f) {
    return a_row<K>(a, b, c, d, e, f);
  }
};
struct BRows {
  template <int K>
  static DROPNET_W4_INLINE float row(float a, float b, float c, float d, float e, float f) {
    return b_row<K>(a, b, c, d, e, f);
  }
};

// out_k[t] = row k of Rows applied to (in_0[t] … in_{NIN−1}[t]), k < NOUT, t < T: one line of a
// two-pass transform (rows of every tile, then columns), a unit-stride loop over the tiles with
// NIN + NOUT pointers (few enough to stay in registers, so it vectorises over t).
template <int NIN, int NOUT, class Rows>
inline void lines(const float* const (&in)[6], float* const (&out)[6], int64_t T) {
  const float* __restrict i0 = in[0];
  const float* __restrict i1 = in[1];
  const float* __restrict i2 = in[2];
  const float* __restrict i3 = in[3];
  const float* __restrict i4 = in[NIN > 4 ? 4 : 0];
  const float* __restrict i5 = in[NIN > 5 ? 5 : 0];
  float* __restrict o0 = out[0];
  float* __restrict o1 = out[1];
  float* __restrict o2 = out[2];
  float* __restrict o3 = out[3];
  float* __restrict o4 = out[NOUT > 4 ? 4 : 0];
  float* __restrict o5 = out[NOUT > 5 ? 5 : 0];
#pragma omp simd
  for (int64_t t = 0; t < T; ++t) {
    const float x0 = i0[t], x1 = i1[t], x2 = i2[t], x3 = i3[t];
    const float x4 = NIN > 4 ? i4[t] : 0.f, x5 = NIN > 5 ? i5[t] : 0.f;
    o0[t] = Rows::template row<0>(x0, x1, x2, x3, x4, x5);
    o1[t] = Rows::template row<1>(x0, x1, x2, x3, x4, x5);
    o2[t] = Rows::template row<2>(x0, x1, x2, x3, x4, x5);
    o3[t] = Rows::template row<3>(x0, x1, x2, x3, x4, x5);
    if constexpr (NOUT > 4) o4[t] = Rows::template row<4>(x0, x1, x2, x3, x4, x5);
    if constexpr (NOUT > 5) o5[t] = Rows::template row<5>(x0, x1, x2, x3, x4, x5);
  }
}

// Where each element of a plane lands in the 16 phase planes (PS floats apart) of its padded
// plane: off[r·W + x] = (4·(pr % 4) + pc % 4)·PS + (pr / 4)·S + pc / 4 with pr = r + pad_top, pc = x + pad_left, for the rows whose tile row pr / 4 is below `rows`.
// Returns how many elements that is (whole rows, from the top). Built once per transform call
// into the scratch past the line buffer (winograd_line_buffer) and read as int32 through memcpy
// (the scratch is float storage). The split (plane → phases) and the gathers back are then one
// move per element in the plane's order: per-row movers with scalar edge columns cost several
// times their moves on 7 × 7 planes (35 % of an F(4×4) forward at 128 → 128, 7 × 7). Data
// movement only: no ISA changes a bit.
inline int64_t phase_offsets4(int64_t H, int64_t W, int64_t pad_top, int64_t pad_left, int64_t rows, int64_t S,
                              int64_t PS, float* table) {
  int64_t n = 0;
  for (int64_t r = 0; r < H; ++r) {
    const int64_t pr = r + pad_top;
    if (pr / 4 >= rows) break;
    const int64_t row_base = 4 * (pr % 4) * PS + (pr / 4) * S;
    for (int64_t x = 0; x < W; ++x, ++n) {
      const int64_t pc = x + pad_left;
      const int32_t off = static_cast<int32_t>(row_base + (pc % 4) * PS + pc / 4);
      std::memcpy(table + n, &off, sizeof off);
    }
  }
  return n;
}

inline int32_t phase_offset(const float* table, int64_t e) {
  int32_t off;
  std::memcpy(&off, table + e, sizeof off);
  return off;
}

// q[table[e]] = plane[e], e < n (the split), and its inverse plane[e] = q[table[e]]. The AVX-512
// unit's copies vectorise as scatters and gathers: as fast as scalar moves on the Zen 4 host.
inline void phase_split4(const float* __restrict plane, const float* __restrict table, int64_t n,
                         float* __restrict q) {
#pragma GCC unroll 4
  for (int64_t e = 0; e < n; ++e) q[phase_offset(table, e)] = plane[e];
}
inline void phase_gather4(const float* __restrict q, const float* __restrict table, int64_t n,
                          float* __restrict plane) {
#pragma GCC unroll 4
  for (int64_t e = 0; e < n; ++e) plane[e] = q[phase_offset(table, e)];
}

// WinogradTransforms::input for tile 4: V = Bᵀ d B, rows first (E[k][j] = (Bᵀ d)[k][j] per
// column j of the tile, into a line buffer), then columns (V[k][l] = (E[k] B)[l]); d(i, j) at
// q[(4·(i % 4) + j % 4)·PS + (i / 4)·S + j / 4 + t]. Scratch: in_channels × 16 phase planes of
// T + 2S, then 36 lines of T (winograd_input_scratch).
void winograd4_input(const float* x, int64_t stride, int64_t count, const WinogradPlan& p, float* v, int64_t ld,
                     int64_t plane, float* scratch) {
  const int64_t S = p.S(), T = p.tiles_padded(), rows = p.TH + 2, HW = p.H * p.W, PS = T + 2 * S;
  float* lines_buf = scratch + p.in_channels * 16 * PS;
  float* table = lines_buf + 36 * T;
  // A group short of images: its empty places read 0 (an earlier group wrote them).
  if (count < p.across) std::fill(scratch, lines_buf, 0.f);
  // Only the plane's own entries are written: the padding's entries are 0 from the caller's
  // zeroing and stay so (no image's data lands there; WinogradPlan::packs keeps each image's
  // columns short of the next image's first tile).
  const int64_t n = phase_offsets4(p.H, p.W, p.pad_top, p.pad_left, rows, S, PS, table);
  for (int64_t c = 0; c < p.in_channels; ++c)
    for (int64_t a = 0; a < count; ++a)
      phase_split4(x + a * stride + c * HW, table, n, scratch + c * 16 * PS + a * p.TW);
  for (int64_t c = 0; c < p.in_channels; ++c) {
    const float* q = scratch + c * 16 * PS;
    for (int j = 0; j < 6; ++j) {
      const float* in[6];
      float* out[6];
      for (int i = 0; i < 6; ++i) {
        in[i] = q + (4 * (i % 4) + j % 4) * PS + (i / 4) * S + j / 4;
        out[i] = lines_buf + (6 * i + j) * T;
      }
      lines<6, 6, BtRows>(in, out, T);
    }
    for (int k = 0; k < 6; ++k) {
      const float* in[6];
      float* out[6];
      for (int l = 0; l < 6; ++l) {
        in[l] = lines_buf + (6 * k + l) * T;
        out[l] = v + (6 * k + l) * plane + c * ld;
      }
      lines<6, 6, BtRows>(in, out, T);
    }
  }
}

// WinogradTransforms::output for tile 4: Y = Aᵀ M A, rows first (Aᵀ M per column l, into the
// line buffer), then columns, into 16 phase arrays (Y[i][j] at scratch + (4i + j)·T), + bias,
// then each image's rows gathered from them. Scratch: 16·T, then 24 lines of T.
void winograd4_output(const float* m, int64_t ld, int64_t plane, const WinogradPlan& p, int64_t channels,
                      const float* bias, float* y, int64_t stride, int64_t count, float* scratch) {
  const int64_t S = p.S(), T = p.tiles_padded(), OW = p.OW, OH = p.OH, P = OH * OW;
  float* rows = scratch + 16 * T;
  const int64_t n = phase_offsets4(OH, OW, 0, 0, p.TH, S, T, rows + 36 * T);
  for (int64_t f = 0; f < channels; ++f) {
    for (int l = 0; l < 6; ++l) {
      const float* in[6];
      float* out[6] = {};
      for (int k = 0; k < 6; ++k) in[k] = m + (6 * k + l) * plane + f * ld;
      for (int i = 0; i < 4; ++i) out[i] = rows + (6 * i + l) * T;
      lines<6, 4, AtRows>(in, out, T);
    }
    for (int i = 0; i < 4; ++i) {
      const float* in[6];
      float* out[6] = {};
      for (int l = 0; l < 6; ++l) in[l] = rows + (6 * i + l) * T;
      for (int j = 0; j < 4; ++j) out[j] = scratch + (4 * i + j) * T;
      lines<6, 4, AtRows>(in, out, T);
    }
    if (bias) {
      const float b = bias[f];
      for (int64_t t = 0; t < 16 * T; ++t) scratch[t] = scratch[t] + b;
    }
    for (int64_t a = 0; a < count; ++a) phase_gather4(scratch + a * p.TW, rows + 36 * T, n, y + a * stride + f * P);
  }
}

// WinogradTransforms::grad_output for tile 4: U = A dY Aᵀ, rows first (A dY per column j of the
// tile, into the line buffer), then columns; dY(i, j) at q + (4i + j)·T + t. Scratch: channels ×
// 16 phase planes of T, then 24 lines of T.
void winograd4_grad_output(const float* dy, int64_t stride, int64_t count, const WinogradPlan& p, int64_t channels,
                           float* u, int64_t ld, int64_t plane, float* scratch) {
  const int64_t S = p.S(), T = p.tiles_padded(), P = p.OH * p.OW;
  float* lines_buf = scratch + channels * 16 * T;
  float* table = lines_buf + 36 * T;
  // A group short of images: its empty places read 0 (an earlier group wrote them). Past each
  // image's output columns its tiles read 0 (entries no image writes, 0 from the caller's zeroing).
  if (count < p.across) std::fill(scratch, lines_buf, 0.f);
  const int64_t n = phase_offsets4(p.OH, p.OW, 0, 0, p.TH, S, T, table);
  for (int64_t f = 0; f < channels; ++f)
    for (int64_t a = 0; a < count; ++a) phase_split4(dy + a * stride + f * P, table, n, scratch + f * 16 * T + a * p.TW);
  for (int64_t f = 0; f < channels; ++f) {
    const float* q = scratch + f * 16 * T;
    for (int j = 0; j < 4; ++j) {
      const float* in[6] = {};
      float* out[6];
      for (int i = 0; i < 4; ++i) in[i] = q + (4 * i + j) * T;
      for (int k = 0; k < 6; ++k) out[k] = lines_buf + (4 * k + j) * T;
      lines<4, 6, ARows>(in, out, T);
    }
    for (int k = 0; k < 6; ++k) {
      const float* in[6] = {};
      float* out[6];
      for (int j = 0; j < 4; ++j) in[j] = lines_buf + (4 * k + j) * T;
      for (int l = 0; l < 6; ++l) out[l] = u + (6 * k + l) * plane + f * ld;
      lines<4, 6, ARows>(in, out, T);
    }
  }
}

// WinogradTransforms::input_grad for tile 4: each 6 × 6 input tile gets D = B Z Bᵀ, and the
// overlapping tiles (4 apart, 6 wide) add into the padded plane's 16 phase planes:
// P[rp][cp][t] = ((D[rp][cp][t] + D[rp][cp + 4][t − 1]) + D[rp + 4][cp][t − S]) + D[rp + 4][cp + 4][t − S − 1],
// the terms that exist (rows and columns 4 and 5 exist only for phases 0 and 1), in that order: the
// tile whose corner it is first. Spare tiles have Z = 0 (their A dY Aᵀ is 0), D is 0 before the
// first tile row and past the last (never written). Scratch: winograd_input_grad_scratch(p)
// (36 planes of D, 16 of P, 36 lines of T), zeroed before the thread's first call with the plan.
void winograd4_input_grad(const float* z, int64_t ld, int64_t plane, const WinogradPlan& p, int64_t channels,
                          float* dx, int64_t stride, int64_t count, float* scratch) {
  const int64_t S = p.S(), T = p.TH * S, lead = S + 1, DS = winograd_input_grad_plane(p);
  const int64_t PT = T + S;
  float* d = scratch + lead;
  float* q = scratch + 36 * DS;
  float* rows = scratch + 52 * DS;
  const int64_t H = p.H, W = p.W;
  float* table = rows + 36 * p.tiles_padded();
  const int64_t n = phase_offsets4(H, W, p.pad_top, p.pad_left, p.TH + 2, S, DS, table);
  for (int64_t c = 0; c < channels; ++c) {
    // D = B Z Bᵀ: rows first (B Z per column l, into the line buffer), then columns; z(k, l) at
    // z + (6k + l)·plane + c·ld + t, D[i][j] at d + (6i + j)·DS.
    for (int l = 0; l < 6; ++l) {
      const float* in[6];
      float* out[6];
      for (int k = 0; k < 6; ++k) in[k] = z + (6 * k + l) * plane + c * ld;
      for (int i = 0; i < 6; ++i) out[i] = rows + (6 * i + l) * T;
      lines<6, 6, BRows>(in, out, T);
    }
    for (int i = 0; i < 6; ++i) {
      const float* in[6];
      float* out[6];
      for (int l = 0; l < 6; ++l) in[l] = rows + (6 * i + l) * T;
      for (int j = 0; j < 6; ++j) out[j] = d + (6 * i + j) * DS;
      lines<6, 6, BRows>(in, out, T);
    }
    for (int rp = 0; rp < 4; ++rp)
      for (int cp = 0; cp < 4; ++cp) {
        const float* __restrict a = d + (6 * rp + cp) * DS;
        float* __restrict o = q + (4 * rp + cp) * DS;
        if (rp < 2 && cp < 2) {
          const float* __restrict b = d + (6 * rp + cp + 4) * DS - 1;
          const float* __restrict e = d + (6 * (rp + 4) + cp) * DS - S;
          const float* __restrict f = d + (6 * (rp + 4) + cp + 4) * DS - S - 1;
#pragma omp simd
          for (int64_t t = 0; t < PT; ++t) o[t] = ((a[t] + b[t]) + e[t]) + f[t];
        } else if (cp < 2) {
          const float* __restrict b = d + (6 * rp + cp + 4) * DS - 1;
#pragma omp simd
          for (int64_t t = 0; t < PT; ++t) o[t] = a[t] + b[t];
        } else if (rp < 2) {
          const float* __restrict e = d + (6 * (rp + 4) + cp) * DS - S;
#pragma omp simd
          for (int64_t t = 0; t < PT; ++t) o[t] = a[t] + e[t];
        } else {
          std::copy(a, a + PT, o);
        }
      }
    // dx (r, x) is the padded plane's (r + pad_top, x + pad_left): phase_offsets4's entry.
    for (int64_t a = 0; a < count; ++a) phase_gather4(q + a * p.TW, table, n, dx + a * stride + c * H * W);
  }
}

WinogradTransforms winograd4_transforms() {
  WinogradTransforms t;
  t.input = winograd4_input;
  t.output = winograd4_output;
  t.grad_output = winograd4_grad_output;
  t.input_grad = winograd4_input_grad;
  return t;
}

#undef DROPNET_W4_INLINE

}  // namespace
}  // namespace cpu
}  // namespace dropnet

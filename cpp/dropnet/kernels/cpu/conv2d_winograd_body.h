// Transform bodies of the Winograd F(2×2, 3×3) convolution (conv2d_winograd.h), compiled once per
// ISA unit with that unit's flags; the anonymous namespace keeps each unit's copy private. Every
// value is a fixed expression of additions, subtractions and negations (no multiplies, nothing to
// contract), so the auto-vectorised AVX2 / AVX-512 copies give the scalar copy's bits.
// Loop order: per channel, per tile row; the inner loops run over the tiles of the row (tx) on
// columns split into even / odd arrays, so every inner loop is unit-stride and vectorises.
#pragma once
#include <algorithm>
#include <cstdint>

#include "dropnet/kernels/cpu/conv2d_winograd.h"

namespace dropnet {
namespace cpu {
namespace {

// Row `r` of plane x (H × W), columns 2m - pad_left (even[m]) and 2m + 1 - pad_left (odd[m]) for
// m in [0, count); 0 outside the plane or for a row outside it.
inline void load_split_row(const float* x, int64_t r, const WinogradPlan& p, int64_t count, float* even, float* odd) {
  if (r < 0 || r >= p.H) {
    std::fill(even, even + count, 0.f);
    std::fill(odd, odd + count, 0.f);
    return;
  }
  const float* row = x + r * p.W;
  for (int64_t m = 0; m < count; ++m) {
    const int64_t c0 = 2 * m - p.pad_left, c1 = c0 + 1;
    even[m] = (c0 >= 0 && c0 < p.W) ? row[c0] : 0.f;
    odd[m] = (c1 >= 0 && c1 < p.W) ? row[c1] : 0.f;
  }
}

// V = Bᵀ d B, Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], on rows first (e_k), then columns.
void winograd_input_any(const float* x, const WinogradPlan& p, float* __restrict v, int64_t ld, int64_t plane,
                        float* scratch) {
  const int64_t TW = p.TW, n = TW + 1;
  float* __restrict re[4];  // rows 0..3 of the tile row, even columns
  float* __restrict ro[4];  // odd columns
  for (int k = 0; k < 4; ++k) {
    re[k] = scratch + (2 * k) * n;
    ro[k] = scratch + (2 * k + 1) * n;
  }
  float* __restrict ee = scratch + 8 * n;  // e_k, even / odd columns
  float* __restrict eo = scratch + 9 * n;
  const int64_t HW = p.H * p.W;
  for (int64_t c = 0; c < p.in_channels; ++c) {
    const float* xc = x + c * HW;
    for (int64_t ty = 0; ty < p.TH; ++ty) {
      const int64_t r0 = 2 * ty - p.pad_top;
      for (int k = 0; k < 4; ++k) load_split_row(xc, r0 + k, p, n, re[k], ro[k]);
      for (int k = 0; k < 4; ++k) {
        // e_0 = d_0 - d_2, e_1 = d_1 + d_2, e_2 = d_2 - d_1, e_3 = d_1 - d_3 (d_k: row k of the tile)
        static constexpr int kLhs[4] = {0, 1, 2, 1}, kRhs[4] = {2, 2, 1, 3};
        const float* __restrict ae = re[kLhs[k]];
        const float* __restrict ao = ro[kLhs[k]];
        const float* __restrict be = re[kRhs[k]];
        const float* __restrict bo = ro[kRhs[k]];
        if (k == 1) {
          for (int64_t m = 0; m < n; ++m) {
            ee[m] = ae[m] + be[m];
            eo[m] = ao[m] + bo[m];
          }
        } else {
          for (int64_t m = 0; m < n; ++m) {
            ee[m] = ae[m] - be[m];
            eo[m] = ao[m] - bo[m];
          }
        }
        float* __restrict v0 = v + (4 * k + 0) * plane + c * ld + ty * TW;
        float* __restrict v1 = v + (4 * k + 1) * plane + c * ld + ty * TW;
        float* __restrict v2 = v + (4 * k + 2) * plane + c * ld + ty * TW;
        float* __restrict v3 = v + (4 * k + 3) * plane + c * ld + ty * TW;
        // columns 2tx .. 2tx + 3 are ee[tx], eo[tx], ee[tx + 1], eo[tx + 1]
        for (int64_t tx = 0; tx < TW; ++tx) {
          v0[tx] = ee[tx] - ee[tx + 1];
          v1[tx] = eo[tx] + ee[tx + 1];
          v2[tx] = ee[tx + 1] - eo[tx];
          v3[tx] = eo[tx] - eo[tx + 1];
        }
      }
    }
  }
}

// Y = Aᵀ M A, Aᵀ = [1 1 1 0; 0 1 -1 -1]: rows first (a_0, a_1 per column l), then columns;
// + bias after the transform.
void winograd_output_any(const float* m, int64_t ld, int64_t plane, const WinogradPlan& p, int64_t channels,
                         const float* bias, float* y, float* scratch) {
  const int64_t TW = p.TW, OW = p.OW;
  float* __restrict a0[4];
  float* __restrict a1[4];
  for (int l = 0; l < 4; ++l) {
    a0[l] = scratch + (2 * l) * TW;
    a1[l] = scratch + (2 * l + 1) * TW;
  }
  float* __restrict row0 = scratch + 8 * TW;  // output rows 2ty, 2ty + 1, interleaved columns
  float* __restrict row1 = scratch + 10 * TW;
  const int64_t P = p.OH * OW;
  for (int64_t f = 0; f < channels; ++f) {
    const float b = bias ? bias[f] : 0.f;
    float* yf = y + f * P;
    for (int64_t ty = 0; ty < p.TH; ++ty) {
      const int64_t t0 = f * ld + ty * TW;
      for (int l = 0; l < 4; ++l) {
        const float* __restrict m0 = m + (0 + l) * plane + t0;
        const float* __restrict m1 = m + (4 + l) * plane + t0;
        const float* __restrict m2 = m + (8 + l) * plane + t0;
        const float* __restrict m3 = m + (12 + l) * plane + t0;
        float* __restrict s0 = a0[l];
        float* __restrict s1 = a1[l];
        for (int64_t tx = 0; tx < TW; ++tx) {
          s0[tx] = (m0[tx] + m1[tx]) + m2[tx];
          s1[tx] = (m1[tx] - m2[tx]) - m3[tx];
        }
      }
      if (bias) {
        for (int64_t tx = 0; tx < TW; ++tx) {
          row0[2 * tx] = ((a0[0][tx] + a0[1][tx]) + a0[2][tx]) + b;
          row0[2 * tx + 1] = ((a0[1][tx] - a0[2][tx]) - a0[3][tx]) + b;
          row1[2 * tx] = ((a1[0][tx] + a1[1][tx]) + a1[2][tx]) + b;
          row1[2 * tx + 1] = ((a1[1][tx] - a1[2][tx]) - a1[3][tx]) + b;
        }
      } else {
        for (int64_t tx = 0; tx < TW; ++tx) {
          row0[2 * tx] = (a0[0][tx] + a0[1][tx]) + a0[2][tx];
          row0[2 * tx + 1] = (a0[1][tx] - a0[2][tx]) - a0[3][tx];
          row1[2 * tx] = (a1[0][tx] + a1[1][tx]) + a1[2][tx];
          row1[2 * tx + 1] = (a1[1][tx] - a1[2][tx]) - a1[3][tx];
        }
      }
      const int64_t oh = 2 * ty;
      std::copy(row0, row0 + OW, yf + oh * OW);
      if (oh + 1 < p.OH) std::copy(row1, row1 + OW, yf + (oh + 1) * OW);
    }
  }
}

// U = A dY Aᵀ (A = [1 0; 1 1; 1 -1; 0 -1]) of each 2 × 2 tile of dy (OH × OW planes; 0 past the
// edge): rows r_0, r_0 + r_1, r_0 - r_1, -r_1, then the same on columns.
void winograd_grad_output_any(const float* dy, const WinogradPlan& p, int64_t channels, float* __restrict u, int64_t ld,
                              int64_t plane, float* scratch) {
  const int64_t TW = p.TW, OW = p.OW, P = p.OH * OW;
  float* __restrict e0 = scratch;  // dy rows 2ty, 2ty + 1: even / odd columns
  float* __restrict o0 = scratch + TW;
  float* __restrict e1 = scratch + 2 * TW;
  float* __restrict o1 = scratch + 3 * TW;
  float* __restrict pe = scratch + 4 * TW;  // one row combination, even / odd columns
  float* __restrict po = scratch + 5 * TW;
  for (int64_t f = 0; f < channels; ++f) {
    const float* dyf = dy + f * P;
    for (int64_t ty = 0; ty < p.TH; ++ty) {
      for (int r = 0; r < 2; ++r) {
        const int64_t oh = 2 * ty + r;
        float* ev = r == 0 ? e0 : e1;
        float* od = r == 0 ? o0 : o1;
        if (oh >= p.OH) {
          std::fill(ev, ev + TW, 0.f);
          std::fill(od, od + TW, 0.f);
          continue;
        }
        const float* row = dyf + oh * OW;
        for (int64_t tx = 0; tx < TW; ++tx) {
          ev[tx] = row[2 * tx];
          od[tx] = 2 * tx + 1 < OW ? row[2 * tx + 1] : 0.f;
        }
      }
      for (int k = 0; k < 4; ++k) {
        if (k == 0) {
          for (int64_t tx = 0; tx < TW; ++tx) {
            pe[tx] = e0[tx];
            po[tx] = o0[tx];
          }
        } else if (k == 1) {
          for (int64_t tx = 0; tx < TW; ++tx) {
            pe[tx] = e0[tx] + e1[tx];
            po[tx] = o0[tx] + o1[tx];
          }
        } else if (k == 2) {
          for (int64_t tx = 0; tx < TW; ++tx) {
            pe[tx] = e0[tx] - e1[tx];
            po[tx] = o0[tx] - o1[tx];
          }
        } else {
          for (int64_t tx = 0; tx < TW; ++tx) {
            pe[tx] = -e1[tx];
            po[tx] = -o1[tx];
          }
        }
        float* __restrict u0 = u + (4 * k + 0) * plane + f * ld + ty * TW;
        float* __restrict u1 = u + (4 * k + 1) * plane + f * ld + ty * TW;
        float* __restrict u2 = u + (4 * k + 2) * plane + f * ld + ty * TW;
        float* __restrict u3 = u + (4 * k + 3) * plane + f * ld + ty * TW;
        for (int64_t tx = 0; tx < TW; ++tx) {
          u0[tx] = pe[tx];
          u1[tx] = pe[tx] + po[tx];
          u2[tx] = pe[tx] - po[tx];
          u3[tx] = -po[tx];
        }
      }
    }
  }
}

inline WinogradTransforms winograd_transforms_any() {
  WinogradTransforms t;
  t.input = winograd_input_any;
  t.output = winograd_output_any;
  t.grad_output = winograd_grad_output_any;
  return t;
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet

#include "dropnet/kernels/cpu/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "dropnet/core/parallel.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/conv2d_winograd.h"

namespace dropnet {
namespace cpu {

namespace {

// A 1×1 kernel with unit stride and no padding reads x[n] as its columns unchanged.
bool columns_are_input(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0 &&
         g.OH == g.H && g.OW == g.W;
}

// acc[r] = (first ? 0 : acc[r]) + float(Σ_q planes[r·P + q]) for r < count: each plane summed in
// double, q ascending (the bias gradient of one image, 1×1 path). Eight planes run side by side
// for instruction-level parallelism; each plane's order of additions is unchanged.
void add_plane_sums(const float* planes, int64_t count, int64_t P, bool first, float* acc) {
  constexpr int64_t kSide = 8;
  for (int64_t r0 = 0; r0 < count; r0 += kSide) {
    const int64_t n = std::min(kSide, count - r0);
    double s[kSide] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int64_t q = 0; q < P; ++q)
      for (int64_t r = 0; r < n; ++r) s[r] += planes[(r0 + r) * P + q];
    for (int64_t r = 0; r < n; ++r) acc[r0 + r] = first ? static_cast<float>(s[r]) : acc[r0 + r] + static_cast<float>(s[r]);
  }
}

// Rows [K, K1) of a thread's K1 × P im2col columns set to 1 (once per thread: im2col writes only
// rows below K): the GEMM then adds the bias (forward) or sums the bias gradient (backward).
void fill_ones_rows(float* cols, int64_t K, int64_t K1, int64_t P) { std::fill(cols + K * P, cols + K1 * P, 1.f); }

}  // namespace

int conv_parts_for_workspace(int64_t items, int64_t fixed, int64_t per_part, int64_t workspace_floats) {
  int64_t parts = std::min<int64_t>(get_num_threads(), items);
  if (per_part > 0) parts = std::min(parts, (workspace_floats - fixed) / per_part);
  return static_cast<int>(std::max<int64_t>(parts, 1));
}

int64_t conv2d_forward_workspace(const ConvGeometry& g, int64_t F, bool has_bias, int threads) {
  if (winograd_applies(g, F)) return winograd_forward_workspace(g, F, threads);
  const int64_t K1 = g.col_rows() + (has_bias ? 1 : 0);
  const int64_t weight = has_bias ? F * K1 : 0;
  const int64_t cols = (columns_are_input(g) && !has_bias) ? 0 : K1 * g.col_cols();
  return weight + std::max(threads, 1) * cols;
}

void conv2d_forward(const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F,
                    const float* bias, Activation activation, float leaky_slope, float* y, float* workspace,
                    int64_t workspace_floats) {
  if (winograd_applies(g, F))
    return winograd_forward(x, N, g, w, F, bias, activation, leaky_slope, y, workspace, workspace_floats);
  const int64_t K = g.col_rows(), P = g.col_cols(), CHW = g.C * g.H * g.W;
  const int64_t G = g.groups, Fg = F / G, CgHW = g.group_channels() * g.H * g.W;
  const bool has_bias = bias != nullptr;
  const int64_t K1 = K + (has_bias ? 1 : 0);
  const bool direct = columns_are_input(g) && !has_bias;
  const float* weight = w;
  float* cols_base = workspace;
  if (has_bias) {  // [w | bias]: F × (K + 1)
    float* aug = workspace;
    for (int64_t f = 0; f < F; ++f) {
      std::memcpy(aug + f * K1, w + f * K, sizeof(float) * K);
      aug[f * K1 + K] = bias[f];
    }
    weight = aug;
    cols_base = workspace + F * K1;
  }
  const int64_t per_part = direct ? 0 : K1 * P;
  const int parts = conv_parts_for_workspace(N, cols_base - workspace, per_part, workspace_floats);
  GemmEpilogue epilogue;
  epilogue.activation = activation;
  epilogue.leaky_slope = leaky_slope;
  const GemmEpilogue* ep = activation == Activation::identity ? nullptr : &epilogue;
  // Images are independent: handed out one at a time to whichever thread is free.
  for_each_item(
      N, parts,
      [&](int part) {
        if (has_bias) fill_ones_rows(cols_base + part * per_part, K, K1, P);
      },
      [&](int part, int64_t n) {
        float* cols = cols_base + part * per_part;
        for (int64_t gi = 0; gi < G; ++gi) {
          const float* xg = x + n * CHW + gi * CgHW;
          if (!direct) im2col(xg, g, cols, P);
          sgemm(false, false, Fg, P, K1, 1.f, weight + gi * Fg * K1, K1, direct ? xg : cols, P, 0.f,
                y + (n * F + gi * Fg) * P, P, ep);
        }
      });
}

int64_t conv2d_backward_workspace(const ConvGeometry& g, int64_t N, int64_t F, int threads) {
  if (winograd_applies(g, F)) return winograd_backward_workspace(g, N, F, threads);
  const int64_t K = g.col_rows(), P = g.col_cols();
  const int64_t chunks = (N + kConvImagesPerChunk - 1) / kConvImagesPerChunk;
  const int64_t partials = chunks * F * (K + 1);
  return partials + std::max(threads, 1) * (columns_are_input(g) ? 0 : (K + 1) * P);
}

void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvGeometry& g, const float* w,
                     int64_t F, float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats) {
  if (winograd_applies(g, F)) return winograd_backward(dy, x, N, g, w, F, dx, dw, db, workspace, workspace_floats);
  const int64_t K = g.col_rows(), P = g.col_cols(), CHW = g.C * g.H * g.W;
  const int64_t G = g.groups, Fg = F / G, CgHW = g.group_channels() * g.H * g.W;
  const bool direct = columns_are_input(g);
  // With im2col columns, a row of ones under them makes the weight-gradient GEMM produce the bias
  // gradient too, as column K of an F × (K + 1) partial (the forward's trick, transposed).
  const bool bias_in_gemm = db && !direct;
  const int64_t K1 = K + (bias_in_gemm ? 1 : 0);
  const int64_t chunks = (N + kConvImagesPerChunk - 1) / kConvImagesPerChunk;
  const int64_t partial_size = F * (K + 1);  // dw (F × K1) then, for 1×1 only, db (F)
  float* partials = workspace;
  float* cols_base = workspace + chunks * partial_size;
  const int64_t per_part = direct ? 0 : K1 * P;
  const int parts = conv_parts_for_workspace(chunks, chunks * partial_size, per_part, workspace_floats);

  // Chunks are independent (each has its own partial): handed out to whichever thread is free.
  for_each_item(
      chunks, parts,
      [&](int part) {
        if (bias_in_gemm) fill_ones_rows(cols_base + part * per_part, K, K1, P);
      },
      [&](int part, int64_t chunk) {
        float* cols = cols_base + part * per_part;
        float* pdw = partials + chunk * partial_size;
        float* pdb = pdw + F * K;  // 1×1 path only
        const int64_t n_end = std::min(N, (chunk + 1) * kConvImagesPerChunk);
        for (int64_t n = chunk * kConvImagesPerChunk; n < n_end; ++n)
          for (int64_t gi = 0; gi < G; ++gi) {
            const bool first = n == chunk * kConvImagesPerChunk;
            const float* dyg = dy + (n * F + gi * Fg) * P;
            const float* xg = x + n * CHW + gi * CgHW;
            if (!direct) im2col(xg, g, cols, P);
            // partial rows of group gi (Fg × K1) (+)= dy[n, group] (Fg × P) · cols (K1 × P)ᵀ
            sgemm(false, true, Fg, K1, P, 1.f, dyg, P, direct ? xg : cols, P, first ? 0.f : 1.f, pdw + gi * Fg * K1,
                  K1);
            if (db && direct) add_plane_sums(dyg, Fg, P, first, pdb + gi * Fg);
            if (dx) {
              float* dxg = dx + n * CHW + gi * CgHW;
              // d cols (K × P) = w_groupᵀ (K × Fg) · dy[n, group] (Fg × P); straight into dx for 1×1.
              sgemm(true, false, K, P, Fg, 1.f, w + gi * Fg * K, K, dyg, P, 0.f, direct ? dxg : cols, P);
              if (!direct) col2im(cols, P, g, dxg);
            }
          }
      });

  // Sum the chunk partials in chunk order; threads split the (independent) output elements.
  const int64_t total = F * K1 + (db && direct ? F : 0);
  const int out_parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), total / 4096)));
  for_each_part(total, out_parts, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float s = 0.f;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) s += partials[chunk * partial_size + i];
      if (i >= F * K1) db[i - F * K1] += s;                    // 1×1: the separate bias sums
      else if (i % K1 < K) dw[(i / K1) * K + i % K1] += s;    // weight (f, k)
      else db[i / K1] += s;                                    // column K: bias of filter f
    }
  });
}

}  // namespace cpu
}  // namespace dropnet

// The per-output and per-input arithmetic of 2-D pooling, as `__host__ __device__` functions
// (DROPNET_HD, core/philox.h): the CPU's general planes (kernels/cpu/pooling.cpp) and the CUDA
// kernels (kernels/cuda/pooling.cu) evaluate a window with these same operations in the same
// order, so their outputs and argmax indices are the same bits. The gradients are written here as
// gathers (each input element adds up the windows that cover it, in ascending output order): the
// CPU scatters in ascending output order, which adds the same terms to each element in the same
// order from 0, so the gather gives the CPU's bits without atomics.
#pragma once
#include <cstdint>

#include "dropnet/core/philox.h"  // DROPNET_HD

namespace dropnet {

// Geometry of a pooling over H × W planes (shapes and rules: kernels/cpu/pooling.h).
struct PoolGeometry {
  int64_t H = 0, W = 0;
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t OH = 0, OW = 0;
};

// Window rows/cols clipped to the image: [h0, h1) × [w0, w1) in input coordinates.
struct PoolWindow {
  int64_t h0, h1, w0, w1;
};
DROPNET_HD PoolWindow pool_window(const PoolGeometry& g, int64_t oh, int64_t ow) {
  const int64_t hs = oh * g.stride_h - g.pad_h, ws = ow * g.stride_w - g.pad_w;
  return {hs > 0 ? hs : 0, hs + g.kh < g.H ? hs + g.kh : g.H, ws > 0 ? ws : 0, ws + g.kw < g.W ? ws + g.kw : g.W};
}

// Later cell v replaces the best so far iff v > best, or v is NaN and best is not (NaN wins,
// the first maximum stays on ties).
DROPNET_HD bool pool_replaces(float v, float best) { return (v > best) | ((v != v) & (best == best)); }

// Max of window (oh, ow) of plane x, cells in row-major order; *arg = ih·W + iw of the winner.
DROPNET_HD float max_pool_window(const float* x, const PoolGeometry& g, int64_t oh, int64_t ow, int64_t* arg) {
  const PoolWindow win = pool_window(g, oh, ow);
  float best = -__builtin_huge_valf();
  int64_t at = win.h0 * g.W + win.w0;
  bool first = true;
  for (int64_t ih = win.h0; ih < win.h1; ++ih)
    for (int64_t iw = win.w0; iw < win.w1; ++iw) {
      const float v = x[ih * g.W + iw];
      if (first || pool_replaces(v, best)) {
        best = v;
        at = ih * g.W + iw;
        first = false;
      }
    }
  *arg = at;
  return best;
}

// Divisor of window (oh, ow): its cells inside the image, or (count_include_pad) the window
// clipped to the padded image, as PyTorch counts it.
DROPNET_HD float avg_pool_divisor(const PoolGeometry& g, int64_t oh, int64_t ow, bool count_include_pad) {
  const PoolWindow win = pool_window(g, oh, ow);
  if (!count_include_pad) return static_cast<float>((win.h1 - win.h0) * (win.w1 - win.w0));
  const int64_t hs = oh * g.stride_h - g.pad_h, ws = ow * g.stride_w - g.pad_w;
  const int64_t he = hs + g.kh < g.H + g.pad_h ? hs + g.kh : g.H + g.pad_h;
  const int64_t we = ws + g.kw < g.W + g.pad_w ? ws + g.kw : g.W + g.pad_w;
  return static_cast<float>((he - hs) * (we - ws));
}

// Mean of window (oh, ow) of plane x: a float sum in row-major order, then one division.
DROPNET_HD float avg_pool_window(const float* x, const PoolGeometry& g, int64_t oh, int64_t ow,
                                 bool count_include_pad) {
  const PoolWindow win = pool_window(g, oh, ow);
  float s = 0.f;
  for (int64_t ih = win.h0; ih < win.h1; ++ih)
    for (int64_t iw = win.w0; iw < win.w1; ++iw) s += x[ih * g.W + iw];
  return s / avg_pool_divisor(g, oh, ow, count_include_pad);
}

// The outputs whose windows cover input cell (ih, iw): [oh0, oh1) × [ow0, ow1).
struct PoolCover {
  int64_t oh0, oh1, ow0, ow1;
};
DROPNET_HD int64_t pool_first_cover(int64_t i, int64_t pad, int64_t k, int64_t stride) {
  const int64_t lo = i + pad - k + 1;  // the first window start at or past lo covers i
  return lo <= 0 ? 0 : (lo + stride - 1) / stride;
}
DROPNET_HD PoolCover pool_cover(const PoolGeometry& g, int64_t ih, int64_t iw) {
  const int64_t oh1 = (ih + g.pad_h) / g.stride_h + 1, ow1 = (iw + g.pad_w) / g.stride_w + 1;
  return {pool_first_cover(ih, g.pad_h, g.kh, g.stride_h), oh1 < g.OH ? oh1 : g.OH,
          pool_first_cover(iw, g.pad_w, g.kw, g.stride_w), ow1 < g.OW ? ow1 : g.OW};
}

// dx at cell (ih, iw) of a plane: the dy of every covering output whose argmax is this cell, from
// 0 in ascending output order (max_pool2d_backward's scatter, gathered).
DROPNET_HD float max_pool_grad_at(const float* dy, const int32_t* indices, const PoolGeometry& g, int64_t ih,
                                  int64_t iw) {
  const PoolCover c = pool_cover(g, ih, iw);
  const int64_t cell = ih * g.W + iw;
  float s = 0.f;
  for (int64_t oh = c.oh0; oh < c.oh1; ++oh)
    for (int64_t ow = c.ow0; ow < c.ow1; ++ow)
      if (indices[oh * g.OW + ow] == cell) s += dy[oh * g.OW + ow];
  return s;
}

// dx at cell (ih, iw): dy / divisor of every covering window, from 0 in ascending output order.
DROPNET_HD float avg_pool_grad_at(const float* dy, const PoolGeometry& g, bool count_include_pad, int64_t ih,
                                  int64_t iw) {
  const PoolCover c = pool_cover(g, ih, iw);
  float s = 0.f;
  for (int64_t oh = c.oh0; oh < c.oh1; ++oh)
    for (int64_t ow = c.ow0; ow < c.ow1; ++ow) s += dy[oh * g.OW + ow] / avg_pool_divisor(g, oh, ow, count_include_pad);
  return s;
}

// Mean of a plane of hw floats: a double sum in index order, then one division.
DROPNET_HD float global_avg_plane(const float* x, int64_t hw) {
  double s = 0.0;
  for (int64_t i = 0; i < hw; ++i) s += x[i];
  return static_cast<float>(s / static_cast<double>(hw));
}

}  // namespace dropnet

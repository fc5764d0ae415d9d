#include "dropnet/kernels/cpu/pooling.h"

#include <algorithm>
#include <cstring>

#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

namespace {

// Planes per thread piece: at least ~16k elements so small inputs stay on one thread.
int64_t plane_grain(int64_t plane_elems) { return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, plane_elems)); }

// 4 floats / 4 int32 as GCC vector types (SSE2 in the baseline build): the 2×2 paths below do
// four windows per step with compares and selects. Scalar code branches on random data and
// mispredicts about every other window (measured 10× slower).
typedef float f4 __attribute__((vector_size(16)));
typedef int32_t i4 __attribute__((vector_size(16)));

inline f4 load4(const float* p) {
  f4 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store4(float* p, f4 v) { __builtin_memcpy(p, &v, sizeof(v)); }
inline void store4(int32_t* p, i4 v) { __builtin_memcpy(p, &v, sizeof(v)); }
// pool_replaces (core/pooling_element.h) lane by lane.
inline i4 replaces_v(f4 v, f4 best) { return (v > best) | ((v != v) & (best == best)); }

// Four 2×2 windows: r0, r1 hold 8 floats of the two input rows; `at` the flat index of each
// window's top-left cell. Cells in the general loop's order (row-major within the window).
inline void max4_2x2(const float* r0, const float* r1, i4 at, int32_t W, f4* best_out, i4* arg_out) {
  const f4 a0 = load4(r0), a1 = load4(r0 + 4), b0 = load4(r1), b1 = load4(r1 + 4);
  const f4 cells[4] = {__builtin_shufflevector(a0, a1, 0, 2, 4, 6), __builtin_shufflevector(a0, a1, 1, 3, 5, 7),
                       __builtin_shufflevector(b0, b1, 0, 2, 4, 6), __builtin_shufflevector(b0, b1, 1, 3, 5, 7)};
  const int32_t offsets[4] = {0, 1, W, W + 1};
  f4 best = cells[0];
  i4 arg = at;
  for (int q = 1; q < 4; ++q) {
    const i4 take = replaces_v(cells[q], best);
    best = take ? cells[q] : best;
    arg = take ? at + offsets[q] : arg;
  }
  *best_out = best;
  *arg_out = arg;
}

// 2×2 windows, stride 2, no padding: the CNN's pooling, four windows per step; a row's last
// 1-3 windows are covered by one more step over the row's last four (no branchy scalar tail).
void max_pool_2x2(const float* x, const PoolGeometry& g, float* y, int32_t* idx) {
  const int32_t W = static_cast<int32_t>(g.W);
  const i4 lane2 = {0, 2, 4, 6};
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const float* r0 = x + (2 * oh) * g.W;
    const float* r1 = r0 + g.W;
    float* yo = y + oh * g.OW;
    int32_t* io = idx ? idx + oh * g.OW : nullptr;
    const int32_t base = static_cast<int32_t>(2 * oh) * W;
    f4 best;
    i4 arg;
    int64_t ow = 0;
    for (; ow + 4 <= g.OW; ow += 4) {
      max4_2x2(r0 + 2 * ow, r1 + 2 * ow, lane2 + (base + static_cast<int32_t>(2 * ow)), W, &best, &arg);
      store4(yo + ow, best);
      if (io) store4(io + ow, arg);
    }
    if (ow < g.OW && g.OW >= 4) {  // last 4 windows again, overlapping: same values, no scalar tail
      ow = g.OW - 4;
      max4_2x2(r0 + 2 * ow, r1 + 2 * ow, lane2 + (base + static_cast<int32_t>(2 * ow)), W, &best, &arg);
      store4(yo + ow, best);
      if (io) store4(io + ow, arg);
    } else if (const int64_t rest = g.OW - ow) {  // rows of fewer than 4 windows: a padded copy
      float t0[8] = {}, t1[8] = {};
      for (int64_t q = 0; q < 2 * rest; ++q) {
        t0[q] = r0[2 * ow + q];
        t1[q] = r1[2 * ow + q];
      }
      max4_2x2(t0, t1, lane2 + (base + static_cast<int32_t>(2 * ow)), W, &best, &arg);
      for (int64_t q = 0; q < rest; ++q) {
        yo[ow + q] = best[q];
        if (io) io[ow + q] = arg[q];
      }
    }
  }
}

// Writes four 2×2 windows of dx (8 floats of each row): cell = 0 + dy where it is the window's
// argmax, else 0. k: argmax offset from the window's top-left. False if some k is no cell of its
// window (the indices came from elsewhere).
inline bool unpool4_2x2(i4 k, f4 g, int32_t W, float* r0, float* r1) {
  const i4 c0 = k == 0, c1 = k == 1, c2 = k == W, c3 = k == W + 1;
  const i4 hit = c0 | c1 | c2 | c3;
  if (!(hit[0] & hit[1] & hit[2] & hit[3])) return false;
  const f4 zero = {};
  const f4 v = zero + g;
  const f4 e0 = c0 ? v : zero, o0 = c1 ? v : zero, e1 = c2 ? v : zero, o1 = c3 ? v : zero;
  store4(r0, __builtin_shufflevector(e0, o0, 0, 4, 1, 5));
  store4(r0 + 4, __builtin_shufflevector(e0, o0, 2, 6, 3, 7));
  store4(r1, __builtin_shufflevector(e1, o1, 0, 4, 1, 5));
  store4(r1 + 4, __builtin_shufflevector(e1, o1, 2, 6, 3, 7));
  return true;
}

// Backward of non-overlapping 2×2 windows in one sequential pass over dx (no memset, no scatter).
// Returns false, with dx partly written, when an index lies outside its window; the caller then
// runs the general scatter, which overwrites the whole plane.
bool max_unpool_2x2(const float* dy, const int32_t* idx, const PoolGeometry& g, float* dx) {
  if (g.OH != g.H / 2 || g.OW != g.W / 2) return false;
  const int32_t W = static_cast<int32_t>(g.W);
  const i4 lane2 = {0, 2, 4, 6};
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* r0 = dx + (2 * oh) * g.W;
    float* r1 = r0 + g.W;
    const float* go = dy + oh * g.OW;
    const int32_t* io = idx + oh * g.OW;
    const int32_t base = static_cast<int32_t>(2 * oh) * W;
    int64_t ow = 0;
    for (; ow + 4 <= g.OW; ow += 4) {
      i4 at;
      __builtin_memcpy(&at, io + ow, sizeof(at));
      if (!unpool4_2x2(at - (lane2 + (base + static_cast<int32_t>(2 * ow))), load4(go + ow), W, r0 + 2 * ow,
                       r1 + 2 * ow))
        return false;
    }
    if (ow < g.OW && g.OW >= 4) {  // last 4 windows again, overlapping: rewrites the same values
      ow = g.OW - 4;
      i4 at;
      __builtin_memcpy(&at, io + ow, sizeof(at));
      if (!unpool4_2x2(at - (lane2 + (base + static_cast<int32_t>(2 * ow))), load4(go + ow), W, r0 + 2 * ow,
                       r1 + 2 * ow))
        return false;
    } else if (const int64_t rest = g.OW - ow) {  // rows of fewer than 4 windows: a padded copy
      i4 k = {0, 0, 0, 0};  // padding lanes: a valid offset, their output is dropped
      f4 gv = {};
      float t0[8], t1[8];
      for (int64_t q = 0; q < rest; ++q) {
        k[q] = io[ow + q] - (base + static_cast<int32_t>(2 * (ow + q)));
        gv[q] = go[ow + q];
      }
      if (!unpool4_2x2(k, gv, W, t0, t1)) return false;
      for (int64_t q = 0; q < 2 * rest; ++q) {
        r0[2 * ow + q] = t0[q];
        r1[2 * ow + q] = t1[q];
      }
    }
    if (g.W & 1) r0[g.W - 1] = r1[g.W - 1] = 0.f;
  }
  if (g.H & 1) std::memset(dx + (g.H - 1) * g.W, 0, sizeof(float) * g.W);
  return true;
}

// The general path, window by window with the device-shared function (the 2×2 path above takes
// the same cells in the same order).
void max_pool_plane(const float* x, const PoolGeometry& g, float* y, int32_t* idx) {
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t arg;
      y[oh * g.OW + ow] = max_pool_window(x, g, oh, ow, &arg);
      if (idx) idx[oh * g.OW + ow] = static_cast<int32_t>(arg);
    }
}

}  // namespace

void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y, int32_t* indices) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  const bool is_2x2 = g.kh == 2 && g.kw == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0;
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      int32_t* idx = indices ? indices + p * out : nullptr;
      if (is_2x2) max_pool_2x2(x + p * in, g, y + p * out, idx);
      else max_pool_plane(x + p * in, g, y + p * out, idx);
    }
  });
}

void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g, float* dx) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* d = dx + p * in;
      const float* gp = dy + p * out;
      const int32_t* ip = indices + p * out;
      if (max_unpool_2x2(gp, ip, g, d)) continue;
      std::memset(d, 0, sizeof(float) * in);
      for (int64_t o = 0; o < out; ++o) d[ip[o]] += gp[o];
    }
  });
}

void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* y) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* xp = x + p * in;
      float* yp = y + p * out;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) yp[oh * g.OW + ow] = avg_pool_window(xp, g, oh, ow, count_include_pad);
    }
  });
}

void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* dx) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* d = dx + p * in;
      std::memset(d, 0, sizeof(float) * in);
      const float* gp = dy + p * out;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const PoolWindow win = pool_window(g, oh, ow);
          const float v = gp[oh * g.OW + ow] / avg_pool_divisor(g, oh, ow, count_include_pad);
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) d[ih * g.W + iw] += v;
        }
    }
  });
}

void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y) {
  parallel_ranges(planes, plane_grain(hw), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      y[p] = global_avg_plane(x + p * hw, hw);
    }
  });
}

void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx) {
  const float inv = 1.f / static_cast<float>(hw);
  parallel_ranges(planes, plane_grain(hw), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float v = dy[p] * inv;
      float* d = dx + p * hw;
      for (int64_t i = 0; i < hw; ++i) d[i] = v;
    }
  });
}

}  // namespace cpu
}  // namespace dropnet

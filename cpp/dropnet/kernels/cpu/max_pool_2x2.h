// 2×2 max pooling with stride 2 and no padding over one plane, forward (value and argmax) and
// backward (one sequential pass over dx): the CNN's pooling. Shared by the pooling kernels and the
// batch norm + ReLU + pooling layer (kernels/cpu/batchnorm.cpp), which feeds the forward its
// normalised values through `Transform` and masks the backward's gradient by the pooled output, so
// the fused layer has the bits of the three layers apart.
//
// Four windows per step with GCC vector types (SSE2 in the baseline build, the same code on every
// ISA path): compares and selects instead of branches. Scalar code branches on random data and
// mispredicts about every other window (measured 10× slower).
#pragma once
#include <cstdint>
#include <cstring>

#include "dropnet/kernels/cpu/pooling.h"

namespace dropnet {
namespace cpu {
namespace pool2x2 {

typedef float f4 __attribute__((vector_size(16)));
typedef int32_t i4 __attribute__((vector_size(16)));

inline f4 load4(const float* p) {
  f4 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store4(float* p, f4 v) { __builtin_memcpy(p, &v, sizeof(v)); }
inline void store4(int32_t* p, i4 v) { __builtin_memcpy(p, &v, sizeof(v)); }
// Later cell v replaces the best so far iff v > best, or v is NaN and best is not (NaN wins,
// the first maximum stays on ties): max_pool2d_forward's rule.
inline i4 replaces(f4 v, f4 best) { return (v > best) | ((v != v) & (best == best)); }

// The forward's input as stored.
struct Unchanged {
  f4 operator()(f4 v) const { return v; }
};

// Four 2×2 windows: r0, r1 hold 8 floats of the two input rows; `at` the flat index of each
// window's top-left cell. Cells in the general loop's order (row-major within the window).
template <class Transform>
inline void max4_2x2(const float* r0, const float* r1, i4 at, int32_t W, const Transform& tf, f4* best_out,
                     i4* arg_out) {
  const f4 a0 = tf(load4(r0)), a1 = tf(load4(r0 + 4)), b0 = tf(load4(r1)), b1 = tf(load4(r1 + 4));
  const f4 cells[4] = {__builtin_shufflevector(a0, a1, 0, 2, 4, 6), __builtin_shufflevector(a0, a1, 1, 3, 5, 7),
                       __builtin_shufflevector(b0, b1, 0, 2, 4, 6), __builtin_shufflevector(b0, b1, 1, 3, 5, 7)};
  const int32_t offsets[4] = {0, 1, W, W + 1};
  f4 best = cells[0];
  i4 arg = at;
  for (int q = 1; q < 4; ++q) {
    const i4 take = replaces(cells[q], best);
    best = take ? cells[q] : best;
    arg = take ? at + offsets[q] : arg;
  }
  *best_out = best;
  *arg_out = arg;
}

// y (OH × OW) = max over each window of tf(x), idx (optional) its argmax in the plane; a row's
// last 1-3 windows are covered by one more step over the row's last four (no branchy scalar tail).
template <class Transform>
void max_pool_2x2(const float* x, const PoolGeometry& g, float* y, int32_t* idx, const Transform& tf) {
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
      max4_2x2(r0 + 2 * ow, r1 + 2 * ow, lane2 + (base + static_cast<int32_t>(2 * ow)), W, tf, &best, &arg);
      store4(yo + ow, best);
      if (io) store4(io + ow, arg);
    }
    if (ow < g.OW && g.OW >= 4) {  // last 4 windows again, overlapping: same values, no scalar tail
      ow = g.OW - 4;
      max4_2x2(r0 + 2 * ow, r1 + 2 * ow, lane2 + (base + static_cast<int32_t>(2 * ow)), W, tf, &best, &arg);
      store4(yo + ow, best);
      if (io) store4(io + ow, arg);
    } else if (const int64_t rest = g.OW - ow) {  // rows of fewer than 4 windows: a padded copy
      float t0[8] = {}, t1[8] = {};
      for (int64_t q = 0; q < 2 * rest; ++q) {
        t0[q] = r0[2 * ow + q];
        t1[q] = r1[2 * ow + q];
      }
      max4_2x2(t0, t1, lane2 + (base + static_cast<int32_t>(2 * ow)), W, tf, &best, &arg);
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

// Four windows' gradient: dy, or with `relu_out` (the pooled output of a ReLU) dy where it is > 0
// and 0 elsewhere, the ReLU's backward folded in.
inline f4 pooled_grad4(const float* dy, const float* relu_out) {
  const f4 g = load4(dy);
  if (!relu_out) return g;
  const f4 zero = {};
  return load4(relu_out) > zero ? g : zero;
}

// Backward of non-overlapping 2×2 windows in one sequential pass over dx (no memset, no scatter);
// relu_out as pooled_grad4. Returns false, with dx partly written, when an index lies outside its
// window; the caller then runs the general scatter, which overwrites the whole plane.
inline bool max_unpool_2x2(const float* dy, const int32_t* idx, const float* relu_out, const PoolGeometry& g,
                           float* dx) {
  if (g.OH != g.H / 2 || g.OW != g.W / 2) return false;
  const int32_t W = static_cast<int32_t>(g.W);
  const i4 lane2 = {0, 2, 4, 6};
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* r0 = dx + (2 * oh) * g.W;
    float* r1 = r0 + g.W;
    const float* go = dy + oh * g.OW;
    const float* ro = relu_out ? relu_out + oh * g.OW : nullptr;
    const int32_t* io = idx + oh * g.OW;
    const int32_t base = static_cast<int32_t>(2 * oh) * W;
    int64_t ow = 0;
    for (; ow + 4 <= g.OW; ow += 4) {
      i4 at;
      __builtin_memcpy(&at, io + ow, sizeof(at));
      if (!unpool4_2x2(at - (lane2 + (base + static_cast<int32_t>(2 * ow))),
                       pooled_grad4(go + ow, ro ? ro + ow : nullptr), W, r0 + 2 * ow, r1 + 2 * ow))
        return false;
    }
    if (ow < g.OW && g.OW >= 4) {  // last 4 windows again, overlapping: rewrites the same values
      ow = g.OW - 4;
      i4 at;
      __builtin_memcpy(&at, io + ow, sizeof(at));
      if (!unpool4_2x2(at - (lane2 + (base + static_cast<int32_t>(2 * ow))),
                       pooled_grad4(go + ow, ro ? ro + ow : nullptr), W, r0 + 2 * ow, r1 + 2 * ow))
        return false;
    } else if (const int64_t rest = g.OW - ow) {  // rows of fewer than 4 windows: a padded copy
      i4 k = {0, 0, 0, 0};  // padding lanes: a valid offset, their output is dropped
      float gq[4] = {}, rq[4] = {};
      float t0[8], t1[8];
      for (int64_t q = 0; q < rest; ++q) {
        k[q] = io[ow + q] - (base + static_cast<int32_t>(2 * (ow + q)));
        gq[q] = go[ow + q];
        if (ro) rq[q] = ro[ow + q];
      }
      if (!unpool4_2x2(k, pooled_grad4(gq, ro ? rq : nullptr), W, t0, t1)) return false;
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

// The general backward of one plane: dx = 0, then dx[idx[o]] += (masked) dy[o] in ascending o.
inline void max_unpool_scatter(const float* dy, const int32_t* idx, const float* relu_out, int64_t in, int64_t out,
                               float* dx) {
  std::memset(dx, 0, sizeof(float) * static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) dx[idx[o]] += relu_out && !(relu_out[o] > 0.f) ? 0.f : dy[o];
}

}  // namespace pool2x2
}  // namespace cpu
}  // namespace dropnet

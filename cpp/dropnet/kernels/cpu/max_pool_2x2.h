// 2×2 max pooling with stride 2 and no padding over one plane, forward (value and argmax) and
// backward (one sequential pass over dx): the CNN's pooling. Used by the pooling layer
// (pooling.cpp) and by the batch norm + ReLU + pooling layer (batchnorm_impl.h), which feeds the
// forward its normalised values through `Transform` and masks the backward's gradient by the
// pooled output, so the fused layer has the bits of the three layers apart.
//
// A body, not a header: each includer puts it inside a namespace of its own (pooling.cpp in
// cpu::pool2x2, each batch-norm ISA unit in its unit's namespace) after defining
// DROPNET_POOL_VEC_BYTES, the widest vector its flags allow (16 for SSE2, 32 or more for AVX2 and
// AVX-512). No inline function is then shared between units compiled with different flags.
//
// Windows go V at a time (V = 4 or 8 lanes of GCC vector types): compares and selects instead of
// branches (scalar code branches on random data and mispredicts about every other window,
// measured 10× slower). Compares and selects are exact, so every width gives the same bits. A row
// takes steps of the widest V it holds, and its last windows one more step of that width,
// overlapping the one before (the same values again, no scalar tail): a 14-window row
// (28 × 28 planes) is two 8-window steps with AVX2 or AVX-512, four 4-window steps with SSE2.
// AVX-512 has no 16-window steps: they would serve only rows of 16 windows or more (planes of 32
// columns or more), not the CNNs' 28 × 28 and 14 × 14, and their code would not fit the wheel.
#ifndef DROPNET_POOL_VEC_BYTES
#error "define DROPNET_POOL_VEC_BYTES before including max_pool_2x2.h"
#endif

// Vectors of V windows: float and int32 lanes, and the shuffles between cells and windows.
template <int V>
struct Windows;

template <>
struct Windows<4> {
  typedef float F __attribute__((vector_size(16)));
  typedef int32_t I __attribute__((vector_size(16)));
  static constexpr I lane2 = {0, 2, 4, 6};
  static F even(F a, F b) { return __builtin_shufflevector(a, b, 0, 2, 4, 6); }
  static F odd(F a, F b) { return __builtin_shufflevector(a, b, 1, 3, 5, 7); }
  static F interleave_lo(F e, F o) { return __builtin_shufflevector(e, o, 0, 4, 1, 5); }
  static F interleave_hi(F e, F o) { return __builtin_shufflevector(e, o, 2, 6, 3, 7); }
};
#if DROPNET_POOL_VEC_BYTES >= 32
template <>
struct Windows<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  static constexpr I lane2 = {0, 2, 4, 6, 8, 10, 12, 14};
  static F even(F a, F b) { return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14); }
  static F odd(F a, F b) { return __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15); }
  static F interleave_lo(F e, F o) { return __builtin_shufflevector(e, o, 0, 8, 1, 9, 2, 10, 3, 11); }
  static F interleave_hi(F e, F o) { return __builtin_shufflevector(e, o, 4, 12, 5, 13, 6, 14, 7, 15); }
};
#endif

template <class T>
inline T load_lanes(const void* p) {
  T v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
template <class T>
inline void store_lanes(void* p, T v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

// The forward's input as stored.
struct Unchanged {
  template <class F>
  F operator()(F v) const {
    return v;
  }
};

// Steps of V windows over [ow, OW) of a row, then the last V windows again if some are left
// (overlapping: the same values). False, ow unchanged past the whole steps, when the row is
// shorter than V and windows are left. step(Windows<V>{}, ow) does one step.
template <int V, class Step>
inline bool steps_of(int64_t& ow, int64_t OW, const Step& step) {
  for (; ow + V <= OW; ow += V) step(Windows<V>{}, ow);
  if (ow == OW) return true;
  if (OW < V) return false;
  step(Windows<V>{}, OW - V);
  return true;
}

// Every window of a row by steps of the widest V the row holds; false when the row has fewer than
// 4 windows left (the caller pads them into a 4-window step).
template <class Step>
inline bool row_steps(int64_t OW, const Step& step) {
  int64_t ow = 0;
#if DROPNET_POOL_VEC_BYTES >= 32
  if (steps_of<8>(ow, OW, step)) return true;
#endif
  return steps_of<4>(ow, OW, step);
}

// V windows: r0, r1 hold 2V floats of the two input rows; `at` the flat index of each window's
// top-left cell. Cells in the general loop's order (row-major within the window): a later cell
// replaces the best so far iff it is greater, or NaN while the best is not (NaN wins, the first
// maximum stays on ties): max_pool2d_forward's rule.
template <class Win, class Transform>
inline void max_windows(const float* r0, const float* r1, typename Win::I at, int32_t W, const Transform& tf,
                        float* y, int32_t* idx) {
  using F = typename Win::F;
  using I = typename Win::I;
  constexpr int kV = sizeof(F) / sizeof(float);
  const F a0 = tf(load_lanes<F>(r0)), a1 = tf(load_lanes<F>(r0 + kV));
  const F b0 = tf(load_lanes<F>(r1)), b1 = tf(load_lanes<F>(r1 + kV));
  const F cells[4] = {Win::even(a0, a1), Win::odd(a0, a1), Win::even(b0, b1), Win::odd(b0, b1)};
  const int32_t offsets[4] = {0, 1, W, W + 1};
  F best = cells[0];
  I arg = at;
  for (int q = 1; q < 4; ++q) {
    const I take = (cells[q] > best) | ((cells[q] != cells[q]) & (best == best));
    best = take ? cells[q] : best;
    arg = take ? at + offsets[q] : arg;
  }
  store_lanes(y, best);
  if (idx) store_lanes(idx, arg);
}

// y (OH × OW) = max over each window of tf(x), idx (optional) its argmax in the plane.
template <class Transform>
void max_pool_2x2(const float* x, int64_t H, int64_t W, float* y, int32_t* idx, const Transform& tf) {
  const int64_t OH = H / 2, OW = W / 2;
  const int32_t W32 = static_cast<int32_t>(W);
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* r0 = x + (2 * oh) * W;
    const float* r1 = r0 + W;
    float* yo = y + oh * OW;
    int32_t* io = idx ? idx + oh * OW : nullptr;
    const int32_t base = static_cast<int32_t>(2 * oh) * W32;
    const bool whole = row_steps(OW, [&](auto win, int64_t ow) {
      using Win = decltype(win);
      max_windows<Win>(r0 + 2 * ow, r1 + 2 * ow, Win::lane2 + (base + static_cast<int32_t>(2 * ow)), W32, tf,
                       yo + ow, io ? io + ow : nullptr);
    });
    if (!whole) {  // rows of fewer than 4 windows: a padded copy
      float t0[8] = {}, t1[8] = {}, yq[4];
      int32_t iq[4];
      for (int64_t q = 0; q < 2 * OW; ++q) {
        t0[q] = r0[q];
        t1[q] = r1[q];
      }
      max_windows<Windows<4>>(t0, t1, Windows<4>::lane2 + base, W32, tf, yq, iq);
      for (int64_t q = 0; q < OW; ++q) {
        yo[q] = yq[q];
        if (io) io[q] = iq[q];
      }
    }
  }
}

// V windows of dx (2V floats of each row): cell = 0 + g where it is the window's argmax, else 0;
// g = dy, or with `relu_out` (the pooled output of a ReLU) dy where it is > 0 and 0 elsewhere, the
// ReLU's backward folded in. k: each argmax's offset from its window's top-left. Returns the lanes
// whose k is no cell of their window (the indices came from elsewhere): nonzero there.
template <class Win>
inline typename Win::I unpool_windows(typename Win::I k, const float* dy, const float* relu_out, int32_t W,
                                      float* r0, float* r1) {
  using F = typename Win::F;
  using I = typename Win::I;
  constexpr int kV = sizeof(F) / sizeof(float);
  const F zero = {};
  F g = load_lanes<F>(dy);
  if (relu_out) g = load_lanes<F>(relu_out) > zero ? g : zero;
  const I c0 = k == 0, c1 = k == 1, c2 = k == W, c3 = k == W + 1;
  const F v = zero + g;
  const F e0 = c0 ? v : zero, o0 = c1 ? v : zero, e1 = c2 ? v : zero, o1 = c3 ? v : zero;
  store_lanes(r0, Win::interleave_lo(e0, o0));
  store_lanes(r0 + kV, Win::interleave_hi(e0, o0));
  store_lanes(r1, Win::interleave_lo(e1, o1));
  store_lanes(r1 + kV, Win::interleave_hi(e1, o1));
  return ~(c0 | c1 | c2 | c3);
}

// The general backward of one plane: dx = 0, then dx[idx[o]] += (masked) dy[o] in ascending o.
inline void max_unpool_scatter(const float* dy, const int32_t* idx, const float* relu_out, int64_t in, int64_t out,
                               float* dx) {
  for (int64_t i = 0; i < in; ++i) dx[i] = 0.f;
  for (int64_t o = 0; o < out; ++o) dx[idx[o]] += relu_out && !(relu_out[o] > 0.f) ? 0.f : dy[o];
}

// Lanes whose index lay outside its window, gathered per vector width and looked at once a plane.
struct MissedLanes {
  Windows<4>::I v4 = {};
  void add(Windows<4>::I m) { v4 |= m; }
#if DROPNET_POOL_VEC_BYTES >= 32
  Windows<8>::I v8 = {};
  void add(Windows<8>::I m) { v8 |= m; }
#endif
  bool any() const {
    int32_t a = 0;
    for (int l = 0; l < 4; ++l) a |= v4[l];
#if DROPNET_POOL_VEC_BYTES >= 32
    for (int l = 0; l < 8; ++l) a |= v8[l];
#endif
    return a != 0;
  }
};

// Backward of the plane's non-overlapping 2×2 windows in one sequential pass over dx (no memset,
// no scatter); relu_out as unpool_windows. When an index lies outside its window, the general
// scatter rewrites the whole plane instead.
inline void max_unpool_2x2(const float* dy, const int32_t* idx, const float* relu_out, int64_t H, int64_t W,
                           float* dx) {
  const int64_t OH = H / 2, OW = W / 2;
  const int32_t W32 = static_cast<int32_t>(W);
  MissedLanes missed;
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* r0 = dx + (2 * oh) * W;
    float* r1 = r0 + W;
    const float* go = dy + oh * OW;
    const float* ro = relu_out ? relu_out + oh * OW : nullptr;
    const int32_t* io = idx + oh * OW;
    const int32_t base = static_cast<int32_t>(2 * oh) * W32;
    const bool whole = row_steps(OW, [&](auto win, int64_t ow) {
      using Win = decltype(win);
      using I = typename Win::I;
      const I k = load_lanes<I>(io + ow) - (Win::lane2 + (base + static_cast<int32_t>(2 * ow)));
      missed.add(unpool_windows<Win>(k, go + ow, ro ? ro + ow : nullptr, W32, r0 + 2 * ow, r1 + 2 * ow));
    });
    if (!whole) {  // rows of fewer than 4 windows: a padded copy
      Windows<4>::I k = {0, 0, 0, 0};  // padding lanes: a valid offset, their output is dropped
      float gq[4] = {}, rq[4] = {}, t0[8], t1[8];
      for (int64_t q = 0; q < OW; ++q) {
        k[q] = io[q] - (base + static_cast<int32_t>(2 * q));
        gq[q] = go[q];
        if (ro) rq[q] = ro[q];
      }
      missed.add(unpool_windows<Windows<4>>(k, gq, ro ? rq : nullptr, W32, t0, t1));
      for (int64_t q = 0; q < 2 * OW; ++q) {
        r0[q] = t0[q];
        r1[q] = t1[q];
      }
    }
    if (W & 1) r0[W - 1] = r1[W - 1] = 0.f;
  }
  if (H & 1)
    for (int64_t i = (H - 1) * W; i < H * W; ++i) dx[i] = 0.f;
  if (missed.any()) max_unpool_scatter(dy, idx, relu_out, H * W, OH * OW, dx);
}

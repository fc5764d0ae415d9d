// Bodies of the batch-norm kernels, written once with GCC vector types and compiled in three
// units with different ISA flags (batchnorm_scalar.cpp: baseline x86-64, batchnorm_avx2.cpp,
// batchnorm_avx512.cpp; DROPNET_BN_VEC_BYTES = 16 / 32 / 64). Each unit includes this file inside
// its own namespace (DROPNET_BN_UNIT), so no inline function is shared between units and the
// linker can never hand AVX-512 code to the baseline path. No std:: templates here for the same
// reason.
//
// Fixed summation orders (none depends on the thread count):
//  - planes (NCHW): 16 double lanes, lane l sums the elements whose offset within their row is
//    l mod 16, in row order; lanes combined in a fixed tree. The same bits in every unit (the
//    build turns FMA contraction off, so no unit fuses a multiply-add on its own).
//  - columns (N × C): per column, float partials over blocks of 8 rows, added in row order into a
//    double total; columns are independent, so any split of them gives the same bits.
// Masks load both operands unconditionally (`g = dy[i]; y > 0 ? g : 0`): a conditional load
// would stop vectorisation and cost a mispredicted branch per element.
#ifndef DROPNET_BN_UNIT
#error "define DROPNET_BN_UNIT before including batchnorm_impl.h"
#endif
#include <cstdint>

#include "dropnet/kernels/cpu/batchnorm.h"
#include <immintrin.h>
#if DROPNET_BN_VEC_BYTES == 64
// GCC 12's _mm512_cvtps_pd passes an undefined merge operand to its builtin and then warns about it.
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// The vector types below are passed between inline helpers only; GCC's note that a 64-byte
// vector argument has another ABI without AVX-512 concerns calls between units, which never happen.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace dropnet {
namespace cpu {
namespace DROPNET_BN_UNIT {

constexpr int kLanes = 16;

// Native vectors of the unit (DROPNET_BN_VEC_BYTES: 64 AVX-512, 32 AVX2, 16 SSE2), as GCC vector
// types so one source serves every unit: fv holds floats, dv doubles, fh the floats that widen into
// one dv. The 16 double lanes of a reduction are kParts dv registers, lane l = part·kDV + k.
typedef float fv __attribute__((vector_size(DROPNET_BN_VEC_BYTES)));
typedef float fh __attribute__((vector_size(DROPNET_BN_VEC_BYTES / 2)));
typedef double dv __attribute__((vector_size(DROPNET_BN_VEC_BYTES)));
constexpr int kFV = DROPNET_BN_VEC_BYTES / 4;  // floats per fv
constexpr int kDV = DROPNET_BN_VEC_BYTES / 8;  // doubles per dv
constexpr int kParts = kLanes / kDV;

struct Lanes {
  dv v[kParts];
};

template <class V>
inline V load(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, fv v) { __builtin_memcpy(p, &v, sizeof(v)); }
#if DROPNET_BN_VEC_BYTES == 64
// GCC lowers the generic 8-float -> 8-double conversion in two 128-bit halves; one instruction does it.
inline dv widen(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
#else
inline dv widen(const float* p) { return __builtin_convertvector(load<fh>(p), dv); }
#endif
// g where y > 0, else 0, lane by lane (a select, no branch).
template <class V>
inline V masked(V g, V y) {
  const V zero = {};
  return y > zero ? g : zero;
}

inline double lane(const Lanes& a, int l) { return a.v[l / kDV][l % kDV]; }
inline double combine_lanes(const Lanes& a) {
  double t[8];
  for (int l = 0; l < 8; ++l) t[l] = lane(a, l) + lane(a, l + 8);
  for (int l = 0; l < 4; ++l) t[l] += t[l + 4];
  return (t[0] + t[2]) + (t[1] + t[3]);
}

// One 16-lane step of the two reductions: a1 += g, a2 += g·(x - m), or a1 += d, a2 += d² with
// d = x - m when there is no g (moments).
template <bool kMask, bool kGrad>
inline void accumulate16(Lanes& a1, Lanes& a2, const float* g, const float* x, const float* y, double m) {
  for (int q = 0; q < kParts; ++q) {
    const dv d = widen(x + q * kDV) - m;
    if (kGrad) {
      const dv gd = kMask ? __builtin_convertvector(masked(load<fh>(g + q * kDV), load<fh>(y + q * kDV)), dv)
                          : widen(g + q * kDV);
      a1.v[q] += gd;
      a2.v[q] += gd * d;
    } else {
      a1.v[q] += d;
      a2.v[q] += d * d;
    }
  }
}

template <bool kMask, bool kGrad>
inline void accumulate1(double& a1, double& a2, const float* g, const float* x, const float* y, double m) {
  const double d = static_cast<double>(*x) - m;
  if (kGrad) {
    const float gl = *g;
    const double gd = kMask ? (*y > 0.f ? gl : 0.f) : gl;
    a1 += gd;
    a2 += gd * d;
  } else {
    a1 += d;
    a2 += d * d;
  }
}

template <bool kMask, bool kGrad>
inline void prefetch_rows(const float* dy, const float* x, const float* y) {
  __builtin_prefetch(x);
  if (kGrad) __builtin_prefetch(dy);
  if (kMask) __builtin_prefetch(y);
}

// Sums over a channel of n rows of len floats (stride apart; dy's rows dy_stride apart), 16 lanes
// by offset mod 16.
template <bool kMask, bool kGrad>
inline void plane_sums(const float* dy, const float* x, const float* y, int64_t n, int64_t stride, int64_t dy_stride,
                       int64_t len, double m, double* s1, double* s2) {
  Lanes a1 = {}, a2 = {};
  for (int64_t r = 0; r < n; ++r) {
    const int64_t o = r * stride;
    const float* g = dy + r * dy_stride;
    const int64_t next = r + 1 < n ? stride : 0;  // rows are short (HW floats) and far apart
    const int64_t g_next = r + 1 < n ? dy_stride : 0;
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) {
      prefetch_rows<kMask, kGrad>(g + g_next + i, x + o + next + i, y + o + next + i);
      accumulate16<kMask, kGrad>(a1, a2, g + i, x + o + i, y + o + i, m);
    }
    for (int l = 0; i < len; ++i, ++l)
      accumulate1<kMask, kGrad>(a1.v[l / kDV][l % kDV], a2.v[l / kDV][l % kDV], g + i, x + o + i, y + o + i, m);
  }
  *s1 = combine_lanes(a1);
  *s2 = combine_lanes(a2);
}

inline void plane_moments(const float* x, int64_t n, int64_t stride, int64_t len, float shift, double* s1,
                          double* s2) {
  plane_sums<false, false>(x, x, x, n, stride, stride, len, shift, s1, s2);
}

inline void plane_grad_sums(const float* dy, const float* x, const float* y_relu, int64_t n, int64_t stride,
                            int64_t dy_stride, int64_t len, float mean, double* sum_dy, double* sum_dy_xc) {
  if (y_relu) plane_sums<true, true>(dy, x, y_relu, n, stride, dy_stride, len, mean, sum_dy, sum_dy_xc);
  else plane_sums<false, true>(dy, x, x, n, stride, dy_stride, len, mean, sum_dy, sum_dy_xc);
}

// Column sums (HW = 1). Each column is summed in row order, rows in blocks of kRowBlock: a
// float partial over the block, then added to a double total. The order is the same whatever
// the columns' grouping, so any split of the columns gives the same bits. Float partials keep
// the adds in full-width float vectors (double halves the throughput and this pass is
// compute-bound at L2-resident sizes like (256, 300)); 8 rows in float lose nothing measurable.
constexpr int64_t kRowBlock = 8;

template <bool kMask, bool kGrad>
inline void column_partial(float& p1, float& p2, const float* dy, const float* x, const float* y, float m) {
  const float d = *x - m;
  if (kGrad) {
    const float gl = *dy;
    const float g = kMask ? (*y > 0.f ? gl : 0.f) : gl;
    p1 += g;
    p2 += g * d;
  } else {
    p1 += d;
    p2 += d * d;
  }
}

// kAcc float vectors (kAcc·kFV columns) per sum sweep down the rows together: independent chains
// that hide the add latency.
template <bool kMask, bool kGrad, int kAcc>
inline void column_block_sums(const float* dy, const float* x, const float* y, int64_t n, int64_t ld,
                              const float* m, double* s1, double* s2) {
  dv a1[2 * kAcc] = {}, a2[2 * kAcc] = {};
  fv mq[kAcc];
  for (int q = 0; q < kAcc; ++q) mq[q] = load<fv>(m + q * kFV);
  for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
    const int64_t r1 = r0 + kRowBlock < n ? r0 + kRowBlock : n;
    fv p1[kAcc] = {}, p2[kAcc] = {};
    for (int64_t r = r0; r < r1; ++r)
      for (int q = 0; q < kAcc; ++q) {
        const int64_t o = r * ld + q * kFV;
        const fv d = load<fv>(x + o) - mq[q];
        if (kGrad) {
          const fv g = kMask ? masked(load<fv>(dy + o), load<fv>(y + o)) : load<fv>(dy + o);
          p1[q] += g;
          p2[q] += g * d;
        } else {
          p1[q] += d;
          p2[q] += d * d;
        }
      }
    for (int q = 0; q < kAcc; ++q) {
      float t1[kFV], t2[kFV];
      store(t1, p1[q]);
      store(t2, p2[q]);
      a1[2 * q] += widen(t1);
      a1[2 * q + 1] += widen(t1 + kDV);
      a2[2 * q] += widen(t2);
      a2[2 * q + 1] += widen(t2 + kDV);
    }
  }
  for (int q = 0; q < 2 * kAcc; ++q)
    for (int l = 0; l < kDV; ++l) {
      s1[q * kDV + l] = a1[q][l];
      s2[q * kDV + l] = a2[q][l];
    }
}

constexpr int kColumnAcc = DROPNET_BN_VEC_BYTES == 64 ? 4 : 2;

template <bool kMask, bool kGrad>
inline void column_sums(const float* dy, const float* x, const float* y, int64_t n, int64_t ld, int64_t cols,
                        const float* m, double* s1, double* s2) {
  int64_t j = 0;
  for (; j + kColumnAcc * kFV <= cols; j += kColumnAcc * kFV)
    column_block_sums<kMask, kGrad, kColumnAcc>(dy + j, x + j, y + j, n, ld, m + j, s1 + j, s2 + j);
  for (; j + kFV <= cols; j += kFV) column_block_sums<kMask, kGrad, 1>(dy + j, x + j, y + j, n, ld, m + j, s1 + j, s2 + j);
  for (; j < cols; ++j) {  // the same arithmetic, one column at a time
    double a1 = 0.0, a2 = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
      const int64_t r1 = r0 + kRowBlock < n ? r0 + kRowBlock : n;
      float p1 = 0.f, p2 = 0.f;
      for (int64_t r = r0; r < r1; ++r)
        column_partial<kMask, kGrad>(p1, p2, dy + r * ld + j, x + r * ld + j, y + r * ld + j, m[j]);
      a1 += p1;
      a2 += p2;
    }
    s1[j] = a1;
    s2[j] = a2;
  }
}

inline void column_moments(const float* x, int64_t n, int64_t ld, int64_t cols, const float* shift, double* s1,
                           double* s2) {
  column_sums<false, false>(x, x, x, n, ld, cols, shift, s1, s2);
}

inline void column_grad_sums(const float* dy, const float* x, const float* y_relu, int64_t n, int64_t ld,
                             int64_t cols, const float* mean, double* sum_dy, double* sum_dy_xc) {
  if (y_relu) column_sums<true, true>(dy, x, y_relu, n, ld, cols, mean, sum_dy, sum_dy_xc);
  else column_sums<false, true>(dy, x, x, n, ld, cols, mean, sum_dy, sum_dy_xc);
}

// ---- elementwise passes of the plane layout: a "row" is len contiguous floats of one channel.

inline void stream_store(float* p, fv v) {
#if DROPNET_BN_VEC_BYTES == 64
  _mm512_stream_ps(p, v);
#elif DROPNET_BN_VEC_BYTES == 32
  _mm256_stream_ps(p, v);
#else
  _mm_stream_ps(p, v);
#endif
}
template <bool kStream>
inline void put(float* p, fv v) {
  if (kStream) stream_store(p, v);  // p aligned (the callers peel a head)
  else store(p, v);
}
// Floats before the first vector-aligned address at or after p (p is at least float-aligned).
inline int64_t to_alignment(const float* p) {
  return static_cast<int64_t>(((DROPNET_BN_VEC_BYTES - (reinterpret_cast<uintptr_t>(p) % DROPNET_BN_VEC_BYTES)) %
                               DROPNET_BN_VEC_BYTES) / 4);
}

template <bool kRelu, bool kStream>
inline void affine_rows(const float* x, float* y, int64_t n, int64_t stride, int64_t len, float scale, float shift) {
  const fv zero = {};
  for (int64_t r = 0; r < n; ++r) {
    const float* p = x + r * stride;
    float* q = y + r * stride;
    int64_t i = 0;
    for (const int64_t head = !kStream ? 0 : to_alignment(q) < len ? to_alignment(q) : len; i < head; ++i) {
      const float v = p[i] * scale + shift;
      q[i] = kRelu ? (v > 0.f ? v : 0.f) : v;
    }
    for (; i + kFV <= len; i += kFV) {
      const fv v = load<fv>(p + i) * scale + shift;
      put<kStream>(q + i, kRelu ? (v > zero ? v : zero) : v);
    }
    for (; i < len; ++i) {
      const float v = p[i] * scale + shift;
      q[i] = kRelu ? (v > 0.f ? v : 0.f) : v;
    }
  }
}

template <bool kMask, bool kStream>
inline void grad_input_rows(const float* dy, const float* x, const float* y, float* dx, int64_t n, int64_t stride,
                            int64_t dy_stride, int64_t len, float k_dy, float k_xc, float mean, float k0) {
  for (int64_t r = 0; r < n; ++r) {
    const int64_t o = r * stride;
    const float* gr = dy + r * dy_stride;
    int64_t i = 0;
    for (const int64_t head = !kStream ? 0 : to_alignment(dx + o) < len ? to_alignment(dx + o) : len; i < head;
         ++i) {
      const float gl = gr[i];
      const float gv = kMask ? (y[o + i] > 0.f ? gl : 0.f) : gl;
      dx[o + i] = k_dy * gv + k_xc * (x[o + i] - mean) + k0;
    }
    for (; i + kFV <= len; i += kFV) {
      const fv g = load<fv>(gr + i);
      const fv gv = kMask ? masked(g, load<fv>(y + o + i)) : g;
      put<kStream>(dx + o + i, k_dy * gv + k_xc * (load<fv>(x + o + i) - mean) + k0);
    }
    for (; i < len; ++i) {
      const float gl = gr[i];
      const float gv = kMask ? (y[o + i] > 0.f ? gl : 0.f) : gl;
      dx[o + i] = k_dy * gv + k_xc * (x[o + i] - mean) + k0;
    }
  }
}

// stream: write the output with non-temporal stores (outputs much larger than L2: they bypass
// the cache instead of evicting the inputs the second pass re-reads, and skip the read-for-ownership).
// The caller issues _mm_sfence() before the output is read by another thread.
inline void plane_affine(const float* x, float* y, int64_t n, int64_t stride, int64_t len, float scale, float shift,
                         bool relu, bool stream) {
  if (stream) {
    if (relu) affine_rows<true, true>(x, y, n, stride, len, scale, shift);
    else affine_rows<false, true>(x, y, n, stride, len, scale, shift);
  } else {
    if (relu) affine_rows<true, false>(x, y, n, stride, len, scale, shift);
    else affine_rows<false, false>(x, y, n, stride, len, scale, shift);
  }
}

inline void plane_grad_input(const float* dy, const float* x, const float* y_relu, float* dx, int64_t n,
                             int64_t stride, int64_t dy_stride, int64_t len, float k_dy, float k_xc, float mean,
                             float k0, bool stream) {
  if (stream) {
    if (y_relu) grad_input_rows<true, true>(dy, x, y_relu, dx, n, stride, dy_stride, len, k_dy, k_xc, mean, k0);
    else grad_input_rows<false, true>(dy, x, x, dx, n, stride, dy_stride, len, k_dy, k_xc, mean, k0);
  } else {
    if (y_relu) grad_input_rows<true, false>(dy, x, y_relu, dx, n, stride, dy_stride, len, k_dy, k_xc, mean, k0);
    else grad_input_rows<false, false>(dy, x, x, dx, n, stride, dy_stride, len, k_dy, k_xc, mean, k0);
  }
}

// ---- elementwise passes of the N × C layout over a flat range [begin, end): rows are contiguous,
// so one vector loop runs across row ends; coefficient arrays hold C + kWrap values with entry
// j = the value of column j mod C, so a vector starting at any column reads valid lanes.
inline void next_column(int64_t& c, int64_t step, int64_t C) {
  c += step;
  while (c >= C) c -= C;
}

template <bool kRelu>
inline void flat_affine_t(const float* x, float* y, int64_t begin, int64_t end, int64_t C, const float* scale,
                          const float* shift) {
  const fv zero = {};
  int64_t c = begin % C, i = begin;
  for (; i + kFV <= end; i += kFV, next_column(c, kFV, C)) {
    const fv v = load<fv>(x + i) * load<fv>(scale + c) + load<fv>(shift + c);
    store(y + i, kRelu ? (v > zero ? v : zero) : v);
  }
  for (; i < end; ++i, next_column(c, 1, C)) {
    const float v = x[i] * scale[c] + shift[c];
    y[i] = kRelu ? (v > 0.f ? v : 0.f) : v;
  }
}

inline void flat_affine(const float* x, float* y, int64_t begin, int64_t end, int64_t C, const float* scale,
                        const float* shift, bool relu) {
  if (relu) flat_affine_t<true>(x, y, begin, end, C, scale, shift);
  else flat_affine_t<false>(x, y, begin, end, C, scale, shift);
}

template <bool kMask>
inline void flat_grad_input_t(const float* dy, const float* x, const float* y, float* dx, int64_t begin, int64_t end,
                              int64_t C, const float* k_dy, const float* k_xc, const float* mean, const float* k0) {
  int64_t c = begin % C, i = begin;
  for (; i + kFV <= end; i += kFV, next_column(c, kFV, C)) {
    const fv g = load<fv>(dy + i);
    const fv gv = kMask ? masked(g, load<fv>(y + i)) : g;
    store(dx + i, load<fv>(k_dy + c) * gv + load<fv>(k_xc + c) * (load<fv>(x + i) - load<fv>(mean + c)) +
                      load<fv>(k0 + c));
  }
  for (; i < end; ++i, next_column(c, 1, C)) {
    const float gl = dy[i];
    const float gv = kMask ? (y[i] > 0.f ? gl : 0.f) : gl;
    dx[i] = k_dy[c] * gv + k_xc[c] * (x[i] - mean[c]) + k0[c];
  }
}

inline void flat_grad_input(const float* dy, const float* x, const float* y_relu, float* dx, int64_t begin,
                            int64_t end, int64_t C, const float* k_dy, const float* k_xc, const float* mean,
                            const float* k0) {
  if (y_relu) flat_grad_input_t<true>(dy, x, y_relu, dx, begin, end, C, k_dy, k_xc, mean, k0);
  else flat_grad_input_t<false>(dy, x, x, dx, begin, end, C, k_dy, k_xc, mean, k0);
}

// ---- batch norm + ReLU + 2×2 max pooling (BatchNormMaxPool), the pooling of max_pool_2x2.h at
// this unit's width.
#define DROPNET_POOL_VEC_BYTES DROPNET_BN_VEC_BYTES
#include "dropnet/kernels/cpu/max_pool_2x2.h"
#undef DROPNET_POOL_VEC_BYTES

// ReLU(x·scale + shift) with plane_affine's arithmetic (a product then a sum), so the pooled
// values are the bits the full output would hold.
struct AffineRelu {
  float scale, shift;
  template <class F>
  F operator()(F v) const {
    const F a = v * scale + shift, zero = {};
    return a > zero ? a : zero;
  }
};

// Every cache line of [p, p + bytes), for reading (kWrite false) or writing. A channel's planes
// are short runs (784 bytes of pooled output at 28 × 28) far apart, too short for the hardware
// prefetchers to get going: each plane asks for the next one's lines while it is worked on.
template <bool kWrite>
inline void prefetch_lines(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, kWrite ? 1 : 0);
}

inline void plane_relu_max_pool(const float* x, int64_t n, int64_t stride, int64_t H, int64_t W, float scale,
                                float shift, float* y, int32_t* idx, int64_t out_stride) {
  const AffineRelu tf{scale, shift};
  const int64_t out_bytes = (H / 2) * (W / 2) * 4;
  for (int64_t r = 0; r < n; ++r) {
    if (r + 1 < n) {
      prefetch_lines<false>(x + (r + 1) * stride, H * W * 4);
      prefetch_lines<true>(y + (r + 1) * out_stride, out_bytes);
      prefetch_lines<true>(idx + (r + 1) * out_stride, out_bytes);
    }
    max_pool_2x2(x + r * stride, H, W, y + r * out_stride, idx + r * out_stride, tf);
  }
}

inline void plane_max_unpool(const float* dy, const int32_t* idx, const float* y, int64_t n, int64_t out_stride,
                             int64_t H, int64_t W, float* plane) {
  const int64_t out_bytes = (H / 2) * (W / 2) * 4;
  for (int64_t r = 0; r < n; ++r) {
    if (r + 1 < n) {
      prefetch_lines<false>(dy + (r + 1) * out_stride, out_bytes);
      prefetch_lines<false>(idx + (r + 1) * out_stride, out_bytes);
      prefetch_lines<false>(y + (r + 1) * out_stride, out_bytes);
    }
    max_unpool_2x2(dy + r * out_stride, idx + r * out_stride, y + r * out_stride, H, W, plane + r * H * W);
  }
}

inline const BatchNormKernels& kernels() {
  static const BatchNormKernels table = {plane_moments,       plane_affine,     plane_grad_sums, plane_grad_input,
                                         column_moments,      column_grad_sums, flat_affine,     flat_grad_input,
                                         plane_relu_max_pool, plane_max_unpool};
  return table;
}

}  // namespace DROPNET_BN_UNIT
}  // namespace cpu
}  // namespace dropnet

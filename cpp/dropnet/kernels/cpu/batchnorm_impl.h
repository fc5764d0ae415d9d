// Bodies of the batch-norm kernels, written once as plain loops the compiler vectorises, and
// compiled in three units with different ISA flags (batchnorm.cpp: baseline x86-64,
// batchnorm_avx2.cpp, batchnorm_avx512.cpp). Each unit includes this file inside its own
// namespace (DROPNET_BN_UNIT), so no inline function is shared between units and the linker can
// never hand AVX-512 code to the baseline path. No std:: templates here for the same reason.
//
// Plane reductions keep 16 double lanes: lane l sums elements whose offset within their row is
// l mod 16, in row order, and the lanes are combined in a fixed tree. The order depends neither
// on the thread count nor on the vector width; x² of a float is exact in double, so the only
// ISA difference is FMA contraction in the vector units.
#ifndef DROPNET_BN_UNIT
#error "define DROPNET_BN_UNIT before including batchnorm_impl.h"
#endif
#include <cstdint>

#include "dropnet/kernels/cpu/batchnorm.h"

namespace dropnet {
namespace cpu {
namespace DROPNET_BN_UNIT {

constexpr int kLanes = 16;

inline double combine_lanes(const double* a) {
  double t[8];
  for (int l = 0; l < 8; ++l) t[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; ++l) t[l] += t[l + 4];
  return (t[0] + t[2]) + (t[1] + t[3]);
}

inline void plane_moments(const float* x, int64_t n, int64_t stride, int64_t len, float shift, double* s1,
                          double* s2) {
  double a1[kLanes] = {}, a2[kLanes] = {};
  const double sh = shift;
  for (int64_t r = 0; r < n; ++r) {
    const float* p = x + r * stride;
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const double d = static_cast<double>(p[i + l]) - sh;
        a1[l] += d;
        a2[l] += d * d;
      }
    for (int l = 0; i < len; ++i, ++l) {
      const double d = static_cast<double>(p[i]) - sh;
      a1[l] += d;
      a2[l] += d * d;
    }
  }
  *s1 = combine_lanes(a1);
  *s2 = combine_lanes(a2);
}

template <bool kRelu>
inline void plane_affine_t(const float* x, float* y, int64_t n, int64_t stride, int64_t len, float scale, float shift) {
  for (int64_t r = 0; r < n; ++r) {
    const float* p = x + r * stride;
    float* q = y + r * stride;
    for (int64_t i = 0; i < len; ++i) {
      const float v = p[i] * scale + shift;
      q[i] = kRelu ? (v > 0.f ? v : 0.f) : v;
    }
  }
}

inline void plane_affine(const float* x, float* y, int64_t n, int64_t stride, int64_t len, float scale, float shift,
                         bool relu) {
  if (relu) plane_affine_t<true>(x, y, n, stride, len, scale, shift);
  else plane_affine_t<false>(x, y, n, stride, len, scale, shift);
}

template <bool kMask>
inline void plane_grad_sums_t(const float* dy, const float* x, const float* y, int64_t n, int64_t stride, int64_t len,
                              float mean, double* sum_dy, double* sum_dy_xc) {
  double a1[kLanes] = {}, a2[kLanes] = {};
  const double m = mean;
  for (int64_t r = 0; r < n; ++r) {
    const float* g = dy + r * stride;
    const float* p = x + r * stride;
    const float* o = kMask ? y + r * stride : nullptr;
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const float gv = kMask ? (o[i + l] > 0.f ? g[i + l] : 0.f) : g[i + l];
        const double gd = gv;
        a1[l] += gd;
        a2[l] += gd * (static_cast<double>(p[i + l]) - m);
      }
    for (int l = 0; i < len; ++i, ++l) {
      const float gv = kMask ? (o[i] > 0.f ? g[i] : 0.f) : g[i];
      const double gd = gv;
      a1[l] += gd;
      a2[l] += gd * (static_cast<double>(p[i]) - m);
    }
  }
  *sum_dy = combine_lanes(a1);
  *sum_dy_xc = combine_lanes(a2);
}

inline void plane_grad_sums(const float* dy, const float* x, const float* y_relu, int64_t n, int64_t stride,
                            int64_t len, float mean, double* sum_dy, double* sum_dy_xc) {
  if (y_relu) plane_grad_sums_t<true>(dy, x, y_relu, n, stride, len, mean, sum_dy, sum_dy_xc);
  else plane_grad_sums_t<false>(dy, x, nullptr, n, stride, len, mean, sum_dy, sum_dy_xc);
}

template <bool kMask>
inline void plane_grad_input_t(const float* dy, const float* x, const float* y, float* dx, int64_t n, int64_t stride,
                               int64_t len, float k_dy, float k_xc, float mean, float k0) {
  for (int64_t r = 0; r < n; ++r) {
    const float* g = dy + r * stride;
    const float* p = x + r * stride;
    const float* o = kMask ? y + r * stride : nullptr;
    float* d = dx + r * stride;
    for (int64_t i = 0; i < len; ++i) {
      const float gv = kMask ? (o[i] > 0.f ? g[i] : 0.f) : g[i];
      d[i] = k_dy * gv + k_xc * (p[i] - mean) + k0;
    }
  }
}

inline void plane_grad_input(const float* dy, const float* x, const float* y_relu, float* dx, int64_t n,
                             int64_t stride, int64_t len, float k_dy, float k_xc, float mean, float k0) {
  if (y_relu) plane_grad_input_t<true>(dy, x, y_relu, dx, n, stride, len, k_dy, k_xc, mean, k0);
  else plane_grad_input_t<false>(dy, x, nullptr, dx, n, stride, len, k_dy, k_xc, mean, k0);
}

// ---- columns (HW = 1): every column is its own accumulator, rows in order.

inline void column_moments(const float* x, int64_t n, int64_t ld, int64_t cols, const float* shift, double* s1,
                           double* s2) {
  for (int64_t j = 0; j < cols; ++j) s1[j] = s2[j] = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const float* p = x + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const double d = static_cast<double>(p[j]) - static_cast<double>(shift[j]);
      s1[j] += d;
      s2[j] += d * d;
    }
  }
}

template <bool kRelu>
inline void column_affine_t(const float* x, float* y, int64_t n, int64_t ld, int64_t cols, const float* scale,
                            const float* shift) {
  for (int64_t r = 0; r < n; ++r) {
    const float* p = x + r * ld;
    float* q = y + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const float v = p[j] * scale[j] + shift[j];
      q[j] = kRelu ? (v > 0.f ? v : 0.f) : v;
    }
  }
}

inline void column_affine(const float* x, float* y, int64_t n, int64_t ld, int64_t cols, const float* scale,
                          const float* shift, bool relu) {
  if (relu) column_affine_t<true>(x, y, n, ld, cols, scale, shift);
  else column_affine_t<false>(x, y, n, ld, cols, scale, shift);
}

template <bool kMask>
inline void column_grad_sums_t(const float* dy, const float* x, const float* y, int64_t n, int64_t ld, int64_t cols,
                               const float* mean, double* sum_dy, double* sum_dy_xc) {
  for (int64_t j = 0; j < cols; ++j) sum_dy[j] = sum_dy_xc[j] = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const float* g = dy + r * ld;
    const float* p = x + r * ld;
    const float* o = kMask ? y + r * ld : nullptr;
    for (int64_t j = 0; j < cols; ++j) {
      const float gv = kMask ? (o[j] > 0.f ? g[j] : 0.f) : g[j];
      const double gd = gv;
      sum_dy[j] += gd;
      sum_dy_xc[j] += gd * (static_cast<double>(p[j]) - static_cast<double>(mean[j]));
    }
  }
}

inline void column_grad_sums(const float* dy, const float* x, const float* y_relu, int64_t n, int64_t ld,
                             int64_t cols, const float* mean, double* sum_dy, double* sum_dy_xc) {
  if (y_relu) column_grad_sums_t<true>(dy, x, y_relu, n, ld, cols, mean, sum_dy, sum_dy_xc);
  else column_grad_sums_t<false>(dy, x, nullptr, n, ld, cols, mean, sum_dy, sum_dy_xc);
}

template <bool kMask>
inline void column_grad_input_t(const float* dy, const float* x, const float* y, float* dx, int64_t n, int64_t ld,
                                int64_t cols, const float* k_dy, const float* k_xc, const float* mean,
                                const float* k0) {
  for (int64_t r = 0; r < n; ++r) {
    const float* g = dy + r * ld;
    const float* p = x + r * ld;
    const float* o = kMask ? y + r * ld : nullptr;
    float* d = dx + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const float gv = kMask ? (o[j] > 0.f ? g[j] : 0.f) : g[j];
      d[j] = k_dy[j] * gv + k_xc[j] * (p[j] - mean[j]) + k0[j];
    }
  }
}

inline void column_grad_input(const float* dy, const float* x, const float* y_relu, float* dx, int64_t n, int64_t ld,
                              int64_t cols, const float* k_dy, const float* k_xc, const float* mean, const float* k0) {
  if (y_relu) column_grad_input_t<true>(dy, x, y_relu, dx, n, ld, cols, k_dy, k_xc, mean, k0);
  else column_grad_input_t<false>(dy, x, nullptr, dx, n, ld, cols, k_dy, k_xc, mean, k0);
}

inline const BatchNormKernels& kernels() {
  static const BatchNormKernels table = {plane_moments,  plane_affine,   plane_grad_sums,  plane_grad_input,
                                         column_moments, column_affine,  column_grad_sums, column_grad_input};
  return table;
}

}  // namespace DROPNET_BN_UNIT
}  // namespace cpu
}  // namespace dropnet

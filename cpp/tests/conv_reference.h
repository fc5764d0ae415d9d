// The float64 direct convolution the CUDA convolution's tests hold every path to (the host-simulated
// implicit GEMM in test_cuda_conv_bodies.cpp, the CPU kernel, and on a GPU the cuDNN backend in
// gpu/test_cuda_conv_cudnn.cpp), the float32 error bound they are held within, and the geometry
// classes they cover.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "conv_sim.h"
#include "dropnet/core/activation_element.h"
#include "dropnet/kernels/cpu/im2col.h"

namespace dropnet {
namespace testing {

// Shapes: C = 1, C and F not multiples of the tiles, odd planes, stride 2, padding 0 / 1 / 2 and
// asymmetric, dilation 2, groups 2 and depthwise, batch 1, 1×1 / 2×2 / 3×3 / 5×5 kernels, a weight
// gradient over more than one chunk of pixels.
inline const ConvCase kConvCases[] = {
    // N  C   H   W   F  kh kw sh sw pt pl pb pr dil groups
    {1, 1, 5, 7, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},     // C = 1, batch 1, odd planes
    {2, 3, 9, 8, 5, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1},     // stride 2, no padding
    {2, 17, 6, 6, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   // K = 153: a reduction tail; the CPU's Winograd
    {2, 4, 7, 5, 6, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1},     // 5×5, pad 2
    {1, 4, 8, 8, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 1},     // dilation 2
    {3, 4, 7, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 2},     // groups 2, stride 2
    {2, 4, 6, 5, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4},     // depthwise (2 filters per channel)
    {2, 5, 6, 9, 70, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},    // 1×1, F past one tile of filters
    {2, 2, 6, 6, 3, 2, 2, 1, 1, 0, 1, 1, 0, 1, 1},     // 2×2 "same": asymmetric padding
    {2, 3, 7, 6, 4, 3, 3, 2, 1, 0, 2, 1, 0, 1, 1},     // unequal strides, asymmetric padding
    {16, 3, 12, 12, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  // 2304 output pixels: two weight-gradient chunks
    {1, 70, 5, 5, 66, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   // channels and filters past one tile
};

// A float64 sum and the sum of its terms' magnitudes, per element.
struct Sums {
  std::vector<double> value, magnitude;
  explicit Sums(size_t n) : value(n, 0.0), magnitude(n, 0.0) {}
  void add(size_t i, double term) {
    value[i] += term;
    magnitude[i] += std::fabs(term);
  }
};

// The direct convolution in float64, every (image, filter, output pixel, tap) visited once:
// z = conv(x, w) + bias, dx = convᵀ(dy, w), dw = Σ dy ⊗ patches, db = Σ dy.
struct Reference {
  Sums z, dx, dw, db;
  Reference(const ConvCase& k, const cpu::ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
            const float* bias, const std::vector<float>& dy)
      : z(dy.size()), dx(x.size()), dw(w.size()), db(static_cast<size_t>(k.F)) {
    const int64_t Cg = k.C / k.groups, Fg = k.F / k.groups, ohw = g.OH * g.OW;
    for (int64_t n = 0; n < k.N; ++n)
      for (int64_t f = 0; f < k.F; ++f)
        for (int64_t o = 0; o < ohw; ++o) {
          const int64_t oh = o / g.OW, ow = o % g.OW, yi = (n * k.F + f) * ohw + o;
          if (bias) z.add(yi, bias[f]);
          db.add(f, dy[yi]);
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < k.kh; ++i)
              for (int64_t j = 0; j < k.kw; ++j) {
                const int64_t ih = oh * k.stride_h - k.pad_top + i * k.dil;
                const int64_t iw = ow * k.stride_w - k.pad_left + j * k.dil;
                if (ih < 0 || ih >= k.H || iw < 0 || iw >= k.W) continue;
                const int64_t xi = ((n * k.C + f / Fg * Cg + c) * k.H + ih) * k.W + iw;
                const int64_t wi = ((f * Cg + c) * k.kh + i) * k.kw + j;
                z.add(yi, double(w[wi]) * x[xi]);
                dx.add(xi, double(w[wi]) * dy[yi]);
                dw.add(wi, double(dy[yi]) * x[xi]);
              }
        }
  }
};

// A float32 sum of n terms in any order of additions and fmas is within γ(n)·Σ|terms| of the exact
// sum (γ(n) = n·u / (1 − n·u), u = 2⁻²⁴); the epilogue's activation then moves it by at most 1.2×
// (the largest slope of tanh, sigmoid, GELU) plus its own error (a few ulps; relative 4e-6 and
// absolute 1e-6 cover the polynomials against the C library). `slack` widens the bound for the
// CPU, whose Winograd transforms are not a plain sum.
inline void check_within(const std::vector<float>& got, const Sums& want, int64_t terms, bool activation,
                         double slack, ActivationKind kind = ActivationKind::identity) {
  REQUIRE(got.size() == want.value.size());
  const double nu = static_cast<double>(terms + 2) * std::ldexp(1.0, -24), gamma = nu / (1.0 - nu);
  double worst = 0.0;
  size_t at = 0;
  for (size_t e = 0; e < got.size(); ++e) {
    double ref = want.value[e], bound = slack * gamma * want.magnitude[e];
    if (activation) {
      ref = activation_value(kind, static_cast<float>(ref), 0.03f);
      bound = 1.2 * bound + 4e-6 * std::fabs(ref) + 1e-6;
    }
    const double excess = std::fabs(got[e] - ref) - bound;
    if (!(excess <= worst)) {
      worst = excess;
      at = e;
    }
  }
  INFO("worst element ", at, ": ", got.empty() ? 0.f : got[at], " vs ", want.value.empty() ? 0.0 : want.value[at]);
  CHECK(worst <= 0.0);
}

}  // namespace testing
}  // namespace dropnet

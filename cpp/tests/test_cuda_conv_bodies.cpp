// The CUDA convolution without a GPU: the implicit-GEMM block programs of
// kernels/cuda/conv2d_body.h run on the host over the grid the .cu launch would use and over a
// 2-block grid (so blocks stride over tiles), threads in order and reversed, and
//   - every run gives the same bytes (one fmaf chain per output in a fixed order, one writer);
//   - forward, input, weight and bias gradients agree with a float64 direct convolution written
//     here within the float32 error bound of their sums, and so does the CPU kernel
//     (cpu::conv2d_forward / conv2d_backward, im2col or Winograd), which proves the reference.
// Shapes: C = 1, C and F not multiples of the tiles, odd planes, stride 2, padding 0 / 1 / 2 and
// asymmetric, dilation 2, groups 2 and depthwise, batch 1, 1×1 / 2×2 / 3×3 / 5×5 kernels, a weight
// gradient over more than one chunk of pixels; with and without bias; every epilogue activation.
// This proves the bodies and the launch layout, not the GPU: conv2d.cu has never run on a device.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "conv_sim.h"
#include "cuda_sim.h"
#include "dropnet/core/denormals.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/im2col.h"
#include "dropnet/kernels/cuda/conv2d_body.h"

using namespace dropnet;
using testing::same_bytes;

namespace {

using testing::ConvCase;
using testing::normal_floats;

const ConvCase kCases[] = {
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
void check_within(const std::vector<float>& got, const Sums& want, int64_t terms, bool activation, double slack,
                  ActivationKind kind = ActivationKind::identity) {
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

const Activation kActivations[] = {Activation::identity, Activation::relu,    Activation::leaky_relu,
                                   Activation::tanh,     Activation::sigmoid, Activation::gelu};

// What a failing check prints about its case.
std::string case_name(const ConvCase& k, bool with_bias) {
  return "N=" + std::to_string(k.N) + " C=" + std::to_string(k.C) + " F=" + std::to_string(k.F) +
         " kh=" + std::to_string(k.kh) + " groups=" + std::to_string(k.groups) + " bias=" + (with_bias ? "1" : "0");
}

}  // namespace

TEST_CASE("simulated CUDA conv2d forward ~ float64 direct convolution (so is the CPU), same bytes on every grid") {
  for (const ConvCase& k : kCases)
    for (bool with_bias : {false, true}) {
      INFO(case_name(k, with_bias));
      const cpu::ConvGeometry g = testing::conv_case_geometry(k);
      const cuda::ConvShape s = cuda::conv_shape(g);
      const int64_t ny = k.N * k.F * g.OH * g.OW, K = k.C / k.groups * k.kh * k.kw;
      const std::vector<float> x = normal_floats(k.N * k.C * k.H * k.W, 1), w = normal_floats(k.F * K, 2),
                               b = normal_floats(k.F, 3), dy(static_cast<size_t>(ny), 0.f);
      const float* bias = with_bias ? b.data() : nullptr;
      const Reference ref(k, g, x, w, bias, dy);
      for (Activation act : kActivations) {
        CAPTURE(static_cast<int>(act));
        cuda::ConvForwardArgs a;
        a.x = x.data(), a.w = w.data(), a.bias = bias, a.g = s, a.N = k.N, a.F = k.F, a.activation = act;
        a.leaky_slope = 0.03f;
        std::vector<float> first;
        // Every activation on the launch's grid; the grids and thread orders on two of them.
        const bool all_grids = act == Activation::identity || act == Activation::gelu;
        for (bool tiny : {false, true})
          for (bool reversed : {false, true}) {
            if (!all_grids && (reversed || tiny)) continue;
            std::vector<float> y(static_cast<size_t>(ny), -7.f);
            a.y = y.data();
            testing::simulate_conv2d_forward(a, tiny, reversed);
            if (first.empty()) {
              first = y;
              check_within(y, ref.z, K + 1, true, 1.0, static_cast<ActivationKind>(act));
            } else {
              CHECK(same_bytes(y, first));
            }
          }
        std::vector<float> want(static_cast<size_t>(ny));
        std::vector<float> ws(static_cast<size_t>(cpu::conv2d_forward_workspace(g, k.F, with_bias, 1)));
        {
          DenormalsFlushed ftz;
          cpu::conv2d_forward(x.data(), k.N, g, w.data(), k.F, bias, act, 0.03f, want.data(), ws.data(),
                              static_cast<int64_t>(ws.size()));
        }
        check_within(want, ref.z, K + 1, true, 4.0, static_cast<ActivationKind>(act));
      }
    }
}

TEST_CASE("simulated CUDA conv2d backward (dx, dw, db) ~ float64 direct convolution (so is the CPU), same bytes") {
  for (const ConvCase& k : kCases)
    for (bool with_bias : {false, true}) {
      INFO(case_name(k, with_bias));
      const cpu::ConvGeometry g = testing::conv_case_geometry(k);
      const cuda::ConvShape s = cuda::conv_shape(g);
      const int64_t ohw = g.OH * g.OW, P = k.N * ohw, K = k.C / k.groups * k.kh * k.kw;
      const std::vector<float> x = normal_floats(k.N * k.C * k.H * k.W, 4), w = normal_floats(k.F * K, 5),
                               dy = normal_floats(k.N * k.F * ohw, 6), dw0 = normal_floats(k.F * K, 7),
                               db0 = normal_floats(k.F, 8);
      Reference ref(k, g, x, w, nullptr, dy);
      for (size_t e = 0; e < dw0.size(); ++e) ref.dw.add(e, dw0[e]);  // dw and db are accumulated into
      for (size_t e = 0; e < db0.size(); ++e) ref.db.add(e, db0[e]);
      const int64_t dx_terms = k.F / k.groups * k.kh * k.kw;
      const cuda::ConvGemmLayout Lw = cuda::conv_weight_grad_layout(s, k.N, k.F, with_bias);
      CHECK(Lw.splits == (P + cuda::kConvSplitPixels - 1) / cuda::kConvSplitPixels);
      std::vector<float> first_dx, first_dw, first_db;
      for (bool tiny : {false, true})
        for (bool reversed : {false, true}) {
          CAPTURE(tiny);
          CAPTURE(reversed);
          std::vector<float> dx(x.size(), -7.f), dw = dw0, db = db0;
          testing::simulate_conv2d_backward(dy.data(), x.data(), k.N, s, w.data(), k.F, dx.data(), dw.data(),
                                            with_bias ? db.data() : nullptr, tiny, reversed);
          if (first_dx.empty()) {
            first_dx = dx, first_dw = dw, first_db = db;
            check_within(dx, ref.dx, dx_terms, false, 1.0);
            check_within(dw, ref.dw, P + 1, false, 1.0);
            if (with_bias)
              check_within(db, ref.db, P + 1, false, 1.0);
            else
              CHECK(same_bytes(db, db0));
          } else {
            CHECK(same_bytes(dx, first_dx));
            CHECK(same_bytes(dw, first_dw));
            CHECK(same_bytes(db, first_db));
          }
        }
      std::vector<float> dx(x.size(), -7.f), dw = dw0, db = db0;
      std::vector<float> ws(static_cast<size_t>(cpu::conv2d_backward_workspace(g, k.N, k.F, 1)));
      {
        DenormalsFlushed ftz;
        cpu::conv2d_backward(dy.data(), x.data(), k.N, g, w.data(), k.F, dx.data(), dw.data(),
                             with_bias ? db.data() : nullptr, ws.data(), static_cast<int64_t>(ws.size()));
      }
      check_within(dx, ref.dx, dx_terms, false, 4.0);
      check_within(dw, ref.dw, P + 1, false, 4.0);
      if (with_bias) check_within(db, ref.db, P + 1, false, 4.0);
    }
}

TEST_CASE("CUDA conv2d layouts: tiles, chunks and scratch are functions of the problem alone") {
  cuda::ConvShape s;
  s.C = 32, s.H = s.W = 14, s.kh = s.kw = 3, s.pad_top = s.pad_left = 1, s.OH = s.OW = 14;
  const cuda::ConvGemmLayout f = cuda::conv_forward_layout(s, 128, 64);
  CHECK(f.M == 64);
  CHECK(f.Ncols == 128 * 196);
  CHECK(f.R == 288);
  CHECK(f.splits == 1);
  CHECK(f.tiles() == 1 * (128 * 196 + 63) / 64);
  const cuda::ConvGemmLayout wg = cuda::conv_weight_grad_layout(s, 128, 64, true);
  CHECK(wg.Ncols == 289);
  CHECK(wg.splits == (128 * 196 + 2047) / 2048);
  CHECK(cuda::conv_weight_grad_scratch(s, 128, 64) == wg.splits * 64 * 289);
  CHECK(cuda::conv_grid(f).threads == cuda::kConvThreads);
  CHECK(cuda::conv_grid(f).blocks == f.tiles());
}

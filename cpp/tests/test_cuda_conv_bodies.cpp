// The CUDA convolution without a GPU: the implicit-GEMM block programs of
// kernels/cuda/conv2d_body.h run on the host over the grid the .cu launch would use and over a
// 2-block grid (so blocks stride over tiles), threads in order and reversed, and
//   - every run gives the same bytes (one fmaf chain per output in a fixed order, one writer);
//   - forward, input, weight and bias gradients agree with a float64 direct convolution
//     (conv_reference.h) within the float32 error bound of their sums, and so does the CPU kernel
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

#include "conv_reference.h"
#include "conv_sim.h"
#include "cuda_sim.h"
#include "dropnet/core/denormals.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/im2col.h"
#include "dropnet/kernels/cuda/conv2d_body.h"

using namespace dropnet;
using testing::check_within;
using testing::Reference;
using testing::same_bytes;

namespace {

using testing::ConvCase;
using testing::normal_floats;

const Activation kActivations[] = {Activation::identity, Activation::relu,    Activation::leaky_relu,
                                   Activation::tanh,     Activation::sigmoid, Activation::gelu};

// What a failing check prints about its case.
std::string case_name(const ConvCase& k, bool with_bias) {
  return "N=" + std::to_string(k.N) + " C=" + std::to_string(k.C) + " F=" + std::to_string(k.F) +
         " kh=" + std::to_string(k.kh) + " groups=" + std::to_string(k.groups) + " bias=" + (with_bias ? "1" : "0");
}

}  // namespace

TEST_CASE("simulated CUDA conv2d forward ~ float64 direct convolution (so is the CPU), same bytes on every grid") {
  for (const ConvCase& k : testing::kConvCases)
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
  for (const ConvCase& k : testing::kConvCases)
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

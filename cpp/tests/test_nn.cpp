// Kernels of the dense training core against double-precision references written here, on every
// ISA path and thread count, and the Network's all-or-nothing step.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/error.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/activation.h"
#include "dropnet/kernels/cpu/finite_check.h"
#include "dropnet/kernels/cpu/optimizer.h"
#include "dropnet/kernels/cpu/softmax_xent.h"
#include "dropnet/kernels/cpu/weight_penalty.h"
#include "dropnet/nn/network.h"

using namespace dropnet;

namespace {
std::vector<float> normals(size_t n, unsigned seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Runs fn once per ISA level the CPU has, restoring the level afterwards.
template <class Fn>
void for_each_isa(Fn&& fn) {
  const Isa saved = active_isa();
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    fn(static_cast<Isa>(level));
  }
  set_isa(saved);
}

double slope_ref(cpu::ActivationKind k, double a, double z) {
  switch (k) {
    case cpu::ActivationKind::relu: return a > 0 ? 1 : 0;
    case cpu::ActivationKind::leaky_relu: return a > 0 ? 1 : 0.01;
    case cpu::ActivationKind::tanh: return 1 - a * a;
    case cpu::ActivationKind::sigmoid: return a * (1 - a);
    case cpu::ActivationKind::selu: return a > 0 ? cpu::kSeluLambda : a + cpu::kSeluLambda * cpu::kSeluAlpha;
    case cpu::ActivationKind::gelu:
      return 0.5 * (1 + std::erf(z / std::sqrt(2.0))) + z * std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
    default: return 1;
  }
}
}  // namespace

TEST_CASE("activation_backward matches a double reference on every ISA, bit-identical over threads") {
  const int64_t rows = 37, cols = 301;  // odd sizes: mask words straddle rows, chunks have tails
  const auto pre = normals(rows * cols, 1);
  const auto dy = normals(rows * cols, 2);
  std::vector<uint64_t> bits((rows * cols + 63) / 64);
  std::mt19937_64 g(3);
  for (auto& b : bits) b = g();
  const float scale = 2.f;
  const cpu::ActivationKind kinds[] = {cpu::ActivationKind::identity, cpu::ActivationKind::relu,
                                       cpu::ActivationKind::leaky_relu, cpu::ActivationKind::tanh,
                                       cpu::ActivationKind::sigmoid, cpu::ActivationKind::gelu,
                                       cpu::ActivationKind::selu};
  const int saved_threads = get_num_threads();
  for (auto kind : kinds) {
    // Layer output y = dropout(f(pre)) as the forward pass stores it.
    std::vector<float> a(rows * cols), y(rows * cols);
    cpu::activation_forward(kind, pre.data(), a.data(), rows * cols, 0.01f);
    for (int64_t e = 0; e < rows * cols; ++e) y[e] = ((bits[e >> 6] >> (e & 63)) & 1) ? a[e] * scale : 0.f;
    for_each_isa([&](Isa isa) {
      std::vector<float> d1(rows * cols), d2(rows * cols), b1(cols), b2(cols);
      set_num_threads(1);
      cpu::activation_backward(kind, rows, cols, dy.data(), y.data(), pre.data(), bits.data(), scale, 0.01f,
                               d1.data(), b1.data());
      set_num_threads(2);
      cpu::activation_backward(kind, rows, cols, dy.data(), y.data(), pre.data(), bits.data(), scale, 0.01f,
                               d2.data(), b2.data());
      CHECK(d1 == d2);
      CHECK(b1 == b2);
      for (int64_t j = 0; j < cols; ++j) {
        double bias = 0;
        for (int64_t i = 0; i < rows; ++i) {
          const int64_t e = i * cols + j;
          const double keep = ((bits[e >> 6] >> (e & 63)) & 1) ? scale : 0.0;
          const double want = dy[e] * keep * slope_ref(kind, a[e], pre[e]);
          bias += want;
          INFO("isa ", isa_name(isa), " kind ", static_cast<int>(kind), " e ", e);
          REQUIRE(std::fabs(d1[e] - want) <= 1e-5 * (1 + std::fabs(want)));
        }
        REQUIRE(std::fabs(b1[j] - bias) <= 1e-4 * (1 + std::fabs(bias)));
      }
    });
  }
  set_num_threads(saved_threads);
}

TEST_CASE("optimizer kernels: every ISA agrees with the scalar twin, masked entries stay zero") {
  const int64_t n = 100003;
  const auto w0 = normals(n, 4), g = normals(n, 5, 0.1f);
  std::vector<float> mask(n);
  for (int64_t i = 0; i < n; ++i) mask[i] = (i % 3 == 0) ? 0.f : 1.f;
  cpu::SgdArgs s;
  s.lr = 0.1f;
  s.momentum = 0.9f;
  s.nesterov = true;
  s.weight_decay = 0.01f;
  cpu::AdamArgs a;
  a.lr = 0.01f;
  a.weight_decay = 0.1f;
  a.decoupled = true;
  a.step_size = 0.1f;
  a.bias2_sqrt = 0.0316f;
  std::vector<float> ws_ref, wa_ref;
  for_each_isa([&](Isa) {
    std::vector<float> ws = w0, buf(n, 0.5f), wa = w0, m(n, 0.1f), v(n, 0.2f);
    cpu::sgd_update(s, n, ws.data(), g.data(), buf.data(), mask.data());
    cpu::adam_update(a, n, wa.data(), g.data(), m.data(), v.data(), mask.data());
    for (int64_t i = 0; i < n; i += 3) {
      REQUIRE(ws[i] == 0.f);
      REQUIRE(buf[i] == 0.f);
      REQUIRE(wa[i] == 0.f);
      REQUIRE(m[i] == 0.f);
      REQUIRE(v[i] == 0.f);
    }
    if (ws_ref.empty()) {
      ws_ref = ws;
      wa_ref = wa;
      // One element by hand (PyTorch's formulas), in double.
      const int64_t i = 1;
      const double d = g[i] + 0.01 * w0[i], b = 0.9 * 0.5 + d, step = d + 0.9 * b;
      CHECK(ws[i] == doctest::Approx(w0[i] - 0.1 * step).epsilon(1e-6));
      const double wd = w0[i] * (1 - 0.01 * 0.1), mm = 0.1 + 0.1 * (g[i] - 0.1),
                   vv = 0.999 * 0.2 + 0.001 * g[i] * g[i];
      CHECK(wa[i] == doctest::Approx(wd - 0.1 * mm / (std::sqrt(vv) / 0.0316 + 1e-7)).epsilon(1e-6));
    }
    for (int64_t i = 0; i < n; ++i) {
      REQUIRE(std::fabs(ws[i] - ws_ref[i]) <= 1e-6f * (1 + std::fabs(ws_ref[i])));
      REQUIRE(std::fabs(wa[i] - wa_ref[i]) <= 1e-6f * (1 + std::fabs(wa_ref[i])));
    }
  });
}

TEST_CASE("softmax cross-entropy: stable loss and gradient against a double reference") {
  const int64_t rows = 5, classes = 7;
  auto z = normals(rows * classes, 6, 3.f);
  z[0] = 1000.f;  // would overflow a naive exp
  z[classes + 1] = -1000.f;
  const int64_t labels[rows] = {0, 1, 6, 3, 2};
  std::vector<float> loss(rows), d(rows * classes);
  cpu::softmax_xent_sparse(z.data(), labels, rows, classes, 1.f / rows, loss.data(), d.data());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j < classes; ++j) mx = std::max(mx, double(z[r * classes + j]));
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(z[r * classes + j] - mx);
    const double lse = mx + std::log(sum);
    CHECK(loss[r] == doctest::Approx(lse - z[r * classes + labels[r]]).epsilon(1e-5));
    for (int64_t j = 0; j < classes; ++j) {
      const double p = std::exp(z[r * classes + j] - lse);
      CHECK(d[r * classes + j] == doctest::Approx((p - (j == labels[r])) / rows).epsilon(1e-5).scale(1e-6));
    }
  }
}

TEST_CASE("weight penalty: value, gradient and thread invariance") {
  const int64_t n = 3 * cpu::kPenaltyBlock + 17;
  const auto w = normals(n, 7);
  const auto g0 = normals(n, 8);
  std::vector<double> blocks(cpu::penalty_blocks(n));
  const int saved = get_num_threads();
  std::vector<float> g1 = g0, g2 = g0;
  set_num_threads(1);
  const double p1 = cpu::weight_penalty_grad(n, w.data(), g1.data(), nullptr, 0.01f, 0.02f, blocks.data());
  set_num_threads(2);
  const double p2 = cpu::weight_penalty_grad(n, w.data(), g2.data(), nullptr, 0.01f, 0.02f, blocks.data());
  set_num_threads(saved);
  CHECK(p1 == p2);
  CHECK(g1 == g2);
  double want = 0;
  for (int64_t i = 0; i < n; ++i) want += 0.02f * double(w[i]) * w[i] + 0.01f * std::fabs(double(w[i]));
  CHECK(p1 == doctest::Approx(want).epsilon(1e-9));
  CHECK(g1[5] == doctest::Approx(g0[5] + 2 * 0.02 * w[5] + 0.01 * (w[5] > 0 ? 1 : -1)).epsilon(1e-6));
}

TEST_CASE("first_non_finite finds NaN and inf anywhere, on every ISA and thread count") {
  const int64_t n = 300007;
  std::vector<float> x = normals(n, 11, 1e30f);
  x[5] = 3.4e38f;    // largest finite magnitudes and a denormal are fine
  x[6] = -3.4e38f;
  x[7] = 1e-40f;
  const int saved = get_num_threads();
  for_each_isa([&](Isa) {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      CHECK(cpu::first_non_finite(x.data(), n) == -1);
      for (int64_t pos : {int64_t{0}, int64_t{17}, n / 2 + 3, n - 1}) {
        for (float bad : {NAN, INFINITY, -INFINITY}) {
          const float keep = x[pos];
          x[pos] = bad;
          CHECK(cpu::first_non_finite(x.data(), n) == pos);
          x[pos] = keep;
        }
      }
    }
  });
  set_num_threads(saved);
}

TEST_CASE("Network: a rejected batch leaves everything as it was; a good one trains") {
  nn::LayerSpec hidden;
  hidden.units = 16;
  hidden.activation = cpu::ActivationKind::relu;
  hidden.rate = 0.5;
  nn::LayerSpec out;
  out.units = 3;
  out.activation = cpu::ActivationKind::softmax;
  nn::Network net({hidden, out}, {4}, nn::LossKind::sparse_categorical_crossentropy, 9);
  CHECK(net.softmax_fused());
  nn::OptimizerConfig sgd;
  sgd.lr = 0.2;
  sgd.momentum = 0.9;
  net.set_optimizer(sgd);
  const int64_t rows = 30;
  auto x = normals(rows * 4, 10);
  std::vector<int64_t> y(rows);
  for (int64_t r = 0; r < rows; ++r) {
    y[r] = x[r * 4] > 0 ? (x[r * 4 + 1] > 0 ? 0 : 1) : 2;
  }
  std::vector<float> w_before(net.param(0).size), w_after(net.param(0).size);
  net.copy_param(0, w_before.data());
  y[7] = 3;
  CHECK_THROWS_AS(net.train_step(x.data(), rows, nn::Targets{y.data(), nullptr}), ValueError);
  y[7] = 0;
  x[11] = NAN;
  CHECK_THROWS_AS(net.train_step(x.data(), rows, nn::Targets{y.data(), nullptr}), ValueError);
  x[11] = 0.f;
  CHECK_THROWS_AS(net.train_step(x.data(), rows, nn::Targets{nullptr, x.data()}), TypeError);
  net.copy_param(0, w_after.data());
  CHECK(w_before == w_after);
  CHECK(net.rng_offset() == 0);
  CHECK(net.optimizer_step() == 0);
  const double first = net.train_step(x.data(), rows, nn::Targets{y.data(), nullptr});
  double last = first;
  for (int s = 0; s < 60; ++s) last = net.train_step(x.data(), rows, nn::Targets{y.data(), nullptr});
  CHECK(last < 0.5 * first);
  CHECK(net.rng_offset() == 61);
  CHECK(net.optimizer_step() == 61);
}

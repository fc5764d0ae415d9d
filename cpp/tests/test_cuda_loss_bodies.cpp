// The CUDA kernels of the elementwise losses, the sample weights, the weight penalties and the
// max-norm constraint without a GPU: their per-thread bodies and block programs run on the host
// over the grid the .cu launch would use and over a tiny one (2 blocks of 4 threads, so threads
// stride over many items and every level of a reduction tree is short), with threads and blocks in
// reverse order, and are compared with the CPU kernels: bit for bit where the device takes the
// CPU's steps in the CPU's order (losses, gradients), within a relative 1e-12 where a block tree
// sums in double in another order (the penalty), and within one float rounding of the scale
// (max-norm, docs/design.md, "Device kernels").
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "check_close.h"
#include "cuda_sim.h"
#include "dropnet/kernels/cpu/elementwise_loss.h"
#include "dropnet/kernels/cpu/max_norm.h"
#include "dropnet/kernels/cpu/mse_loss.h"
#include "dropnet/kernels/cpu/weight_penalty.h"
#include "dropnet/kernels/cuda/elementwise_loss_body.h"
#include "dropnet/kernels/cuda/max_norm_body.h"
#include "dropnet/kernels/cuda/weight_penalty_body.h"

using namespace dropnet;
using testing::same_bytes;

namespace {

// Values over ±4 with exact zeros and ties between y and t (the kinks of mae and huber).
std::vector<float> inputs(int64_t n, uint32_t seed) {
  std::vector<float> x = testing::normal_floats(static_cast<size_t>(n), seed);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 2.f * x[i];
  for (size_t i = 0; i < x.size(); i += 13) x[i] = 0.f;
  return x;
}

void cpu_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols, float grad_scale,
              float delta, float* loss, float* d) {
  switch (kind) {
    case ElementwiseLossKind::mse: cpu::mse_loss(y, t, rows, cols, grad_scale, loss, d); return;
    case ElementwiseLossKind::binary_crossentropy_logits:
      cpu::elementwise_loss(cpu::ElementwiseLoss::binary_crossentropy_logits, y, t, rows, cols, grad_scale, delta,
                            loss, d);
      return;
    case ElementwiseLossKind::mae:
      cpu::elementwise_loss(cpu::ElementwiseLoss::mae, y, t, rows, cols, grad_scale, delta, loss, d);
      return;
    case ElementwiseLossKind::huber:
      cpu::elementwise_loss(cpu::ElementwiseLoss::huber, y, t, rows, cols, grad_scale, delta, loss, d);
      return;
  }
}

}  // namespace

TEST_CASE("simulated CUDA elementwise losses (mse, mae, huber, binary cross-entropy) = CPU, bit for bit") {
  const ElementwiseLossKind kinds[] = {ElementwiseLossKind::mse, ElementwiseLossKind::binary_crossentropy_logits,
                                       ElementwiseLossKind::mae, ElementwiseLossKind::huber};
  for (int64_t rows : {int64_t{1}, int64_t{5}, int64_t{300}})
    for (int64_t cols : {int64_t{1}, int64_t{3}, int64_t{17}})
      for (ElementwiseLossKind kind : kinds) {
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(static_cast<int>(kind));
        const std::vector<float> y = inputs(rows * cols, 1);
        std::vector<float> t = inputs(rows * cols, 2);
        if (kind == ElementwiseLossKind::binary_crossentropy_logits)
          for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(i % 5) * 0.25f;  // 0, ¼, ..., 1
        else
          for (size_t i = 0; i < t.size(); i += 7) t[i] = y[i];  // d = 0: sign(0) = 0, huber's middle
        const float grad_scale = 1.f / static_cast<float>(rows), delta = 0.75f;
        for (bool grad : {true, false}) {
          std::vector<float> want_loss(static_cast<size_t>(rows)), want_d(grad ? y.size() : 0);
          cpu_loss(kind, y.data(), t.data(), rows, cols, grad_scale, delta, want_loss.data(),
                   grad ? want_d.data() : nullptr);
          for (const cuda::Grid& g : {cuda::grid_for(rows), cuda::Grid{2, 3}}) {
            std::vector<float> loss(static_cast<size_t>(rows), 5.f), d(want_d.size(), 5.f);
            const cuda::ElementwiseLossArgs a{kind,       y.data(), t.data(),    rows,
                                              cols,       grad_scale, delta,     loss.data(),
                                              grad ? d.data() : nullptr};
            testing::simulate_threads(g, true,
                                      [&](uint32_t b, uint32_t th) { cuda::elementwise_loss_thread(a, g, b, th); });
            CHECK(same_bytes(loss, want_loss));
            CHECK(same_bytes(d, want_d));
          }
        }
      }
}

TEST_CASE("simulated CUDA sample weights scale each row's loss and gradient as nn/network.cpp did") {
  const int64_t rows = 37, cols = 6;
  const std::vector<float> loss0 = inputs(rows, 3), d0 = inputs(rows * cols, 4);
  std::vector<float> w = inputs(rows, 5);
  for (float& v : w) v = std::fabs(v);
  std::vector<float> want_loss = loss0, want_d = d0;
  for (int64_t r = 0; r < rows; ++r) {  // the reference: the CPU network's loop
    want_loss[r] *= w[r];
    for (int64_t j = 0; j < cols; ++j) want_d[r * cols + j] *= w[r];
  }
  for (const cuda::Grid& g : {cuda::grid_for(rows), cuda::Grid{2, 3}})
    for (bool grad : {true, false}) {
      std::vector<float> loss = loss0, d = d0;
      testing::simulate_threads(g, true, [&](uint32_t b, uint32_t t) {
        cuda::weight_loss_rows_thread(w.data(), rows, cols, loss.data(), grad ? d.data() : nullptr, g, b, t);
      });
      CHECK(same_bytes(loss, want_loss));
      CHECK(same_bytes(d, grad ? want_d : d0));
    }
}

TEST_CASE("simulated CUDA weight penalties: gradient = CPU bit for bit, penalty within 1e-12") {
  struct Penalty {
    float l1, l2;
  };
  for (int64_t n : {int64_t{1}, int64_t{300}, int64_t{4096}, int64_t{4097}, int64_t{3 * 4096 + 17}, int64_t{70000}})
    for (const Penalty& p : {Penalty{1e-3f, 0.f}, Penalty{0.f, 2e-3f}, Penalty{5e-4f, 1e-3f}, Penalty{0.f, 0.f}})
      for (bool masked : {false, true}) {
        if (p.l1 == 0.f && p.l2 == 0.f && !masked) continue;  // neither backend launches anything
        CAPTURE(n);
        CAPTURE(p.l1);
        CAPTURE(p.l2);
        CAPTURE(masked);
        const std::vector<float> w = inputs(n, 6), g0 = inputs(n, 7);
        std::vector<float> mask(static_cast<size_t>(n));
        for (size_t i = 0; i < mask.size(); ++i) mask[i] = i % 3 == 1 ? 0.f : 1.f;
        const int64_t chunks = cpu::penalty_blocks(n);
        std::vector<float> want_g = g0;
        std::vector<double> cpu_sums(static_cast<size_t>(chunks));
        const double want = cpu::weight_penalty_grad(n, w.data(), want_g.data(), masked ? mask.data() : nullptr, p.l1,
                                                     p.l2, cpu_sums.data());
        for (const cuda::Grid& grid : {cuda::weight_penalty_grid(n), cuda::Grid{2, 4}}) {
          std::vector<float> g = g0;
          std::vector<double> sums(static_cast<size_t>(chunks + 1), std::nan(""));
          const cuda::WeightPenaltyArgs a =
              cuda::weight_penalty_args(n, w.data(), g.data(), masked ? mask.data() : nullptr, p.l1, p.l2, sums.data());
          testing::simulate_blocks(grid, true, [&](testing::HostBlock& blk, double* a1, double* a2) {
            cuda::weight_penalty_block(blk, a, a1, a2);
          });
          testing::simulate_threads(cuda::Grid{1, 1}, false, [&](uint32_t b, uint32_t t) {
            cuda::penalty_total_thread(sums.data(), chunks, b, t);
          });
          CHECK(same_bytes(g, want_g));
          CHECK(std::fabs(sums[static_cast<size_t>(chunks)] - want) <= 1e-12 * std::fabs(want));
          for (int64_t c = 0; c < chunks; ++c)  // each chunk's own sum, not just the total
            CHECK(std::fabs(sums[static_cast<size_t>(c)] - cpu_sums[static_cast<size_t>(c)]) <=
                  1e-12 * std::fabs(cpu_sums[static_cast<size_t>(c)]));
        }
      }
}

TEST_CASE("simulated CUDA max-norm ~ CPU: the same rows scaled, by the same float scale up to one rounding") {
  struct Shape {
    int64_t rows, cols;
  };
  for (const Shape& s : {Shape{1, 1}, Shape{3, 5}, Shape{48, 300}, Shape{7, 1000}, Shape{300, 9}})
    for (float c : {0.5f, 3.f, 1e3f}) {
      CAPTURE(s.rows);
      CAPTURE(s.cols);
      CAPTURE(c);
      std::vector<float> w0 = inputs(s.rows * s.cols, 8);
      for (int64_t j = 0; j < s.cols; ++j) w0[j] *= 1e-3f;  // row 0 small: left alone unless c is tiny
      std::vector<float> want = w0;
      cpu::max_norm_rows(want.data(), s.rows, s.cols, c);
      for (const cuda::Grid& g : {cuda::max_norm_grid(s.rows), cuda::Grid{2, 4}}) {
        std::vector<float> w = w0;
        const cuda::MaxNormArgs a{w.data(), s.rows, s.cols, c};
        testing::simulate_blocks(g, true,
                                 [&](testing::HostBlock& blk, double* a1, double*) { cuda::max_norm_block(blk, a, a1); });
        testing::check_close(w, want, 0.0, std::ldexp(1.0, -23));
        int64_t scaled = 0, want_scaled = 0;  // which rows moved: the same ones
        for (int64_t r = 0; r < s.rows; ++r) {
          const size_t o = static_cast<size_t>(r * s.cols);
          scaled += std::memcmp(w.data() + o, w0.data() + o, sizeof(float) * static_cast<size_t>(s.cols)) != 0;
          want_scaled += std::memcmp(want.data() + o, w0.data() + o, sizeof(float) * static_cast<size_t>(s.cols)) != 0;
        }
        CHECK(scaled == want_scaled);
      }
    }
}

// The CUDA layer kernels without a GPU (batch norm, pooling, softmax cross-entropy, the bias +
// activation epilogue): their block programs and per-thread bodies run on the host over the grid
// the .cu launch would use and over a tiny one (2 blocks of 4 threads, so threads stride over
// many items and every level of the reduction tree is short), forwards and with threads and blocks
// in reverse order, and are compared with the CPU kernels of kernels/cpu/: bit for bit where the
// device runs the CPU's own order (the reversed run must give the same bytes: one writer per
// output), within the tolerance of docs/design.md, "Device kernels" where it sums in another
// order. This proves the bodies and the launch geometry, not the GPU: the .cu launches have never
// run on a device.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check_close.h"
#include "cuda_sim.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/activation.h"
#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/pooling.h"
#include "dropnet/kernels/cpu/softmax_xent.h"
#include "dropnet/kernels/cuda/activation_body.h"
#include "dropnet/kernels/cuda/batchnorm_body.h"
#include "dropnet/kernels/cuda/pooling_body.h"
#include "dropnet/kernels/cuda/softmax_xent_body.h"
#include "dropnet/kernels/cuda/training_batch_body.h"

using namespace dropnet;
using testing::same_bytes;

namespace {

// The grids of a block-program launch: the .cu's own and the tiny one.
std::vector<cuda::Grid> block_grids(const cuda::Grid& launch) { return {launch, cuda::Grid{2, 4}}; }

std::vector<float> values(int64_t n, int salt) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37 + salt * 11) % 101) * 0.173f - 8.5f + 0.01f * salt;
  return x;
}

// Batch norm sums in double on both devices, in another order on the GPU: the float results
// differ by a rounding or two (docs/design.md, "Device kernels").
constexpr double kBnTol = 1e-5;

struct BnCase {
  int64_t N, C, HW;
};
const BnCase kBnCases[] = {{2, 1, 1},  {3, 5, 1},  {7, 3, 1},   {64, 33, 1},  {300, 2, 1},  {1, 2, 2},
                           {2, 3, 5},  {4, 2, 49}, {3, 4, 300}, {5, 3, 257},  {2, 260, 3}, {9, 2, 1}};

}  // namespace

TEST_CASE("simulated CUDA batch norm training forward ~ CPU (values, saved and running statistics)") {
  for (const BnCase& k : kBnCases)
    for (bool relu : {false, true})
      for (bool affine : {false, true}) {
        CAPTURE(k.N);
        CAPTURE(k.C);
        CAPTURE(k.HW);
        CAPTURE(relu);
        const int64_t n = k.N * k.C * k.HW;
        const std::vector<float> x = values(n, 1), gamma = values(k.C, 2), beta = values(k.C, 3);
        const float* g = affine ? gamma.data() : nullptr;
        const float* b = affine ? beta.data() : nullptr;
        std::vector<float> want(n), want_mean(k.C), want_invstd(k.C), want_rm = values(k.C, 4), want_rv(k.C, 0.7f);
        cpu::batchnorm_forward_training(x.data(), k.N, k.C, k.HW, g, b, 1e-5f, 0.1f, want_rm.data(), want_rv.data(),
                                        relu, want.data(), want_mean.data(), want_invstd.data());
        std::vector<float> first_y;
        for (const cuda::Grid& grid : block_grids(cuda::batchnorm_grid(k.C)))
          for (bool reversed : {false, true}) {
            std::vector<float> y(n, -7.f), mean(k.C, -7.f), invstd(k.C, -7.f), rm = values(k.C, 4), rv(k.C, 0.7f);
            const cuda::BatchNormForwardArgs a{x.data(), {k.N, k.C, k.HW}, g, b, 1e-5f, 0.1f, rm.data(), rv.data(),
                                               relu, y.data(), mean.data(), invstd.data()};
            testing::simulate_blocks(grid, reversed, [&](testing::HostBlock& blk, double* a1, double* a2) {
              cuda::batchnorm_forward_training_block(blk, a, a1, a2);
            });
            testing::check_close(y, want, kBnTol, kBnTol);
            testing::check_close(mean, want_mean, kBnTol, kBnTol);
            testing::check_close(invstd, want_invstd, kBnTol, kBnTol);
            testing::check_close(rm, want_rm, kBnTol, kBnTol);
            testing::check_close(rv, want_rv, kBnTol, kBnTol);
            if (reversed) CHECK(same_bytes(y, first_y));  // the same grid in reverse: the same bits
            first_y = y;
          }
      }
}

TEST_CASE("simulated CUDA batch norm inference forward = CPU, bit for bit") {
  for (const BnCase& k : kBnCases)
    for (bool relu : {false, true}) {
      const int64_t n = k.N * k.C * k.HW;
      const std::vector<float> x = values(n, 5), gamma = values(k.C, 6), beta = values(k.C, 7), rm = values(k.C, 8);
      std::vector<float> rv = values(k.C, 9);
      for (float& v : rv) v = std::fabs(v) + 0.05f;
      std::vector<float> want(n), want_invstd(k.C);
      cpu::batchnorm_forward_inference(x.data(), k.N, k.C, k.HW, gamma.data(), beta.data(), rm.data(), rv.data(), 1e-3f,
                                       relu, want.data(), want_invstd.data());
      for (const cuda::Grid& grid : block_grids(cuda::batchnorm_grid(k.C)))
        for (bool reversed : {false, true}) {
          std::vector<float> y(n, 3.f), invstd(k.C, 3.f);
          const cuda::BatchNormInferenceArgs a{x.data(), {k.N, k.C, k.HW}, gamma.data(), beta.data(), rm.data(),
                                               rv.data(), 1e-3f, relu, y.data(), invstd.data()};
          testing::simulate_blocks(grid, reversed, [&](testing::HostBlock& blk, double*, double*) {
            cuda::batchnorm_forward_inference_block(blk, a);
          });
          CHECK(same_bytes(y, want));
          CHECK(same_bytes(invstd, want_invstd));
        }
    }
}

TEST_CASE("simulated CUDA batch norm backward ~ CPU (dx, accumulated dgamma and dbeta)") {
  for (const BnCase& k : kBnCases)
    for (bool relu : {false, true})
      for (bool training : {true, false}) {
        CAPTURE(k.N);
        CAPTURE(k.C);
        CAPTURE(k.HW);
        CAPTURE(relu);
        CAPTURE(training);
        const int64_t n = k.N * k.C * k.HW;
        const std::vector<float> x = values(n, 10), dy = values(n, 11), gamma = values(k.C, 12);
        // Statistics and the fused ReLU's output from a CPU forward, as the layer would have them.
        std::vector<float> y(n), mean(k.C), invstd(k.C);
        cpu::batchnorm_forward_training(x.data(), k.N, k.C, k.HW, gamma.data(), nullptr, 1e-5f, 0.1f, nullptr, nullptr,
                                        true, y.data(), mean.data(), invstd.data());
        const float* y_relu = relu ? y.data() : nullptr;
        std::vector<float> want(n), want_dg = values(k.C, 13), want_db = values(k.C, 14);
        cpu::batchnorm_backward(dy.data(), x.data(), y_relu, k.N, k.C, k.HW, gamma.data(), mean.data(), invstd.data(),
                                training, want.data(), want_dg.data(), want_db.data());
        std::vector<float> first_dx;
        for (const cuda::Grid& grid : block_grids(cuda::batchnorm_grid(k.C)))
          for (bool reversed : {false, true}) {
            std::vector<float> dx(n, 5.f), dg = values(k.C, 13), db = values(k.C, 14);
            const cuda::BatchNormBackwardArgs a{dy.data(), x.data(), y_relu, {k.N, k.C, k.HW}, gamma.data(),
                                                mean.data(), invstd.data(), training, dx.data(), dg.data(), db.data()};
            testing::simulate_blocks(grid, reversed, [&](testing::HostBlock& blk, double* a1, double* a2) {
              cuda::batchnorm_backward_block(blk, a, a1, a2);
            });
            testing::check_close(dx, want, kBnTol, kBnTol);
            testing::check_close(dg, want_dg, kBnTol, kBnTol);
            testing::check_close(db, want_db, kBnTol, kBnTol);
            if (reversed) CHECK(same_bytes(dx, first_dx));
            first_dx = dx;
          }
      }
}

namespace {

PoolGeometry pool_geometry(int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  PoolGeometry g{H, W, kh, kw, sh, sw, ph, pw, 0, 0};
  g.OH = (H + 2 * ph - kh) / sh + 1;
  g.OW = (W + 2 * pw - kw) / sw + 1;
  return g;
}

// The geometries of kernels/cpu/pooling.h: the 2×2 fast path (even, odd, fewer than 4 windows a
// row), overlapping and padded windows, unequal kernels, strides and paddings.
std::vector<PoolGeometry> pool_geometries() {
  return {pool_geometry(8, 8, 2, 2, 2, 2, 0, 0), pool_geometry(7, 9, 2, 2, 2, 2, 0, 0),
          pool_geometry(3, 5, 2, 2, 2, 2, 0, 0), pool_geometry(7, 7, 3, 3, 2, 2, 1, 1),
          pool_geometry(5, 6, 3, 3, 1, 1, 1, 1), pool_geometry(6, 5, 3, 1, 2, 1, 1, 0),
          pool_geometry(11, 13, 5, 5, 3, 3, 2, 2), pool_geometry(4, 6, 2, 3, 1, 2, 1, 1),
          pool_geometry(1, 1, 1, 1, 1, 1, 0, 0)};
}

// Few distinct values (ties in most windows), negatives, and a NaN and an infinity now and then.
std::vector<float> pool_inputs(int64_t n, int salt) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7 + salt) % 5) * 0.75f - 1.5f;
  for (int64_t i = 13; i < n; i += 97) x[i] = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 29; i < n; i += 89) x[i] = -std::numeric_limits<float>::infinity();
  return x;
}

}  // namespace

TEST_CASE("simulated CUDA max / average pooling forward and backward = CPU, bit for bit") {
  for (const PoolGeometry& g : pool_geometries())
    for (int64_t planes : {int64_t{1}, int64_t{3}, int64_t{7}}) {
      CAPTURE(g.H);
      CAPTURE(g.W);
      CAPTURE(g.kh);
      CAPTURE(g.stride_h);
      CAPTURE(g.pad_h);
      const int64_t in = planes * g.H * g.W, out = planes * g.OH * g.OW;
      const std::vector<float> x = pool_inputs(in, 1), dy = values(out, 2);
      std::vector<float> want_y(out), want_dx(in);
      std::vector<int32_t> want_idx(out);
      cpu::max_pool2d_forward(x.data(), planes, g, want_y.data(), want_idx.data());
      cpu::max_pool2d_backward(dy.data(), want_idx.data(), planes, g, want_dx.data());
      for (const cuda::Grid& grid : {cuda::grid_for(out), cuda::Grid{2, 3}})
        for (bool reversed : {false, true}) {
          std::vector<float> y(out, 4.f);
          std::vector<int32_t> idx(out, -1);
          const cuda::PoolArgs fwd{cuda::PoolKind::max, g, planes, true, x.data(), nullptr, y.data(), idx.data()};
          testing::simulate_threads(grid, reversed, [&](uint32_t b, uint32_t t) { cuda::pool_forward_thread(fwd, grid, b, t); });
          CHECK(same_bytes(y, want_y));
          CHECK(idx == want_idx);
        }
      for (const cuda::Grid& grid : {cuda::grid_for(in), cuda::Grid{2, 3}}) {
        std::vector<float> dx(in, 4.f);
        const cuda::PoolArgs back{cuda::PoolKind::max, g, planes, true, dy.data(), want_idx.data(), dx.data(), nullptr};
        testing::simulate_threads(grid, true, [&](uint32_t b, uint32_t t) { cuda::pool_backward_thread(back, grid, b, t); });
        CHECK(same_bytes(dx, want_dx));
      }
      for (bool include_pad : {true, false}) {
        std::vector<float> want_avg(out), want_avg_dx(in);
        cpu::avg_pool2d_forward(x.data(), planes, g, include_pad, want_avg.data());
        cpu::avg_pool2d_backward(dy.data(), planes, g, include_pad, want_avg_dx.data());
        for (const cuda::Grid& grid : {cuda::grid_for(in), cuda::Grid{2, 3}}) {
          std::vector<float> y(out, 4.f), dx(in, 4.f);
          const cuda::PoolArgs fwd{cuda::PoolKind::avg, g, planes, include_pad, x.data(), nullptr, y.data(), nullptr};
          const cuda::PoolArgs back{cuda::PoolKind::avg, g, planes, include_pad, dy.data(), nullptr, dx.data(), nullptr};
          testing::simulate_threads(grid, true, [&](uint32_t b, uint32_t t) {
            cuda::pool_forward_thread(fwd, grid, b, t);
            cuda::pool_backward_thread(back, grid, b, t);
          });
          CHECK(same_bytes(y, want_avg));
          CHECK(same_bytes(dx, want_avg_dx));
        }
      }
    }
}

TEST_CASE("simulated CUDA max-pool backward: tied and overlapping windows sum like the CPU's scatter") {
  // 3×3 windows, stride 1, on a constant plane: every window's argmax is its first cell, so some
  // cells collect several windows' gradients; the sum order must be the CPU's (ascending output).
  const PoolGeometry g = pool_geometry(6, 7, 3, 3, 1, 1, 1, 1);
  const std::vector<float> x(static_cast<size_t>(g.H * g.W), 2.f);
  const std::vector<float> dy = values(g.OH * g.OW, 3);
  std::vector<float> y(dy.size()), want(x.size()), dx(x.size(), 1.f);
  std::vector<int32_t> idx(dy.size());
  cpu::max_pool2d_forward(x.data(), 1, g, y.data(), idx.data());
  cpu::max_pool2d_backward(dy.data(), idx.data(), 1, g, want.data());
  int64_t shared_cells = 0;
  for (size_t i = 0; i < want.size(); ++i) shared_cells += std::count(idx.begin(), idx.end(), static_cast<int32_t>(i)) > 1;
  CHECK(shared_cells > 0);
  const cuda::Grid grid = cuda::grid_for(g.H * g.W);
  const cuda::PoolArgs back{cuda::PoolKind::max, g, 1, true, dy.data(), idx.data(), dx.data(), nullptr};
  testing::simulate_threads(grid, false, [&](uint32_t b, uint32_t t) { cuda::pool_backward_thread(back, grid, b, t); });
  CHECK(same_bytes(dx, want));
}

TEST_CASE("simulated CUDA global average pooling = CPU, bit for bit") {
  for (int64_t planes : {int64_t{1}, int64_t{5}, int64_t{300}})
    for (int64_t hw : {int64_t{1}, int64_t{7}, int64_t{300}}) {
      const std::vector<float> x = values(planes * hw, 4), dy = values(planes, 5);
      std::vector<float> want(planes), want_dx(planes * hw);
      cpu::global_avg_pool2d_forward(x.data(), planes, hw, want.data());
      cpu::global_avg_pool2d_backward(dy.data(), planes, hw, want_dx.data());
      for (const cuda::Grid& grid : {cuda::grid_for(planes * hw), cuda::Grid{2, 3}}) {
        std::vector<float> y(planes, 9.f), dx(planes * hw, 9.f);
        testing::simulate_threads(grid, true, [&](uint32_t b, uint32_t t) {
          cuda::global_avg_forward_thread(x.data(), planes, hw, y.data(), grid, b, t);
          cuda::global_avg_backward_thread(dy.data(), planes, hw, dx.data(), grid, b, t);
        });
        CHECK(same_bytes(y, want));
        CHECK(same_bytes(dx, want_dx));
      }
    }
}

TEST_CASE("simulated CUDA softmax cross-entropy (sparse and dense) = CPU, bit for bit") {
  for (int64_t rows : {int64_t{1}, int64_t{3}, int64_t{257}, int64_t{1000}})
    for (int64_t classes : {int64_t{1}, int64_t{2}, int64_t{10}, int64_t{1000}}) {
      if (rows * classes > 300000) continue;
      CAPTURE(rows);
      CAPTURE(classes);
      std::vector<float> z = values(rows * classes, 6);
      for (size_t i = 0; i < z.size(); i += 17) z[i] *= 10.f;  // logits up to ±85: the max shift matters
      std::vector<int64_t> labels(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) labels[r] = (r * 7 + 3) % classes;
      std::vector<float> targets(z.size());
      for (int64_t r = 0; r < rows; ++r)  // probabilities with a zero and unequal mass
        for (int64_t j = 0; j < classes; ++j) targets[r * classes + j] = static_cast<float>((r + j) % 3) / (classes * 2.f);
      const float grad_scale = 1.f / static_cast<float>(rows);
      for (bool sparse : {true, false})
        for (bool grad : {true, false}) {
          std::vector<float> want_loss(rows), want_grad(grad ? z.size() : 0);
          if (sparse)
            cpu::softmax_xent_sparse(z.data(), labels.data(), rows, classes, grad_scale, want_loss.data(),
                                     grad ? want_grad.data() : nullptr);
          else
            cpu::softmax_xent_dense(z.data(), targets.data(), rows, classes, grad_scale, want_loss.data(),
                                    grad ? want_grad.data() : nullptr);
          for (const cuda::Grid& g : {cuda::grid_for(rows), cuda::Grid{2, 3}}) {
            std::vector<float> loss(rows, 5.f), d(want_grad.size(), 5.f);
            const cuda::SoftmaxXentArgs a{z.data(), sparse ? labels.data() : nullptr, sparse ? nullptr : targets.data(),
                                          rows, classes, grad_scale, loss.data(), grad ? d.data() : nullptr};
            testing::simulate_threads(g, true, [&](uint32_t b, uint32_t t) { cuda::softmax_xent_thread(a, g, b, t); });
            CHECK(same_bytes(loss, want_loss));
            CHECK(same_bytes(d, want_grad));
          }
        }
    }
}

TEST_CASE("simulated CUDA gather_rows = the rows picked by hand; batch_metrics = the row-order loss sum and a counted argmax") {
  // gather_rows: float rows (odd width) and int64 rows (two words each), by index and in sequence.
  const int64_t n = 37, width = 13;
  std::vector<float> x = values(n * width, 11);
  std::vector<int64_t> labels(n);
  for (int64_t r = 0; r < n; ++r) labels[r] = r * 1000003 - 5;  // both words of each int64 differ
  const std::vector<int64_t> index = {36, 0, 5, 5, 17, 35, 1, 2, 30, 9, 11};
  const int64_t rows = static_cast<int64_t>(index.size());
  for (const cuda::Grid& g : {cuda::grid_for(rows * width), cuda::Grid{2, 3}})
    for (bool by_index : {true, false}) {
      const int64_t first = 20;
      std::vector<float> bx(rows * width, -1.f);
      std::vector<int64_t> bl(rows, -1);
      const cuda::GatherRowsArgs ax{reinterpret_cast<const uint32_t*>(x.data()), reinterpret_cast<uint32_t*>(bx.data()),
                                    by_index ? index.data() : nullptr, first, rows, width};
      const cuda::GatherRowsArgs al{reinterpret_cast<const uint32_t*>(labels.data()),
                                    reinterpret_cast<uint32_t*>(bl.data()), by_index ? index.data() : nullptr, first,
                                    rows, 2};
      testing::simulate_threads(g, true, [&](uint32_t b, uint32_t t) { cuda::gather_rows_thread(ax, g, b, t); });
      const cuda::Grid gl = cuda::Grid{1, 2};
      testing::simulate_threads(gl, false, [&](uint32_t b, uint32_t t) { cuda::gather_rows_thread(al, gl, b, t); });
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t src = by_index ? index[r] : first + r;
        CHECK(std::equal(bx.begin() + r * width, bx.begin() + (r + 1) * width, x.begin() + src * width));
        CHECK(bl[r] == labels[src]);
      }
    }

  // batch_metrics: 300 rows (more than a block's threads), 10 classes, ties in some rows.
  const int64_t m = 300, classes = 10;
  std::vector<float> out = values(m * classes, 12), loss = values(m, 13), onehot(m * classes, 0.f), probs(m * classes);
  std::vector<int64_t> truth(m);
  for (int64_t r = 0; r < m; ++r) {
    truth[r] = (r * 3) % classes;
    onehot[r * classes + truth[r]] = 1.f;
    if (r % 4 == 0) out[r * classes + truth[r]] = 5.f;  // a sure hit
    if (r % 8 == 0) out[r * classes + (truth[r] + 1) % classes] = 5.f;  // a tie: the first index wins
    for (int64_t j = 0; j < classes; ++j) probs[r * classes + j] = out[r * classes + j] > 0.f ? 0.75f : 0.25f;
  }
  probs[7] = 0.5f;  // the binary threshold: 0.5 is a 1
  double want_sum = 0.0;  // nn/network.cpp's order: the rows in order, in double
  for (float l : loss) want_sum += l;
  int64_t want_correct = 0, want_binary = 0;
  for (int64_t r = 0; r < m; ++r) {
    const float* o = out.data() + r * classes;
    want_correct += std::max_element(o, o + classes) - o == truth[r];
    for (int64_t j = 0; j < classes; ++j) want_binary += (o[j] > 0.f) == (probs[r * classes + j] >= 0.5f);
  }
  CHECK(want_correct > 0);
  CHECK(want_correct < m);
  struct Case {
    CorrectKind kind;
    const int64_t* labels;
    const float* dense;
    int64_t want;
  };
  for (const Case& c : {Case{CorrectKind::labels, truth.data(), nullptr, want_correct},
                        Case{CorrectKind::dense_argmax, nullptr, onehot.data(), want_correct},
                        Case{CorrectKind::binary, nullptr, probs.data(), want_binary},
                        Case{CorrectKind::none, nullptr, nullptr, -1}})
    for (bool reversed : {false, true}) {
      double sum = -1.0;
      int64_t correct = -7;
      const cuda::BatchMetricsArgs a{loss.data(), m, out.data(), classes, c.labels, c.dense, c.kind, &sum, &correct};
      testing::simulate_blocks(cuda::Grid{1, cuda::kThreadsPerBlock}, reversed,
                               [&](testing::HostBlock& blk, double* a1, double*) { cuda::batch_metrics_block(blk, a, a1); });
      CHECK(sum == want_sum);
      CHECK(correct == c.want);
    }
}

namespace {

// Pre-activations across every branch of the polynomials: both sides of tanh's 0.625 switch,
// exp's clamps at -87 and 88, zeros of both signs, a NaN.
std::vector<float> epilogue_inputs(int64_t n) {
  std::vector<float> x = values(n, 7);
  const float specials[] = {0.f, -0.f, 0.6f, -0.65f, 100.f, -100.f, 30.f, -30.f, std::numeric_limits<float>::quiet_NaN()};
  for (int64_t k = 0; k < 9 && 5 * k < n; ++k) x[5 * k] = specials[k];
  return x;
}

const cpu::ActivationKind kActivationKinds[] = {
    cpu::ActivationKind::identity, cpu::ActivationKind::relu, cpu::ActivationKind::leaky_relu,
    cpu::ActivationKind::tanh,     cpu::ActivationKind::sigmoid, cpu::ActivationKind::gelu,
    cpu::ActivationKind::selu,     cpu::ActivationKind::elu};

const cpu::Activation kEpilogueActivations[] = {cpu::Activation::identity, cpu::Activation::relu,
                                                cpu::Activation::leaky_relu, cpu::Activation::tanh,
                                                cpu::Activation::sigmoid, cpu::Activation::gelu};

}  // namespace

TEST_CASE("simulated CUDA bias + activation + dropout epilogue = CPU apply_epilogue and epilogue_pass, bit for bit") {
  struct Block {
    int64_t M, N, ldc, row0, rows;
  };
  const Block blocks[] = {{1, 1, 1, 0, 1},   {3, 5, 5, 0, 3},     {7, 64, 64, 0, 7},  {5, 65, 70, 0, 5},
                          {9, 100, 103, 2, 5}, {40, 33, 33, 7, 31}, {2, 3, 8, 1, 1}};
  for (const Block& k : blocks)
    for (cpu::Activation act : kEpilogueActivations)
      for (int variant = 0; variant < 4; ++variant) {
        const bool bias = variant & 1, dropout = variant & 2;
        CAPTURE(k.M);
        CAPTURE(k.N);
        CAPTURE(k.row0);
        CAPTURE(static_cast<int>(act));
        CAPTURE(variant);
        const std::vector<float> c0 = epilogue_inputs(k.M * k.ldc), b = values(k.N, 8);
        const int64_t words = (k.M * k.N + 63) / 64;
        cpu::GemmEpilogue ep;
        ep.bias = bias ? b.data() : nullptr;
        ep.activation = act;
        ep.leaky_slope = 0.03f;
        ep.dropout = dropout;
        ep.threshold = keep_threshold(0.3);
        ep.scale = static_cast<float>(1.0 / 0.7);
        ep.seed = 0x1234567890abcdefULL;
        ep.stream = 77;
        ep.index_offset = 5;
        // The CPU reference runs under flushed denormals, as the GEMM runs its epilogue.
        std::vector<float> want = c0, want_pre(static_cast<size_t>(k.M * k.N), -1.f), want_vec = c0;
        std::vector<uint64_t> want_bits(words, 0xa5a5a5a5a5a5a5a5ULL), want_vec_bits = want_bits;
        {
          DenormalsFlushed ftz;
          cpu::GemmEpilogue e = ep;
          e.pre_activation = want_pre.data();
          e.mask_bits = want_bits.data();
          cpu::apply_epilogue(e, k.row0, k.rows, k.N, want.data(), k.ldc);
          e.pre_activation = nullptr;
          e.mask_bits = want_vec_bits.data();
          cpu::epilogue_pass(e, k.row0, k.rows, k.N, want_vec.data(), k.ldc);
        }
        // The active ISA's vector epilogue: the same values. Not always the same bytes: without a
        // bias the scalar epilogue adds +0 (so z = -0 becomes +0) and the vector ones add nothing,
        // so a -0 pre-activation keeps its sign there (identity, leaky_relu, gelu). The CUDA body
        // follows the scalar reference.
        bool same_values = true;
        for (size_t i = 0; i < want.size(); ++i)
          same_values = same_values && (want_vec[i] == want[i] || (std::isnan(want_vec[i]) && std::isnan(want[i])));
        CHECK(same_values);
        CHECK(want_vec_bits == want_bits);
        const cuda::WordRange range = cuda::epilogue_words(k.row0, k.rows, k.N);
        for (const cuda::Grid& g : {cuda::grid_for(range.count), cuda::Grid{2, 3}})
          for (bool reversed : {false, true}) {
            std::vector<float> c = c0, pre(want_pre.size(), -1.f);
            std::vector<uint64_t> bits(words, 0xa5a5a5a5a5a5a5a5ULL);
            cpu::GemmEpilogue e = ep;
            e.pre_activation = pre.data();
            e.mask_bits = bits.data();
            testing::simulate_threads(g, reversed, [&](uint32_t bl, uint32_t t) {
              cuda::epilogue_thread(e, k.row0, k.rows, k.N, c.data(), k.ldc, g, bl, t);
            });
            CHECK(same_bytes(c, want));
            CHECK(same_bytes(pre, want_pre));
            CHECK(bits == want_bits);
          }
      }
}

TEST_CASE("simulated CUDA activation forward = CPU activation_forward (host C library: bit for bit)") {
  const std::vector<float> x = epilogue_inputs(4099);
  for (cpu::ActivationKind kind : kActivationKinds) {
    std::vector<float> want(x.size());
    {
      DenormalsFlushed ftz;
      cpu::activation_forward(kind, x.data(), want.data(), static_cast<int64_t>(x.size()), 0.2f);
    }
    for (const cuda::Grid& g : {cuda::grid_for(static_cast<int64_t>(x.size())), cuda::Grid{2, 3}}) {
      std::vector<float> y(x.size(), 3.f);
      testing::simulate_threads(g, true, [&](uint32_t b, uint32_t t) {
        cuda::activation_forward_thread(kind, x.data(), y.data(), static_cast<int64_t>(x.size()), 0.2f, g, b, t);
      });
      CHECK(same_bytes(y, want));
    }
  }
}

TEST_CASE("simulated CUDA activation backward and bias-gradient column sums = CPU activation_backward, bit for bit") {
  struct Shape {
    int64_t rows, cols;
  };
  for (const Shape& k : {Shape{1, 1}, Shape{3, 5}, Shape{7, 64}, Shape{33, 65}, Shape{100, 130}, Shape{0, 6}})
    for (cpu::ActivationKind kind : kActivationKinds)
      for (bool masked : {false, true})
        for (bool in_place : {false, true}) {
          CAPTURE(k.rows);
          CAPTURE(k.cols);
          CAPTURE(static_cast<int>(kind));
          CAPTURE(masked);
          const int64_t n = k.rows * k.cols, words = (n + 63) / 64;
          const std::vector<float> dy = values(n, 9), pre = epilogue_inputs(n);
          std::vector<float> y(static_cast<size_t>(n));
          {
            DenormalsFlushed ftz;
            cpu::activation_forward(kind, pre.data(), y.data(), n, 0.2f);
          }
          std::vector<uint64_t> keep(static_cast<size_t>(words));
          for (int64_t w = 0; w < words; ++w) keep[w] = philox::stream_word(3, 4, w) * 0x9e3779b97f4a7c15ULL;
          const uint64_t* bits = masked ? keep.data() : nullptr;
          const float scale = masked ? 2.5f : 1.f;
          for (int64_t e = 0; masked && e < n; ++e)  // the stored output: kept elements scaled, dropped zero
            y[e] = ((keep[e >> 6] >> (e & 63)) & 1) ? y[e] * scale : 0.f;
          std::vector<float> want(static_cast<size_t>(n)), want_bias(static_cast<size_t>(k.cols), 7.f);
          {
            DenormalsFlushed ftz;
            cpu::activation_backward(kind, k.rows, k.cols, dy.data(), y.data(), pre.data(), bits, scale, 0.2f,
                                     want.data(), want_bias.data());
          }
          for (const cuda::Grid& g : {cuda::grid_for(n), cuda::Grid{2, 3}}) {
            std::vector<float> d = in_place ? dy : std::vector<float>(static_cast<size_t>(n), 5.f);
            std::vector<float> d_bias(static_cast<size_t>(k.cols), 7.f);
            const float* dy_in = in_place ? d.data() : dy.data();
            const cuda::ActivationBackwardArgs a{kind, k.rows, k.cols, dy_in, y.data(), pre.data(), bits, scale, 0.2f,
                                                 d.data(), d_bias.data()};
            // The .cu's two launches: the elements, then the columns.
            testing::simulate_threads(g, true, [&](uint32_t b, uint32_t t) { cuda::activation_backward_thread(a, g, b, t); });
            const cuda::Grid gc = g.threads == 3 ? g : cuda::grid_for(k.cols);
            testing::simulate_threads(gc, true, [&](uint32_t b, uint32_t t) {
              cuda::bias_grad_thread(d.data(), k.rows, k.cols, d_bias.data(), gc, b, t);
            });
            CHECK(same_bytes(d, want));
            CHECK(same_bytes(d_bias, want_bias));
          }
        }
}

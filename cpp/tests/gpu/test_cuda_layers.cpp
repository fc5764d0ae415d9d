// The CUDA layer kernels (batch norm, pooling, softmax cross-entropy, the elementwise losses and
// sample weights, the weight penalties, max-norm, the epilogue and the
// activations) on a real GPU against the CPU kernels: bit for bit where the device runs the CPU's
// own operations in the CPU's order, within the tolerances of docs/design.md, "Device kernels"
// where it sums in another order or calls CUDA's expf / logf / tanhf / erff; and the same bytes
// from two runs of every reduction. Part of dropnet_gpu_tests (main: test_cuda_kernels.cpp).
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../check_close.h"
#include "device_vector.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/activation.h"
#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/kernels/cpu/elementwise_loss.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/max_norm.h"
#include "dropnet/kernels/cpu/mse_loss.h"
#include "dropnet/kernels/cpu/pooling.h"
#include "dropnet/kernels/cpu/softmax_xent.h"
#include "dropnet/kernels/cpu/weight_penalty.h"
#include "dropnet/kernels/cuda/activation.h"
#include "dropnet/kernels/cuda/batchnorm.h"
#include "dropnet/kernels/cuda/elementwise_loss.h"
#include "dropnet/kernels/cuda/max_norm.h"
#include "dropnet/kernels/cuda/pooling.h"
#include "dropnet/kernels/cuda/softmax_xent.h"
#include "dropnet/kernels/cuda/training_batch.h"
#include "dropnet/kernels/cuda/weight_penalty.h"

using namespace dropnet;
using dropnet::gpu_testing::DeviceVector;
using dropnet::gpu_testing::ok;
using dropnet::gpu_testing::same;
using dropnet::testing::check_close;

namespace {

std::vector<float> layer_values(int64_t n, int salt) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37 + salt * 11) % 101) * 0.173f - 8.5f + 0.01f * salt;
  return x;
}

constexpr double kBnTol = 1e-5;       // batch norm: double sums in another order
constexpr double kLibmTol = 4e-6;     // CUDA's expf / logf / tanhf / erff / expm1f against glibc's

}  // namespace

TEST_CASE("GPU batch norm: training forward and backward ~ CPU, inference = CPU, each run twice the same") {
  struct Case {
    int64_t N, C, HW;
  };
  cudaStream_t stream;
  ok(cudaStreamCreate(&stream), "cudaStreamCreate");
  for (const Case& k : {Case{64, 33, 1}, Case{2, 3, 5}, Case{32, 16, 196}, Case{3, 5, 257}, Case{300, 2, 1}})
    for (bool relu : {false, true}) {
      CAPTURE(k.N);
      CAPTURE(k.C);
      CAPTURE(k.HW);
      CAPTURE(relu);
      const int64_t n = k.N * k.C * k.HW;
      const std::vector<float> x = layer_values(n, 1), dy = layer_values(n, 2), gamma = layer_values(k.C, 3),
                               beta = layer_values(k.C, 4);
      std::vector<float> y(n), mean(k.C), invstd(k.C), rm(k.C, 0.1f), rv(k.C, 0.9f), dx(n), dg(k.C, 0.5f),
          db(k.C, -0.5f);
      cpu::batchnorm_forward_training(x.data(), k.N, k.C, k.HW, gamma.data(), beta.data(), 1e-5f, 0.1f, rm.data(),
                                      rv.data(), relu, y.data(), mean.data(), invstd.data());
      cpu::batchnorm_backward(dy.data(), x.data(), relu ? y.data() : nullptr, k.N, k.C, k.HW, gamma.data(),
                              mean.data(), invstd.data(), true, dx.data(), dg.data(), db.data());
      std::vector<float> first_y, first_dx;
      for (int run = 0; run < 2; ++run) {
        DeviceVector<float> d_x(x), d_dy(dy), d_gamma(gamma), d_beta(beta), d_y{std::vector<float>(n)},
            d_mean{std::vector<float>(k.C)}, d_invstd{std::vector<float>(k.C)}, d_rm{std::vector<float>(k.C, 0.1f)},
            d_rv{std::vector<float>(k.C, 0.9f)}, d_dx{std::vector<float>(n)}, d_dg{std::vector<float>(k.C, 0.5f)},
            d_db{std::vector<float>(k.C, -0.5f)};
        cuda::batchnorm_forward_training(d_x.p, k.N, k.C, k.HW, d_gamma.p, d_beta.p, 1e-5f, 0.1f, d_rm.p, d_rv.p, relu,
                                         d_y.p, d_mean.p, d_invstd.p, stream);
        cuda::batchnorm_backward(d_dy.p, d_x.p, relu ? d_y.p : nullptr, k.N, k.C, k.HW, d_gamma.p, d_mean.p,
                                 d_invstd.p, true, d_dx.p, d_dg.p, d_db.p, stream);
        const std::vector<float> gy = d_y.get(), gdx = d_dx.get();
        check_close(gy, y, kBnTol, kBnTol);
        check_close(d_mean.get(), mean, kBnTol, kBnTol);
        check_close(d_invstd.get(), invstd, kBnTol, kBnTol);
        check_close(d_rm.get(), rm, kBnTol, kBnTol);
        check_close(d_rv.get(), rv, kBnTol, kBnTol);
        check_close(gdx, dx, kBnTol, kBnTol);
        check_close(d_dg.get(), dg, kBnTol, kBnTol);
        check_close(d_db.get(), db, kBnTol, kBnTol);
        if (run == 1) {
          CHECK(same(gy, first_y));
          CHECK(same(gdx, first_dx));
        }
        first_y = gy;
        first_dx = gdx;
      }
      // Inference from the CPU's running statistics: the CPU's bits.
      std::vector<float> yi(n), is(k.C);
      cpu::batchnorm_forward_inference(x.data(), k.N, k.C, k.HW, gamma.data(), beta.data(), rm.data(), rv.data(), 1e-5f,
                                       relu, yi.data(), is.data());
      DeviceVector<float> d_x(x), d_gamma(gamma), d_beta(beta), d_rm(rm), d_rv(rv), d_y{std::vector<float>(n)},
          d_is{std::vector<float>(k.C)};
      cuda::batchnorm_forward_inference(d_x.p, k.N, k.C, k.HW, d_gamma.p, d_beta.p, d_rm.p, d_rv.p, 1e-5f, relu, d_y.p,
                                        d_is.p, stream);
      CHECK(same(d_y.get(), yi));
      CHECK(same(d_is.get(), is));
    }
  ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

TEST_CASE("GPU max / average / global average pooling, forward and backward = CPU, bit for bit") {
  const int64_t planes = 64;
  PoolGeometry geoms[] = {{28, 28, 2, 2, 2, 2, 0, 0, 14, 14}, {7, 9, 2, 2, 2, 2, 0, 0, 3, 4},
                          {7, 7, 3, 3, 2, 2, 1, 1, 4, 4},     {11, 13, 5, 5, 3, 3, 2, 2, 4, 5}};
  for (const PoolGeometry& g : geoms) {
    const int64_t in = planes * g.H * g.W, out = planes * g.OH * g.OW;
    std::vector<float> x = layer_values(in, 5);
    for (int64_t i = 0; i < in; ++i) x[i] = std::round(x[i]);  // ties
    const std::vector<float> dy = layer_values(out, 6);
    std::vector<float> y(out), dx(in), ya(out), dxa(in);
    std::vector<int32_t> idx(out);
    cpu::max_pool2d_forward(x.data(), planes, g, y.data(), idx.data());
    cpu::max_pool2d_backward(dy.data(), idx.data(), planes, g, dx.data());
    cpu::avg_pool2d_forward(x.data(), planes, g, false, ya.data());
    cpu::avg_pool2d_backward(dy.data(), planes, g, false, dxa.data());
    DeviceVector<float> d_x(x), d_dy(dy), d_y{std::vector<float>(out)}, d_dx{std::vector<float>(in)};
    DeviceVector<int32_t> d_idx{std::vector<int32_t>(out)};
    cuda::max_pool2d_forward(d_x.p, planes, g, d_y.p, d_idx.p);
    CHECK(same(d_y.get(), y));
    CHECK(d_idx.get() == idx);
    cuda::max_pool2d_backward(d_dy.p, d_idx.p, planes, g, d_dx.p);
    CHECK(same(d_dx.get(), dx));
    cuda::avg_pool2d_forward(d_x.p, planes, g, false, d_y.p);
    CHECK(same(d_y.get(), ya));
    cuda::avg_pool2d_backward(d_dy.p, planes, g, false, d_dx.p);
    CHECK(same(d_dx.get(), dxa));
  }
  const int64_t hw = 49;
  const std::vector<float> x = layer_values(planes * hw, 7), dy = layer_values(planes, 8);
  std::vector<float> y(planes), dx(planes * hw);
  cpu::global_avg_pool2d_forward(x.data(), planes, hw, y.data());
  cpu::global_avg_pool2d_backward(dy.data(), planes, hw, dx.data());
  DeviceVector<float> d_x(x), d_dy(dy), d_y{std::vector<float>(planes)}, d_dx{std::vector<float>(planes * hw)};
  cuda::global_avg_pool2d_forward(d_x.p, planes, hw, d_y.p);
  cuda::global_avg_pool2d_backward(d_dy.p, planes, hw, d_dx.p);
  CHECK(same(d_y.get(), y));
  CHECK(same(d_dx.get(), dx));
}

TEST_CASE("GPU softmax cross-entropy ~ CPU; batch_metrics sums its losses in row order") {
  for (int64_t classes : {int64_t{10}, int64_t{1000}}) {
    const int64_t rows = 513;
    std::vector<float> z = layer_values(rows * classes, 9);
    std::vector<int64_t> labels(rows);
    for (int64_t r = 0; r < rows; ++r) labels[r] = (r * 7) % classes;
    std::vector<float> loss(rows), d(rows * classes);
    const float scale = 1.f / static_cast<float>(rows);
    cpu::softmax_xent_sparse(z.data(), labels.data(), rows, classes, scale, loss.data(), d.data());
    DeviceVector<float> d_z(z), d_loss{std::vector<float>(rows)}, d_d{std::vector<float>(rows * classes)};
    DeviceVector<int64_t> d_labels(labels);
    DeviceVector<double> d_sum{std::vector<double>(1)};
    DeviceVector<int64_t> d_correct{std::vector<int64_t>(1)};
    cuda::softmax_xent_sparse(d_z.p, d_labels.p, rows, classes, scale, d_loss.p, d_d.p);
    cuda::batch_metrics(d_loss.p, rows, d_z.p, classes, d_labels.p, nullptr, CorrectKind::labels, d_sum.p,
                        d_correct.p);
    const std::vector<float> gl = d_loss.get();
    check_close(gl, loss, kLibmTol, kLibmTol);
    check_close(d_d.get(), d, kLibmTol * scale, kLibmTol);
    double want_sum = 0.0;
    int64_t want_correct = 0;
    for (float l : gl) want_sum += l;
    for (int64_t r = 0; r < rows; ++r) {
      const float* zr = z.data() + r * classes;
      want_correct += std::max_element(zr, zr + classes) - zr == labels[r];
    }
    CHECK(d_sum.get()[0] == want_sum);
    CHECK(d_correct.get()[0] == want_correct);
    // Dense targets (one-hot of the labels): the same losses.
    std::vector<float> t(rows * classes, 0.f);
    for (int64_t r = 0; r < rows; ++r) t[r * classes + labels[r]] = 1.f;
    DeviceVector<float> d_t(t);
    cuda::softmax_xent_dense(d_z.p, d_t.p, rows, classes, scale, d_loss.p, nullptr);
    check_close(d_loss.get(), loss, kLibmTol, kLibmTol);
  }
}

TEST_CASE("GPU bias + activation + dropout epilogue = CPU apply_epilogue, bit for bit; activations") {
  const int64_t M = 77, N = 130;
  std::vector<float> c0 = layer_values(M * N, 10);
  c0[3] = 100.f;
  c0[4] = -100.f;
  const std::vector<float> bias = layer_values(N, 11);
  for (cpu::Activation act : {cpu::Activation::identity, cpu::Activation::relu, cpu::Activation::leaky_relu,
                              cpu::Activation::tanh, cpu::Activation::sigmoid, cpu::Activation::gelu}) {
    CAPTURE(static_cast<int>(act));
    const int64_t words = (M * N + 63) / 64;
    std::vector<float> want = c0, want_pre(M * N);
    std::vector<uint64_t> want_bits(words);
    DeviceVector<float> d_c(c0), d_bias(bias), d_pre{std::vector<float>(M * N)};
    DeviceVector<uint64_t> d_bits{std::vector<uint64_t>(words)};
    cpu::GemmEpilogue ep;
    ep.activation = act;
    ep.dropout = true;
    ep.threshold = keep_threshold(0.25);
    ep.scale = static_cast<float>(1.0 / 0.75);
    ep.seed = 42;
    ep.stream = 7;
    cpu::GemmEpilogue host = ep, dev = ep;
    host.bias = bias.data();
    host.pre_activation = want_pre.data();
    host.mask_bits = want_bits.data();
    {
      DenormalsFlushed ftz;
      cpu::apply_epilogue(host, 0, M, N, want.data(), N);
    }
    dev.bias = d_bias.p;
    dev.pre_activation = d_pre.p;
    dev.mask_bits = d_bits.p;
    cuda::apply_epilogue(dev, 0, M, N, d_c.p, N);
    CHECK(same(d_c.get(), want));
    CHECK(same(d_pre.get(), want_pre));
    CHECK(d_bits.get() == want_bits);
  }
  const cpu::ActivationKind kinds[] = {cpu::ActivationKind::identity, cpu::ActivationKind::relu,
                                       cpu::ActivationKind::leaky_relu, cpu::ActivationKind::tanh,
                                       cpu::ActivationKind::sigmoid, cpu::ActivationKind::gelu,
                                       cpu::ActivationKind::selu, cpu::ActivationKind::elu};
  const std::vector<float> pre = layer_values(M * N, 12), dy = layer_values(M * N, 13);
  const int64_t words = (M * N + 63) / 64;
  std::vector<uint64_t> keep(words);
  for (int64_t w = 0; w < words; ++w) keep[w] = philox::stream_word(1, 2, w) * 0x9e3779b97f4a7c15ULL;
  for (cpu::ActivationKind kind : kinds) {
    CAPTURE(static_cast<int>(kind));
    std::vector<float> y(M * N), d(M * N), d_bias(N);
    {
      DenormalsFlushed ftz;
      cpu::activation_forward(kind, pre.data(), y.data(), M * N, 0.2f);
    }
    DeviceVector<float> d_pre(pre), d_y{std::vector<float>(M * N)};
    cuda::activation_forward(kind, d_pre.p, d_y.p, M * N, 0.2f);
    const std::vector<float> gy = d_y.get();
    const bool arithmetic = kind == cpu::ActivationKind::identity || kind == cpu::ActivationKind::relu ||
                            kind == cpu::ActivationKind::leaky_relu;
    if (arithmetic) CHECK(same(gy, y));
    else check_close(gy, y, kLibmTol, kLibmTol);
    {
      DenormalsFlushed ftz;
      cpu::activation_backward(kind, M, N, dy.data(), y.data(), pre.data(), keep.data(), 1.25f, 0.2f, d.data(),
                               d_bias.data());
    }
    DeviceVector<float> d_dy(dy), d_yc(y), d_d{std::vector<float>(M * N)}, d_db{std::vector<float>(N)};
    DeviceVector<uint64_t> d_keep(keep);
    cuda::activation_backward(kind, M, N, d_dy.p, d_yc.p, d_pre.p, d_keep.p, 1.25f, 0.2f, d_d.p, d_db.p);
    if (kind != cpu::ActivationKind::gelu) {
      CHECK(same(d_d.get(), d));
      CHECK(same(d_db.get(), d_bias));
    } else {
      check_close(d_d.get(), d, kLibmTol, kLibmTol);
      check_close(d_db.get(), d_bias, 1e-4, 1e-4);  // 77 rows of the gelu tolerance
    }
  }
}

TEST_CASE("GPU elementwise losses and sample weights ~ CPU; penalties and max-norm ~ CPU, each run twice the same") {
  const int64_t rows = 513, cols = 7;
  const std::vector<float> y = layer_values(rows * cols, 12);
  std::vector<float> t = layer_values(rows * cols, 13), w = layer_values(rows, 14);
  for (float& v : w) v = std::fabs(v) * 0.1f;
  const float scale = 1.f / static_cast<float>(rows);
  DeviceVector<float> d_y(y), d_w(w), d_loss{std::vector<float>(rows)}, d_d{std::vector<float>(rows * cols)};
  for (ElementwiseLossKind kind : {ElementwiseLossKind::mse, ElementwiseLossKind::binary_crossentropy_logits,
                                   ElementwiseLossKind::mae, ElementwiseLossKind::huber}) {
    CAPTURE(static_cast<int>(kind));
    std::vector<float> tk = t;
    if (kind == ElementwiseLossKind::binary_crossentropy_logits)
      for (size_t i = 0; i < tk.size(); ++i) tk[i] = static_cast<float>(i % 5) * 0.25f;
    std::vector<float> loss(rows), d(rows * cols);
    if (kind == ElementwiseLossKind::mse) cpu::mse_loss(y.data(), tk.data(), rows, cols, scale, loss.data(), d.data());
    else
      cpu::elementwise_loss(kind == ElementwiseLossKind::mae     ? cpu::ElementwiseLoss::mae
                            : kind == ElementwiseLossKind::huber ? cpu::ElementwiseLoss::huber
                                                                 : cpu::ElementwiseLoss::binary_crossentropy_logits,
                            y.data(), tk.data(), rows, cols, scale, 1.f, loss.data(), d.data());
    for (int64_t r = 0; r < rows; ++r) {  // the sample weights, as nn/network.cpp applied them
      loss[r] *= w[r];
      for (int64_t j = 0; j < cols; ++j) d[r * cols + j] *= w[r];
    }
    DeviceVector<float> d_t(tk);
    cuda::elementwise_loss(kind, d_y.p, d_t.p, rows, cols, scale, 1.f, d_loss.p, d_d.p);
    cuda::weight_loss_rows(d_w.p, rows, cols, d_loss.p, d_d.p);
    check_close(d_loss.get(), loss, kLibmTol, kLibmTol);
    check_close(d_d.get(), d, kLibmTol * scale, kLibmTol);
  }

  for (int64_t n : {int64_t{300}, int64_t{3 * 4096 + 17}, int64_t{1} << 20}) {
    CAPTURE(n);
    const std::vector<float> wv = layer_values(n, 15), g0 = layer_values(n, 16);
    std::vector<float> g = g0;
    std::vector<double> sums(static_cast<size_t>(cpu::penalty_blocks(n)));
    const double want = cpu::weight_penalty_grad(n, wv.data(), g.data(), nullptr, 1e-3f, 2e-3f, sums.data());
    std::vector<double> first;
    for (int run = 0; run < 2; ++run) {
      DeviceVector<float> d_wv(wv), d_g(g0);
      DeviceVector<double> d_sums{std::vector<double>(sums.size() + 1)};
      cuda::weight_penalty_grad(n, d_wv.p, d_g.p, nullptr, 1e-3f, 2e-3f, d_sums.p);
      CHECK(same(d_g.get(), g));
      const std::vector<double> got = d_sums.get();
      CHECK(std::fabs(got.back() - want) <= 1e-12 * std::fabs(want));
      if (run == 0) first = got;
      else CHECK(got == first);
    }
  }

  for (int64_t cols_w : {int64_t{9}, int64_t{300}, int64_t{5000}}) {
    CAPTURE(cols_w);
    const int64_t wrows = 77;
    const std::vector<float> w0 = layer_values(wrows * cols_w, 17);
    std::vector<float> want = w0;
    cpu::max_norm_rows(want.data(), wrows, cols_w, 3.f);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      DeviceVector<float> d_w0(w0);
      cuda::max_norm_rows(d_w0.p, wrows, cols_w, 3.f);
      const std::vector<float> got = d_w0.get();
      check_close(got, want, 0.0, std::ldexp(1.0, -23));
      if (run == 0) first = got;
      else CHECK(same(got, first));
    }
  }
}

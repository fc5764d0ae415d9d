// One network, two devices, without a GPU: the same Network trained on the CPU and on the
// simulated device (sim_device.h: the CUDA kernels' per-thread bodies over simulated grids, in
// memory the host cannot touch outside a backend call), from the same seed and the same batches.
// Dropout masks must agree bit for bit; parameters, optimizer state and running statistics within
// the tolerance of docs/design.md, "Devices: one network, two backends".
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "device_network_check.h"
#include "dropnet/core/error.h"
#include "dropnet/nn/network.h"
#include "sim_device.h"

using namespace dropnet;
using namespace dropnet::device_testing;

// Tolerance: docs/design.md, "Devices: one network, two backends" (measured worst: 1.6e-7, the
// pruned MLP run compressed).
constexpr double kAtol = 1e-6, kRtol = 1e-5;

TEST_CASE("device network: an MLP trained with Adam on the simulated device follows the CPU") {
  train_and_compare(testing::make_sim_backend(), mlp_model(), optimizer_config(nn::OptimizerType::adam),
                    nn::LossKind::sparse_categorical_crossentropy, 12, kAtol, kRtol);
}

TEST_CASE("device network: an MLP trained with SGD + Nesterov momentum on the simulated device follows the CPU") {
  train_and_compare(testing::make_sim_backend(), mlp_model(), optimizer_config(nn::OptimizerType::sgd),
                    nn::LossKind::categorical_crossentropy, 12, kAtol, kRtol);
}

TEST_CASE("device network: a CNN (conv, batch norm over channels, max / average / global pooling) follows the CPU") {
  train_and_compare(testing::make_sim_backend(), cnn_model(), optimizer_config(nn::OptimizerType::adamw),
                    nn::LossKind::sparse_categorical_crossentropy, 8, kAtol, kRtol);
}

TEST_CASE("device network: a pruned MLP, its weights run compressed, follows the CPU (Adam)") {
  train_and_compare(
      testing::make_sim_backend(), pruned_mlp_model(), optimizer_config(nn::OptimizerType::adam),
      nn::LossKind::sparse_categorical_crossentropy, 10, kAtol, kRtol,
      [](nn::Network& n) { prune(n, nn::SparseMode::sparse); },
      [](const nn::Network& cpu, const nn::Network& dev) { check_pruned_ran(cpu, dev, true, kAtol, kRtol); });
}

TEST_CASE("device network: a pruned MLP run dense with its masks follows the CPU (SGD + Nesterov)") {
  train_and_compare(
      testing::make_sim_backend(), pruned_mlp_model(), optimizer_config(nn::OptimizerType::sgd),
      nn::LossKind::categorical_crossentropy, 10, kAtol, kRtol,
      [](nn::Network& n) { prune(n, nn::SparseMode::dense); },
      [](const nn::Network& cpu, const nn::Network& dev) { check_pruned_ran(cpu, dev, false, kAtol, kRtol); });
}

TEST_CASE("device network: a pruned layer set to 'auto' runs dense on a device and sparse when asked") {
  // The CPU's break-even is measured for its kernels; a device has none, so 'auto' stays dense.
  nn::Network dev(pruned_mlp_model().specs, {300}, nn::LossKind::sparse_categorical_crossentropy, 1,
                  testing::make_sim_backend());
  prune(dev, nn::SparseMode::automatic);
  const Batches data = make_batches(1, 8, 300, 7, 5);
  const nn::Targets y{data.labels[0].data(), nullptr, nullptr};
  dev.train_step(data.x[0].data(), 8, y);
  for (const nn::SparseLayerInfo& info : dev.sparse_info()) CHECK_FALSE(info.sparse);
  // Switched mid-training: the compressed copy gathers the dense weights and slots on the device.
  std::vector<std::vector<float>> before;
  for (int64_t i = 0; i < dev.n_params(); ++i) before.push_back(param(dev, i));
  for (const nn::SparseLayerInfo& info : dev.sparse_info()) dev.set_sparse_mode(info.param_index, nn::SparseMode::sparse);
  dev.train_step(data.x[0].data(), 8, y);
  for (const nn::SparseLayerInfo& info : dev.sparse_info()) {
    CHECK(info.sparse);
    const auto w = param(dev, info.param_index);
    std::vector<float> mask(w.size());
    dev.copy_mask(info.param_index, mask.data());
    int64_t moved = 0, pruned_nonzero = 0;
    for (size_t j = 0; j < w.size(); ++j) {
      moved += w[j] != before[static_cast<size_t>(info.param_index)][j];
      pruned_nonzero += mask[j] == 0.f && w[j] != 0.f;
    }
    CHECK(moved > 0);
    CHECK(pruned_nonzero == 0);
  }
}

TEST_CASE("device network: a dense layer with DropConnect follows the CPU, the same weight masks") {
  train_and_compare(testing::make_sim_backend(), drop_connect_model(), optimizer_config(nn::OptimizerType::adam),
                    nn::LossKind::sparse_categorical_crossentropy, 8, kAtol, kRtol, {}, check_drop_connect_masks);
}

TEST_CASE("device network: weights set and read back through the boundary; a failed step changes nothing") {
  const auto specs = mlp_specs();
  nn::Network dev(specs, {13}, nn::LossKind::sparse_categorical_crossentropy, 5, testing::make_sim_backend());
  std::vector<std::vector<float>> values;
  std::vector<const float*> ptrs;
  for (int64_t i = 0; i < dev.n_params(); ++i) {
    std::vector<float> v(static_cast<size_t>(dev.param(i).size));
    for (size_t j = 0; j < v.size(); ++j) v[j] = 0.001f * static_cast<float>(j) - static_cast<float>(i);
    values.push_back(std::move(v));
  }
  for (const auto& v : values) ptrs.push_back(v.data());
  dev.set_params(ptrs);
  for (int64_t i = 0; i < dev.n_params(); ++i)
    CHECK(testing::same_bytes(param(dev, i), values[static_cast<size_t>(i)]));

  const Batches data = make_batches(1, 4, 13, 7, 3);
  std::vector<float> bad = data.x[0];
  bad[17] = std::nanf("");
  nn::Targets y;
  y.labels = data.labels[0].data();
  const uint64_t offset = dev.rng_offset();
  CHECK_THROWS_AS(dev.train_step(bad.data(), 4, y), ValueError);
  std::vector<int64_t> bad_labels = data.labels[0];
  bad_labels[2] = 7;
  y.labels = bad_labels.data();
  CHECK_THROWS_AS(dev.train_step(data.x[0].data(), 4, y), ValueError);
  for (int64_t i = 0; i < dev.n_params(); ++i)
    CHECK(testing::same_bytes(param(dev, i), values[static_cast<size_t>(i)]));
  CHECK(dev.rng_offset() == offset);
  CHECK(dev.optimizer_step() == 0);
}

TEST_CASE("device network: what only the CPU runs is refused, naming it") {
  const auto sim = testing::make_sim_backend();
  const auto refused = [&](std::vector<nn::LayerSpec> specs, nn::Shape in, nn::LossKind loss, const char* needle) {
    try {
      nn::Network n(specs, in, loss, 1, sim);
      FAIL("expected a ValueError naming ", needle);
    } catch (const ValueError& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
      CHECK(std::string(e.what()).find("'_sim'") != std::string::npos);
    }
  };
  const auto xent = nn::LossKind::sparse_categorical_crossentropy;
  refused({layer(nn::LayerType::augment), layer(nn::LayerType::flatten), dense(3, ActivationKind::softmax)}, {1, 6, 6},
          xent, "layers[0] augment");
  refused({dense(3, ActivationKind::identity)}, {5}, nn::LossKind::mse, "loss: 'mse'");
  nn::LayerSpec l2 = dense(3, ActivationKind::softmax);
  l2.l2 = 1e-3f;
  refused({dense(4, ActivationKind::relu), l2}, {5}, xent, "layers[1]: weight penalties");
  refused({dense(4, ActivationKind::softmax), dense(3, ActivationKind::softmax)}, {5}, xent,
          "layers[0] dense: activation 'softmax'");

  nn::Network n({dense(4, ActivationKind::relu), dense(3, ActivationKind::softmax)}, {5}, xent, 1, sim);
  // A pruned convolution runs dense with its mask on a device; its compressed form is refused.
  nn::LayerSpec conv = layer(nn::LayerType::conv2d);
  conv.units = 2;
  conv.kernel[0] = conv.kernel[1] = 3;
  nn::Network c({conv, layer(nn::LayerType::flatten), dense(3, ActivationKind::softmax)}, {1, 5, 5}, xent, 1, sim);
  CHECK_THROWS_WITH_AS(c.set_sparse_mode(0, nn::SparseMode::sparse),
                       "layers[0] conv2d: sparse execution runs on the CPU only, not on device '_sim' (a pruned "
                       "conv2d layer runs dense with its mask there)",
                       ValueError);
  c.set_sparse_mode(0, nn::SparseMode::dense);
  std::vector<float> conv_mask(18, 1.f);
  conv_mask[4] = 0.f;
  c.set_mask(0, conv_mask.data());
  CHECK(c.has_mask(0));
  CHECK_THROWS_WITH_AS(n.set_max_norm(0, 2.f), doctest::Contains("max_norm runs on the CPU only"), ValueError);
  std::vector<float> x(10, 0.5f), w(2, 1.f);
  std::vector<int64_t> labels{0, 1};
  CHECK_THROWS_WITH_AS(n.train_step(x.data(), 2, nn::Targets{labels.data(), nullptr, w.data()}),
                       doctest::Contains("sample_weight runs on the CPU only"), ValueError);
  CHECK(n.optimizer_step() == 0);
}

TEST_CASE("simulated device: its memory cannot be read by the host outside a backend call") {
  // The guard the device tests rely on: a child process that reads a parameter's device pointer
  // directly must die of SIGSEGV, while the same read through the backend works.
  nn::Network n({dense(4, ActivationKind::relu), dense(3, ActivationKind::softmax)}, {5},
                nn::LossKind::sparse_categorical_crossentropy, 1, testing::make_sim_backend());
  const float* w = n.param(0).value.data();
  std::vector<float> through(20);
  n.copy_param(0, through.data());
  CHECK(std::isfinite(through[0]));
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // the test runner's handler would report a crash of its own
    volatile float v = w[0];        // must fault
    (void)v;
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGSEGV);
}

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
#include <utility>
#include <vector>

#include "device_network_check.h"
#include "dropnet/core/error.h"
#include "dropnet/nn/network.h"
#include "sim_device.h"

using namespace dropnet;
using namespace dropnet::device_testing;

// Tolerance: docs/design.md, "Devices: one network, two backends" (measured worst: 1.5e-7).
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

TEST_CASE("device network: each elementwise loss (mse, mae, huber, binary cross-entropy) trains like the CPU") {
  const std::pair<nn::LossKind, ActivationKind> cases[] = {
      {nn::LossKind::mse, ActivationKind::identity},
      {nn::LossKind::mae, ActivationKind::identity},
      {nn::LossKind::huber, ActivationKind::tanh},                 // an output activation the loss keeps
      {nn::LossKind::binary_crossentropy, ActivationKind::sigmoid}  // absorbed: the loss takes logits
  };
  // SGD: Adam's step is lr·m / (√v + ε), which for a gradient of magnitude near ε = 1e-7 turns a
  // 1e-9 difference in the gradient into 1e-6 in the step (∂step/∂g up to lr / 4ε); the first
  // layer of these regression and binary heads has such gradients (docs/design.md,
  // "Devices: one network, two backends"). Adam and AdamW train under these losses below.
  for (const auto& [loss, act] : cases) {
    INFO("loss ", static_cast<int>(loss));
    train_and_compare(testing::make_sim_backend(), with_output(mlp_model(), act),
                      optimizer_config(nn::OptimizerType::sgd), loss, 8, kAtol, kRtol);
  }
}

TEST_CASE("device network: l1 + l2 penalties, sample weights and max-norm on the simulated device follow the CPU") {
  // The MLP's weights: param 0 (48 × 300) and param 4 (24 × 48), the largest rows of norm
  // 0.61 and 0.64 at initialisation; a max norm of 0.5 binds at the first step (train_and_compare
  // checks that it does).
  TrainOptions options;
  options.sample_weights = true;
  options.max_norm = {{0, 0.5f}, {4, 0.5f}};
  SUBCASE("sparse cross-entropy, SGD + Nesterov") {
    train_and_compare(testing::make_sim_backend(), with_penalties(mlp_model()), optimizer_config(nn::OptimizerType::sgd),
                      nn::LossKind::sparse_categorical_crossentropy, 10, kAtol, kRtol, options);
  }
  SUBCASE("categorical cross-entropy, AdamW") {
    train_and_compare(testing::make_sim_backend(), with_penalties(mlp_model()),
                      optimizer_config(nn::OptimizerType::adamw), nn::LossKind::categorical_crossentropy, 10, kAtol,
                      kRtol, options);
  }
  SUBCASE("mse, SGD + Nesterov") {
    train_and_compare(testing::make_sim_backend(), with_penalties(with_output(mlp_model(), ActivationKind::identity)),
                      optimizer_config(nn::OptimizerType::sgd), nn::LossKind::mse, 10, kAtol, kRtol, options);
  }
  SUBCASE("binary cross-entropy, Adam") {
    train_and_compare(testing::make_sim_backend(), with_penalties(with_output(mlp_model(), ActivationKind::sigmoid)),
                      optimizer_config(nn::OptimizerType::adam), nn::LossKind::binary_crossentropy, 10, kAtol, kRtol,
                      options);
  }
}

TEST_CASE("device network: a CNN under huber with penalties, sample weights and max-norm on a conv follows the CPU") {
  // Params: conv1 filters (0: 5 filters of 2·3·3), batch norm (1, 2), conv2 filters (3: 6 of 5·3·3).
  TrainOptions options;
  options.sample_weights = true;
  options.max_norm = {{3, 0.5f}};
  train_and_compare(testing::make_sim_backend(), with_penalties(with_output(cnn_model(), ActivationKind::identity)),
                    optimizer_config(nn::OptimizerType::adamw), nn::LossKind::huber, 8, kAtol, kRtol, options);
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
  nn::LayerSpec dc = dense(4, ActivationKind::relu);
  dc.drop_connect = 0.5;
  refused({dc, dense(3, ActivationKind::softmax)}, {5}, xent, "drop_connect");
  refused({dense(4, ActivationKind::softmax), dense(3, ActivationKind::softmax)}, {5}, xent,
          "layers[0] dense: activation 'softmax'");

  nn::Network n({dense(4, ActivationKind::relu), dense(3, ActivationKind::softmax)}, {5}, xent, 1, sim);
  std::vector<float> mask(20, 1.f);
  CHECK_THROWS_WITH_AS(n.set_mask(0, mask.data()), doctest::Contains("pruning runs on the CPU only"), ValueError);
  std::vector<float> x(10, 0.5f);
  std::vector<int64_t> labels{0, 1};
  CHECK_THROWS_WITH_AS(n.compute_gradients(x.data(), 2, nn::Targets{labels.data(), nullptr, nullptr}, 0, 2),
                       doctest::Contains("compute_gradients (data-parallel training) runs on the CPU only"),
                       ValueError);
  CHECK_THROWS_WITH_AS(n.set_batchnorm_sum([](double*, int64_t) {}),
                       doctest::Contains("synchronised batch norm runs on the CPU only"), ValueError);
  CHECK(n.optimizer_step() == 0);
}

TEST_CASE("device network: bad sample weights are refused before the device changes") {
  nn::Network dev({dense(4, ActivationKind::relu), dense(3, ActivationKind::softmax)}, {5},
                  nn::LossKind::sparse_categorical_crossentropy, 1, testing::make_sim_backend());
  const std::vector<float> before = param(dev, 0);
  std::vector<float> x(10, 0.5f), w{1.f, -1.f};
  std::vector<int64_t> labels{0, 1};
  CHECK_THROWS_WITH_AS(dev.train_step(x.data(), 2, nn::Targets{labels.data(), nullptr, w.data()}),
                       doctest::Contains("sample_weight: expected finite values >= 0, got -1 at sample 1"), ValueError);
  CHECK(testing::same_bytes(param(dev, 0), before));
  CHECK(dev.optimizer_step() == 0);
  CHECK_THROWS_WITH_AS(dev.set_max_norm(1, 2.f), doctest::Contains("is not the weight of a dense or conv2d layer"),
                       ValueError);
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

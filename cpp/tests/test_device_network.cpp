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
  // "Devices: one network, two backends"). AdamW trains the CNN under huber below.
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
                      nn::LossKind::sparse_categorical_crossentropy, 10, kAtol, kRtol, {}, {}, options);
  }
  SUBCASE("categorical cross-entropy, AdamW") {
    train_and_compare(testing::make_sim_backend(), with_penalties(mlp_model()),
                      optimizer_config(nn::OptimizerType::adamw), nn::LossKind::categorical_crossentropy, 10, kAtol,
                      kRtol, {}, {}, options);
  }
  SUBCASE("mse, SGD + Nesterov") {
    train_and_compare(testing::make_sim_backend(), with_penalties(with_output(mlp_model(), ActivationKind::identity)),
                      optimizer_config(nn::OptimizerType::sgd), nn::LossKind::mse, 10, kAtol, kRtol, {}, {}, options);
  }
  SUBCASE("binary cross-entropy, SGD + Nesterov") {
    train_and_compare(testing::make_sim_backend(), with_penalties(with_output(mlp_model(), ActivationKind::sigmoid)),
                      optimizer_config(nn::OptimizerType::sgd), nn::LossKind::binary_crossentropy, 10, kAtol, kRtol, {},
                      {}, options);
  }
}

TEST_CASE("device network: a CNN under huber with penalties, sample weights and max-norm on a conv follows the CPU") {
  // Params: conv1 filters (0: 5 filters of 2·3·3), batch norm (1, 2), conv2 filters (3: 6 of 5·3·3).
  TrainOptions options;
  options.sample_weights = true;
  options.max_norm = {{3, 0.5f}};
  train_and_compare(testing::make_sim_backend(), with_penalties(with_output(cnn_model(), ActivationKind::identity)),
                    optimizer_config(nn::OptimizerType::adamw), nn::LossKind::huber, 8, kAtol, kRtol, {}, {}, options);
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

TEST_CASE("device network: a pruned MLP with penalties, sample weights and max-norm follows the CPU, run compressed "
          "and dense") {
  // The penalty pass on the stored entries (compressed) or with the mask (dense); max-norm on the
  // dense copy, which a compressed weight gathers again. 0.2: below the largest row norm of the
  // first weight pruned to 15 % (train_and_compare checks that the constraint binds).
  TrainOptions options;
  options.sample_weights = true;
  options.max_norm = {{0, 0.2f}};
  for (nn::SparseMode mode : {nn::SparseMode::sparse, nn::SparseMode::dense}) {
    INFO("sparse ", mode == nn::SparseMode::sparse);
    train_and_compare(
        testing::make_sim_backend(), with_penalties(pruned_mlp_model()), optimizer_config(nn::OptimizerType::sgd),
        nn::LossKind::sparse_categorical_crossentropy, 10, kAtol, kRtol, [mode](nn::Network& n) { prune(n, mode); },
        [mode](const nn::Network& cpu, const nn::Network& dev) {
          check_pruned_ran(cpu, dev, mode == nn::SparseMode::sparse, kAtol, kRtol);
        },
        options);
  }
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

namespace {

// Epochs through train_steps on the CPU, on a device holding the dataset (keep_dataset) and on a
// device copying each batch in. extras: l1 / l2 penalties on two layers and sample weights (their
// penalties cross with the chunk's metrics, the weights are kept with the data), under SGD.
void check_kept_epochs(bool extras) {
  Model m = mlp_model();
  if (extras) {
    m.specs[0].l2 = 1e-3f;
    m.specs[3].l1 = 1e-4f;
    m.specs[3].l2 = 2e-3f;
  }
  const int64_t n = 45, batch = 8;  // 6 steps, the last one of 5 rows
  const Batches data = make_batches(1, n, m.features(), m.classes, 7);
  const std::vector<float>& x = data.x[0];
  std::vector<float> weights(n);
  for (int64_t i = 0; i < n; ++i) weights[i] = 0.25f + 0.5f * static_cast<float>(i % 4);
  nn::Targets y;
  y.labels = data.labels[0].data();
  if (extras) y.weights = weights.data();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = (i * 17 + 5) % n;
  const auto sim = testing::make_sim_backend();
  const testing::SimMemory& mem = sim->kernels().memory();
  nn::Network cpu(m.specs, m.input, nn::LossKind::sparse_categorical_crossentropy, 3);
  nn::Network kept(m.specs, m.input, nn::LossKind::sparse_categorical_crossentropy, 3, sim);
  nn::Network copied(m.specs, m.input, nn::LossKind::sparse_categorical_crossentropy, 3,
                     testing::make_sim_backend());
  for (nn::Network* net : {&cpu, &kept, &copied})
    net->set_optimizer(optimizer_config(extras ? nn::OptimizerType::sgd : nn::OptimizerType::adam));
  CHECK_FALSE(cpu.keep_dataset(x.data(), n, y));  // the CPU gathers from x itself
  const size_t before = mem.bytes_in;
  REQUIRE(kept.keep_dataset(x.data(), n, y));
  CHECK(mem.bytes_in - before ==
        static_cast<size_t>(n) * (m.features() * sizeof(float) + sizeof(int64_t) + (extras ? sizeof(float) : 0)));
  // Out per step: the loss sum and the correct count, and with penalties one double per parameter.
  const size_t out_per_step =
      sizeof(double) + sizeof(int64_t) + (extras ? static_cast<size_t>(cpu.n_params()) * sizeof(double) : 0);
  // Two epochs, each in chunks of steps [0, 2), [2, 5), [5, 6), one shuffled and one in sequence.
  for (bool shuffled : {true, false})
    for (auto chunk : {std::pair<int64_t, int64_t>{0, 2}, {2, 5}, {5, 6}}) {
      const int64_t steps = chunk.second - chunk.first;
      std::vector<double> la(steps), lb(steps), lc(steps);
      std::vector<int64_t> ca(steps), cb(steps), cc(steps);
      const int64_t* o = shuffled ? order.data() : nullptr;
      cpu.train_steps(x.data(), n, y, o, n, batch, chunk.first, chunk.second, la.data(), ca.data());
      const size_t in0 = mem.bytes_in, out0 = mem.bytes_out, calls0 = mem.optimizer_calls;
      kept.train_steps(x.data(), n, y, o, n, batch, chunk.first, chunk.second, lb.data(), cb.data());
      // In: the chunk's slice of the order (nothing in sequence); out: the chunk's metrics.
      const int64_t rows = std::min(n, chunk.second * batch) - chunk.first * batch;
      CHECK(mem.bytes_in - in0 == (shuffled ? static_cast<size_t>(rows) * sizeof(int64_t) : 0));
      CHECK(mem.bytes_out - out0 == static_cast<size_t>(steps) * out_per_step);
      // One multi-tensor optimizer call per step, for all of the network's parameters.
      CHECK(mem.optimizer_calls - calls0 == static_cast<size_t>(steps));
      copied.train_steps(x.data(), n, y, o, n, batch, chunk.first, chunk.second, lc.data(), cc.data());
      for (int64_t s = 0; s < steps; ++s) {
        CHECK(std::fabs(lb[s] - la[s]) <= kAtol + kRtol * std::fabs(la[s]));
        CHECK(lb[s] == lc[s]);  // gathered on the device or copied in: the same batch, the same bits
        CHECK(cb[s] == ca[s]);
        CHECK(cc[s] == ca[s]);
        CHECK(ca[s] >= 0);
      }
      CHECK(kept.last_batch_correct() == ca.back());
      CHECK(kept.rng_offset() == cpu.rng_offset());
    }
  for (int64_t i = 0; i < cpu.n_params(); ++i) {
    INFO("param ", i);
    testing::check_close(param(kept, i), param(cpu, i), kAtol, kRtol);
    CHECK(testing::same_bytes(param(kept, i), param(copied, i)));
  }
  // Other arrays than the kept ones: batches are copied in, with the same result.
  const std::vector<float> x2 = x;
  std::vector<double> l2(1), l3(1);
  std::vector<int64_t> c2(1), c3(1);
  kept.train_steps(x2.data(), n, y, nullptr, n, batch, 0, 1, l2.data(), c2.data());
  copied.train_steps(x.data(), n, y, nullptr, n, batch, 0, 1, l3.data(), c3.data());
  CHECK(l2[0] == l3[0]);
  // A dataset that fails its checks is not kept, and the network is unchanged.
  std::vector<int64_t> bad = data.labels[0];
  bad[40] = m.classes;
  nn::Targets yb;
  yb.labels = bad.data();
  const size_t blocks = mem.n_blocks();
  CHECK_THROWS_WITH_AS(kept.keep_dataset(x.data(), n, yb), doctest::Contains("at sample 40"), ValueError);
  CHECK(mem.n_blocks() < blocks);  // the earlier copy was released too
  kept.release_dataset();
}

}  // namespace

TEST_CASE("device network: epochs over a dataset kept on the device follow the CPU; only the order and the metrics cross") {
  check_kept_epochs(false);
}

TEST_CASE("device network: kept epochs with penalties and sample weights; the penalties cross with the metrics") {
  check_kept_epochs(true);
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

// One network on the GPU: the MLP of ../device_network_check.h trained on cuda:0 and on the CPU
// from the same seed, dropout masks compared bit for bit after every step, everything else within
// the tolerance below. The same check runs without a GPU on the simulated device
// (../test_device_network.cpp), which runs the GPU's per-thread bodies. Part of dropnet_gpu_tests
// (main: test_cuda_kernels.cpp).
//
// Never run on a GPU yet. The tolerance is the simulated device's widened tenfold for the GPU's
// own GEMM blocking and CUDA's expf / tanhf / erff, to be measured on a GPU and tightened:
// docs/design.md, "Devices: one network, two backends".
#include <doctest/doctest.h>

#include <utility>

#include "../device_network_check.h"
#include "dropnet/kernels/cuda/backend.h"

using namespace dropnet;
using namespace dropnet::device_testing;

namespace {
constexpr double kAtol = 1e-5, kRtol = 1e-4;
}  // namespace

TEST_CASE("GPU network: an MLP trained with Adam on cuda:0 follows the CPU") {
  train_and_compare(cuda::cuda_backend(0), mlp_model(), optimizer_config(nn::OptimizerType::adam),
                    nn::LossKind::sparse_categorical_crossentropy, 12, kAtol, kRtol);
}

TEST_CASE("GPU network: an MLP trained with SGD + Nesterov momentum on cuda:0 follows the CPU") {
  train_and_compare(cuda::cuda_backend(0), mlp_model(), optimizer_config(nn::OptimizerType::sgd),
                    nn::LossKind::categorical_crossentropy, 12, kAtol, kRtol);
}

TEST_CASE("GPU network: a CNN (conv, batch norm over channels, pooling) on cuda:0 follows the CPU") {
  train_and_compare(cuda::cuda_backend(0), cnn_model(), optimizer_config(nn::OptimizerType::adamw),
                    nn::LossKind::sparse_categorical_crossentropy, 8, kAtol, kRtol);
}

TEST_CASE("GPU network: each elementwise loss (mse, mae, huber, binary cross-entropy) on cuda:0 follows the CPU") {
  const std::pair<nn::LossKind, ActivationKind> cases[] = {{nn::LossKind::mse, ActivationKind::identity},
                                                           {nn::LossKind::mae, ActivationKind::identity},
                                                           {nn::LossKind::huber, ActivationKind::tanh},
                                                           {nn::LossKind::binary_crossentropy, ActivationKind::sigmoid}};
  for (const auto& [loss, act] : cases) {
    INFO("loss ", static_cast<int>(loss));
    train_and_compare(cuda::cuda_backend(0), with_output(mlp_model(), act), optimizer_config(nn::OptimizerType::sgd),
                      loss, 8, kAtol, kRtol);
  }
}

TEST_CASE("GPU network: l1 + l2 penalties, sample weights and max-norm on cuda:0 follow the CPU") {
  TrainOptions options;  // as ../test_device_network.cpp
  options.sample_weights = true;
  options.max_norm = {{0, 0.5f}, {4, 0.5f}};
  train_and_compare(cuda::cuda_backend(0), with_penalties(mlp_model()), optimizer_config(nn::OptimizerType::sgd),
                    nn::LossKind::sparse_categorical_crossentropy, 10, kAtol, kRtol, {}, {}, options);
  train_and_compare(cuda::cuda_backend(0), with_penalties(with_output(mlp_model(), ActivationKind::sigmoid)),
                    optimizer_config(nn::OptimizerType::sgd), nn::LossKind::binary_crossentropy, 10, kAtol, kRtol, {}, {},
                    options);
  options.max_norm = {{3, 0.5f}};
  train_and_compare(cuda::cuda_backend(0), with_penalties(with_output(cnn_model(), ActivationKind::identity)),
                    optimizer_config(nn::OptimizerType::adamw), nn::LossKind::huber, 8, kAtol, kRtol, {}, {}, options);
}

TEST_CASE("GPU network: a pruned MLP run compressed (cuSPARSE) on cuda:0 follows the CPU") {
  train_and_compare(
      cuda::cuda_backend(0), pruned_mlp_model(), optimizer_config(nn::OptimizerType::adam),
      nn::LossKind::sparse_categorical_crossentropy, 10, kAtol, kRtol,
      [](nn::Network& n) { prune(n, nn::SparseMode::sparse); },
      [](const nn::Network& cpu, const nn::Network& dev) { check_pruned_ran(cpu, dev, true, kAtol, kRtol); });
}

TEST_CASE("GPU network: a pruned MLP run dense with its masks on cuda:0 follows the CPU") {
  train_and_compare(
      cuda::cuda_backend(0), pruned_mlp_model(), optimizer_config(nn::OptimizerType::sgd),
      nn::LossKind::categorical_crossentropy, 10, kAtol, kRtol,
      [](nn::Network& n) { prune(n, nn::SparseMode::dense); },
      [](const nn::Network& cpu, const nn::Network& dev) { check_pruned_ran(cpu, dev, false, kAtol, kRtol); });
}

TEST_CASE("GPU network: a dense layer with DropConnect on cuda:0 follows the CPU, the same weight masks") {
  train_and_compare(cuda::cuda_backend(0), drop_connect_model(), optimizer_config(nn::OptimizerType::adam),
                    nn::LossKind::sparse_categorical_crossentropy, 8, kAtol, kRtol, {}, check_drop_connect_masks);
}

TEST_CASE("GPU network: a device out of range is refused naming the count") {
  CHECK_THROWS_WITH(cuda::cuda_backend(1 << 20), doctest::Contains("CUDA device(s)"));
}

// One network on two backends: an MLP built from every layer the device twin runs, trained from
// the same seed on the CPU and on another backend (the simulated device of sim_device.h in
// test_device_network.cpp, a GPU in gpu/test_cuda_network.cpp), with the dropout masks compared
// bit for bit after every step and parameters, optimizer slots, running statistics, losses and
// inference outputs within a tolerance (docs/design.md, "Devices: one network, two backends").
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "check_close.h"
#include "cuda_sim.h"
#include "dropnet/kernels/backend.h"
#include "dropnet/nn/network.h"

namespace dropnet {
namespace device_testing {


inline nn::LayerSpec dense(int64_t units, ActivationKind act, double rate = 0.0) {
  nn::LayerSpec s;
  s.type = nn::LayerType::dense;
  s.units = units;
  s.activation = act;
  s.rate = rate;
  return s;
}
inline nn::LayerSpec layer(nn::LayerType type, double rate = 0.0) {
  nn::LayerSpec s;
  s.type = type;
  s.rate = rate;
  return s;
}
inline nn::LayerSpec activation(ActivationKind act) {
  nn::LayerSpec s = layer(nn::LayerType::activation);
  s.activation = act;
  return s;
}

// An MLP with every layer the device twin runs: dense with a fused ReLU and fused dropout, batch
// norm (fused ReLU), a dropout layer, dense + gelu (pre-activation kept), a tanh activation layer,
// a flatten, and a softmax output absorbed by the crossentropy loss.
// A network to train on both backends: its layers, the shape of one sample, the classes of its
// output and how many of its layers draw dropout masks in a training step.
struct Model {
  std::vector<nn::LayerSpec> specs;
  nn::Shape input;
  int64_t classes = 0, dropout_layers = 0;
  int64_t features() const { return nn::shape_size(input); }
};

inline std::vector<nn::LayerSpec> mlp_specs() {
  nn::LayerSpec bn = layer(nn::LayerType::batch_norm);
  bn.relu = true;
  return {dense(48, ActivationKind::relu, 0.25), bn, layer(nn::LayerType::dropout, 0.3),
          dense(24, ActivationKind::gelu), activation(ActivationKind::tanh), layer(nn::LayerType::flatten),
          dense(7, ActivationKind::softmax)};
}

// Per step: inputs, labels with their one-hot rows (0/1 targets for binary cross-entropy too),
// regression targets (normal, σ = 0.5) and sample weights in [0, 2) with one row weighted 0.
struct Batches {
  int64_t rows = 0, features = 0, classes = 0;
  std::vector<std::vector<float>> x, onehot, regress, weights;
  std::vector<std::vector<int64_t>> labels;
};

inline Batches make_batches(int64_t steps, int64_t rows, int64_t features, int64_t classes, unsigned seed) {
  Batches b{rows, features, classes, {}, {}, {}, {}, {}};
  std::mt19937 g(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int64_t> label(0, classes - 1);
  std::uniform_real_distribution<float> weight(0.f, 2.f);
  // Their own generator and distribution (a normal_distribution keeps a cached draw): the inputs
  // and labels of a seed stay what they were.
  std::mt19937 g_extra(seed + 1);
  std::normal_distribution<float> normal_extra(0.f, 0.5f);
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<float> regress(static_cast<size_t>(rows * classes)), weights(static_cast<size_t>(rows));
    for (auto& v : regress) v = normal_extra(g_extra);
    for (auto& v : weights) v = weight(g_extra);
    weights[static_cast<size_t>(s % rows)] = 0.f;
    b.regress.push_back(std::move(regress));
    b.weights.push_back(std::move(weights));
    std::vector<float> x(static_cast<size_t>(rows * features)), onehot(static_cast<size_t>(rows * classes), 0.f);
    std::vector<int64_t> y(static_cast<size_t>(rows));
    for (auto& v : x) v = normal(g);
    for (int64_t r = 0; r < rows; ++r) {
      y[static_cast<size_t>(r)] = label(g);
      onehot[static_cast<size_t>(r * classes + y[static_cast<size_t>(r)])] = 1.f;
    }
    b.x.push_back(std::move(x));
    b.labels.push_back(std::move(y));
    b.onehot.push_back(std::move(onehot));
  }
  return b;
}

inline std::vector<float> param(const nn::Network& n, int64_t i) {
  std::vector<float> v(static_cast<size_t>(n.param(i).size));
  n.copy_param(i, v.data());
  return v;
}
inline std::vector<float> state(const nn::Network& n, int64_t i) {
  std::vector<float> v(static_cast<size_t>(n.state(i).size));
  n.copy_state(i, v.data());
  return v;
}
inline std::vector<float> slot(const nn::Network& n, int64_t k) {
  std::vector<float> v(static_cast<size_t>(n.param(n.slot_param(k)).size));
  n.copy_slot(k, v.data());
  return v;
}

// Every layer's keep bits of the last training forward must be the same words on both devices.
inline void check_masks_equal(const nn::Network& cpu, const nn::Network& dev, int64_t n_layers, int64_t rows,
                       int64_t* layers_with_dropout) {
  for (int64_t l = 0; l < n_layers; ++l) {
    std::vector<uint64_t> a(1024, 0), b(1024, 0);
    const bool da = cpu.copy_keep_bits(l, rows, a.data()), db = dev.copy_keep_bits(l, rows, b.data());
    INFO("layer ", l);
    CHECK(da == db);
    CHECK(testing::same_bytes(a, b));
    *layers_with_dropout += da;
  }
}

// Trains `steps` steps on both devices and compares after each; loss per step and training
// accuracy too. Tolerances: docs/design.md, "Devices: one network, two backends".
// The optimizers the device tests train with: Adam (lr 1e-3), SGD with Nesterov momentum (lr 0.05,
// momentum 0.9), AdamW (lr 2e-3, weight decay 0.01).
inline nn::OptimizerConfig optimizer_config(nn::OptimizerType type) {
  nn::OptimizerConfig c;
  c.type = type;
  c.lr = type == nn::OptimizerType::sgd ? 0.05 : (type == nn::OptimizerType::adam ? 1e-3 : 2e-3);
  if (type == nn::OptimizerType::sgd) {
    c.momentum = 0.9;
    c.nesterov = true;
  }
  if (type == nn::OptimizerType::adamw) c.weight_decay = 0.01;
  return c;
}

// 300 inputs: the first product's K spans two K blocks, so a device GEMM splits it
// (kernels/cuda/gemm_body.h: gemm_workspace_floats) and the split's passes run too.
inline Model mlp_model() { return Model{mlp_specs(), {300}, 7, 2}; }

// A small CNN with every image layer the device twin runs: conv + ReLU (padding "same"), batch norm
// over channels + ReLU, max pooling, dropout on the maps, conv (stride 2, no bias, tanh), average
// spatial dropout, average pooling, global average pooling, and a dense softmax output.
inline Model cnn_model() {
  nn::LayerSpec conv1 = layer(nn::LayerType::conv2d);
  conv1.units = 5;
  conv1.kernel[0] = conv1.kernel[1] = 3;
  conv1.same_padding = true;
  conv1.activation = ActivationKind::relu;
  conv1.use_bias = false;  // before batch norm (docs/design.md, "Devices: one network, two backends")
  nn::LayerSpec bn = layer(nn::LayerType::batch_norm);
  bn.relu = true;
  nn::LayerSpec pool = layer(nn::LayerType::max_pool2d);
  pool.kernel[0] = pool.kernel[1] = pool.strides[0] = pool.strides[1] = 2;
  nn::LayerSpec conv2 = layer(nn::LayerType::conv2d);
  conv2.units = 6;
  conv2.kernel[0] = conv2.kernel[1] = 3;
  conv2.strides[0] = conv2.strides[1] = 1;
  conv2.padding[0] = conv2.padding[1] = 1;
  conv2.use_bias = false;
  conv2.activation = ActivationKind::tanh;
  nn::LayerSpec avg = layer(nn::LayerType::avg_pool2d);
  avg.kernel[0] = avg.kernel[1] = 3;
  avg.strides[0] = avg.strides[1] = 1;
  avg.padding[0] = avg.padding[1] = 1;
  avg.count_include_pad = false;
  return Model{{conv1, bn, pool, layer(nn::LayerType::dropout, 0.2), conv2,
                layer(nn::LayerType::spatial_dropout2d, 0.3), avg, layer(nn::LayerType::global_avg_pool2d),
                dense(4, ActivationKind::softmax)},
               {2, 9, 10},
               4,
               2};
}

// The model with its output layer's activation replaced (an elementwise loss takes no softmax).
inline Model with_output(Model m, ActivationKind act) {
  m.specs.back().activation = act;
  return m;
}
// The model with l1 on its first layer, l2 on its second dense or conv layer, both on its last.
inline Model with_penalties(Model m) {
  m.specs.front().l1 = 1e-3f;
  for (size_t l = 1; l + 1 < m.specs.size(); ++l)
    if (m.specs[l].type == nn::LayerType::dense || m.specs[l].type == nn::LayerType::conv2d) {
      m.specs[l].l2 = 2e-3f;
      break;
    }
  m.specs.back().l1 = 5e-4f;
  m.specs.back().l2 = 1e-3f;
  return m;
}

// What a training run adds to the batches: per-row sample weights, max-norm constraints
// (parameter index, max norm), each set on both networks before the first step.
struct TrainOptions {
  bool sample_weights = false;
  std::vector<std::pair<int64_t, float>> max_norm;
};

// Step s's targets for this loss: labels, one-hot rows (the cross-entropies), regression targets.
inline nn::Targets targets(const Batches& data, nn::LossKind loss, int64_t s, bool weighted) {
  const size_t i = static_cast<size_t>(s);
  nn::Targets y;
  if (loss == nn::LossKind::sparse_categorical_crossentropy) y.labels = data.labels[i].data();
  else if (loss == nn::LossKind::categorical_crossentropy || loss == nn::LossKind::binary_crossentropy)
    y.dense = data.onehot[i].data();
  else y.dense = data.regress[i].data();
  if (weighted) y.weights = data.weights[i].data();
  return y;
}

// The L2 norm of each of the rows of a parameter (in double).
inline std::vector<double> row_norms(const std::vector<float>& w, int64_t rows) {
  const size_t cols = w.size() / static_cast<size_t>(rows);
  std::vector<double> norms(static_cast<size_t>(rows), 0.0);
  for (size_t r = 0; r < norms.size(); ++r) {
    for (size_t j = 0; j < cols; ++j) norms[r] += static_cast<double>(w[r * cols + j]) * w[r * cols + j];
    norms[r] = std::sqrt(norms[r]);
  }
  return norms;
}

// What a test does to both networks before the first step (masks, sparse modes) and checks on
// both after the last.
using Prepare = std::function<void(nn::Network&)>;
using After = std::function<void(const nn::Network& cpu, const nn::Network& dev)>;

inline void train_and_compare(std::shared_ptr<const Backend> device, const Model& m, const nn::OptimizerConfig& opt,
                              nn::LossKind loss, int64_t steps, double atol, double rtol, const Prepare& prepare = {},
                              const After& after = {}, const TrainOptions& options = {}) {
  const auto& specs = m.specs;
  const uint64_t seed = 1234;
  // 19 rows: the MLP's 19 × 48 = 912 mask bits end in a partial word.
  const Batches data = make_batches(steps, 19, m.features(), m.classes, 99);
  nn::Network cpu(specs, m.input, loss, seed);
  const std::string name = device->name();
  nn::Network dev(specs, m.input, loss, seed, std::move(device));
  CHECK(dev.backend().name() == name);
  CHECK_FALSE(dev.backend().host_memory());
  cpu.set_optimizer(opt);
  dev.set_optimizer(opt);
  if (prepare) {
    prepare(cpu);
    prepare(dev);
  }
  for (const auto& [i, c] : options.max_norm) {
    cpu.set_max_norm(i, c);
    dev.set_max_norm(i, c);
  }
  for (int64_t i = 0; i < cpu.n_params(); ++i) CHECK(testing::same_bytes(param(cpu, i), param(dev, i)));
  // The largest row norm of each constrained parameter on the device.
  const auto largest_norms = [&] {
    std::vector<double> out;
    for (const auto& [i, c] : options.max_norm) {
      const std::vector<double> norms = row_norms(param(dev, i), dev.param(i).norm_rows);
      out.push_back(*std::max_element(norms.begin(), norms.end()));
    }
    return out;
  };
  // Each constraint has work to do: a row above its max norm before the first step.
  const std::vector<double> initial = largest_norms();
  for (size_t k = 0; k < initial.size(); ++k) CHECK(initial[k] > options.max_norm[k].second);
  for (int64_t s = 0; s < steps; ++s) {
    const nn::Targets y = targets(data, loss, s, options.sample_weights);
    const float* x = data.x[static_cast<size_t>(s)].data();
    const double la = cpu.train_step(x, data.rows, y), lb = dev.train_step(x, data.rows, y);
    CHECK(std::fabs(la - lb) <= atol + rtol * std::fabs(la));
    CHECK(cpu.last_batch_correct() == dev.last_batch_correct());
    CHECK(cpu.rng_offset() == dev.rng_offset());
    int64_t with_dropout = 0;
    check_masks_equal(cpu, dev, static_cast<int64_t>(specs.size()), data.rows, &with_dropout);
    CHECK(with_dropout == m.dropout_layers);
    // The constraint held after every step, and the first step's update pulled a row back onto it.
    const std::vector<double> largest = largest_norms();
    for (size_t k = 0; k < largest.size(); ++k) {
      const double c = options.max_norm[k].second;
      INFO("max_norm of param ", options.max_norm[k].first, " after step ", s);
      CHECK(largest[k] <= c * (1.0 + 1e-6));
      if (s == 0) CHECK(largest[k] >= c * (1.0 - 1e-6));
    }
  }
  CHECK(cpu.optimizer_step() == dev.optimizer_step());
  for (int64_t i = 0; i < cpu.n_params(); ++i) {
    INFO("param ", i);
    testing::check_close(param(dev, i), param(cpu, i), atol, rtol);
  }
  for (int64_t k = 0; k < cpu.n_optimizer_slots(); ++k) {
    INFO("slot ", k);
    testing::check_close(slot(dev, k), slot(cpu, k), atol, rtol);
  }
  for (int64_t i = 0; i < cpu.n_state(); ++i) {
    INFO("state ", i);
    testing::check_close(state(dev, i), state(cpu, i), atol, rtol);
  }
  // Inference (running statistics, no dropout) and evaluation on both devices.
  const auto& x = data.x[0];
  std::vector<float> pa(static_cast<size_t>(data.rows * m.classes)), pb(pa.size());
  cpu.forward(x.data(), data.rows, false, std::nullopt, pa.data());
  dev.forward(x.data(), data.rows, false, std::nullopt, pb.data());
  testing::check_close(pb, pa, atol, rtol);
  const nn::Targets y = targets(data, loss, 0, options.sample_weights);
  double loss_a = 0, loss_b = 0, correct_a = 0, correct_b = 0, weights_a = 0, weights_b = 0;
  cpu.evaluate(x.data(), data.rows, y, 8, &loss_a, &correct_a, &weights_a);
  dev.evaluate(x.data(), data.rows, y, 8, &loss_b, &correct_b, &weights_b);
  CHECK(std::fabs(loss_a - loss_b) <= atol + rtol * std::fabs(loss_a));
  CHECK(correct_a == correct_b);
  CHECK(weights_a == weights_b);
  if (after) after(cpu, dev);
}

// A 0/1 mask keeping about `keep` of n entries (a fixed Mersenne Twister stream per seed).
inline std::vector<float> random_mask(int64_t n, double keep, unsigned seed) {
  std::mt19937 g(seed);
  std::bernoulli_distribution bit(keep);
  std::vector<float> mask(static_cast<size_t>(n));
  for (auto& v : mask) v = bit(g) ? 1.f : 0.f;
  return mask;
}

// Every masked parameter: the same mask bytes on both devices, its gradient within the tolerance,
// and its pruned weights, gradients and optimizer slots exactly 0 on both.
inline void check_pruned(const nn::Network& cpu, const nn::Network& dev, double atol, double rtol) {
  const int64_t k = cpu.n_optimizer_slots() / cpu.n_params();
  for (int64_t i = 0; i < cpu.n_params(); ++i) {
    if (!cpu.has_mask(i)) continue;
    INFO("param ", i);
    REQUIRE(dev.has_mask(i));
    const size_t n = static_cast<size_t>(cpu.param(i).size);
    std::vector<float> ma(n), mb(n);
    cpu.copy_mask(i, ma.data());
    dev.copy_mask(i, mb.data());
    CHECK(testing::same_bytes(ma, mb));
    std::vector<std::vector<float>> tensors{param(cpu, i), param(dev, i)};
    for (const nn::Network* net : {&cpu, &dev}) {
      std::vector<float> g(n);
      net->copy_grad(i, g.data());
      tensors.push_back(std::move(g));
      for (int64_t s = 0; s < k; ++s) tensors.push_back(slot(*net, i * k + s));
    }
    testing::check_close(tensors[3 + static_cast<size_t>(k)], tensors[2], atol, rtol);  // dev, cpu gradients
    int64_t pruned = 0, nonzero_pruned = 0;
    for (size_t j = 0; j < n; ++j) {
      if (ma[j] != 0.f) continue;
      ++pruned;
      for (const auto& t : tensors) nonzero_pruned += t[j] != 0.f;
    }
    CHECK(pruned > 0);
    CHECK(nonzero_pruned == 0);
  }
}

// A pruned MLP: every dense weight keeps about 15 % of its entries (set_mask on both devices
// before the first step), the biases unpruned; run with the compressed weight (Backend::spmm_xt,
// sddmm, the gather and scatter of the stored entries) or dense with the mask.
inline Model pruned_mlp_model() {
  return Model{{dense(64, ActivationKind::relu, 0.25), dense(32, ActivationKind::gelu), dense(7, ActivationKind::softmax)},
               {300},
               7,
               1};
}

inline void prune(nn::Network& n, nn::SparseMode mode) {
  for (const nn::SparseLayerInfo& info : n.sparse_info()) {
    const int64_t i = info.param_index;
    const auto mask = random_mask(n.param(i).size, 0.15, 17 + static_cast<unsigned>(i));
    n.set_mask(i, mask.data());
    n.set_sparse_mode(i, mode);
  }
}

inline void check_pruned_ran(const nn::Network& cpu, const nn::Network& dev, bool sparse, double atol,
                             double rtol) {
  check_pruned(cpu, dev, atol, rtol);
  for (const nn::Network* n : {&cpu, &dev})
    for (const nn::SparseLayerInfo& info : n->sparse_info()) {
      CHECK(info.density < 0.2);
      CHECK(info.sparse == sparse);
    }
}

// DropConnect (Wan et al. 2013) on the first layer: its weight mask is drawn by the device's
// dropout pass over the weight from the CPU's stream.
inline Model drop_connect_model() {
  nn::LayerSpec dc = dense(40, ActivationKind::tanh);
  dc.drop_connect = 0.4;
  return Model{{dc, dense(24, ActivationKind::relu, 0.2), dense(5, ActivationKind::softmax)}, {300}, 5, 1};
}

// The DropConnect masks of the last step, bit for bit, through the weight gradient: exactly 0 where
// the weight was dropped (and, with N(0, 1) inputs and a tanh, nowhere else); about 40 % of them.
inline void check_drop_connect_masks(const nn::Network& cpu, const nn::Network& dev) {
  const size_t n = static_cast<size_t>(cpu.param(0).size);
  std::vector<float> ga(n), gb(n);
  cpu.copy_grad(0, ga.data());
  dev.copy_grad(0, gb.data());
  int64_t dropped = 0, differ = 0;
  for (size_t j = 0; j < n; ++j) {
    dropped += ga[j] == 0.f;
    differ += (ga[j] == 0.f) != (gb[j] == 0.f);
  }
  CHECK(differ == 0);
  CHECK(std::fabs(static_cast<double>(dropped) / static_cast<double>(n) - 0.4) < 0.02);
}

}  // namespace device_testing
}  // namespace dropnet

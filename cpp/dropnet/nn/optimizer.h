// Optimizers over a network's parameters, PyTorch's formulations (kernels/cpu/optimizer.h):
// SGD (momentum, Nesterov, coupled weight decay), Adam (coupled weight decay), AdamW (decoupled).
// State: a step counter and, per parameter, its slots: SGD with momentum → [momentum buffer];
// Adam/AdamW → [m, v]; plain SGD → none. Slots are ordered parameter by parameter.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dropnet/nn/buffer.h"
#include "dropnet/nn/layers.h"

namespace dropnet {
namespace nn {

enum class OptimizerType { sgd, adam, adamw };

struct OptimizerConfig {
  OptimizerType type = OptimizerType::sgd;
  double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7;
};

// Throws ValueError naming the offending field (lr >= 0, 0 <= momentum, betas in [0, 1), ...).
void validate_optimizer_config(const OptimizerConfig& c);

class Optimizer {
 public:
  // Binds to `params` (sizes fixed from now on) and zeroes the state, which lives on `backend`
  // (the parameters' device) and is updated there.
  void reset(const OptimizerConfig& config, const std::vector<Param*>& params, const Backend& backend);
  const OptimizerConfig& config() const { return config_; }
  void set_lr(double lr);
  int64_t slots_per_param() const;
  // One update of every parameter with its current gradient; step counter + 1.
  void step(const std::vector<Param*>& params);
  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }
  // Slot k of parameter p is slots()[p * slots_per_param() + k], each of the parameter's size.
  std::vector<Buffer<float>>& slots() { return slots_; }
  const std::vector<Buffer<float>>& slots() const { return slots_; }
  // Zero the state where the mask of parameter `param_index` is 0 (mask: host memory; the slots
  // through their backend).
  void apply_mask(int64_t param_index, const float* mask, int64_t n);

 private:
  // The arrays one parameter's update works on: the dense ones with the mask, or the compressed
  // copy when the parameter runs sparse this step (layers.h: Param::run_sparse).
  OptimizerSegment target(Param& prm, size_t p);
  OptimizerConfig config_;
  const Backend* backend_ = &cpu_backend();
  int64_t step_ = 0;
  std::vector<Buffer<float>> slots_;
  std::vector<OptimizerSegment> segments_;  // a step's list, kept so steps do not allocate
};

}  // namespace nn
}  // namespace dropnet

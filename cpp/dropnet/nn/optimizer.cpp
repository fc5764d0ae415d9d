#include "dropnet/nn/optimizer.h"

#include <cmath>

#include "dropnet/core/error.h"

namespace dropnet {
namespace nn {

void validate_optimizer_config(const OptimizerConfig& c) {
  DROPNET_CHECK(std::isfinite(c.lr) && c.lr >= 0.0, "optimizer lr: expected a finite value >= 0, got ", c.lr);
  DROPNET_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0.0,
                "optimizer weight_decay: expected a finite value >= 0, got ", c.weight_decay);
  if (c.type == OptimizerType::sgd) {
    DROPNET_CHECK(std::isfinite(c.momentum) && c.momentum >= 0.0, "optimizer momentum: expected a value >= 0, got ",
                  c.momentum);
    DROPNET_CHECK(!c.nesterov || c.momentum > 0.0, "optimizer nesterov: needs momentum > 0, got momentum=",
                  c.momentum);
  } else {
    DROPNET_CHECK(c.beta1 >= 0.0 && c.beta1 < 1.0, "optimizer beta_1: expected a value in [0, 1), got ", c.beta1);
    DROPNET_CHECK(c.beta2 >= 0.0 && c.beta2 < 1.0, "optimizer beta_2: expected a value in [0, 1), got ", c.beta2);
    DROPNET_CHECK(std::isfinite(c.epsilon) && c.epsilon > 0.0, "optimizer epsilon: expected a value > 0, got ",
                  c.epsilon);
  }
}

int64_t Optimizer::slots_per_param() const {
  if (config_.type == OptimizerType::sgd) return config_.momentum > 0.0 ? 1 : 0;
  return 2;
}

void Optimizer::reset(const OptimizerConfig& config, const std::vector<Param*>& params, const Backend& backend) {
  validate_optimizer_config(config);
  config_ = config;
  backend_ = &backend;
  step_ = 0;
  slots_.clear();
  const int64_t k = slots_per_param();
  for (Param* p : params)
    for (int64_t s = 0; s < k; ++s) {
      slots_.emplace_back();
      if (!backend.host_memory()) slots_.back().bind(&backend);
      slots_.back().grow(static_cast<size_t>(p->size));
      slots_.back().zero(static_cast<size_t>(p->size));
    }
}

void Optimizer::set_lr(double lr) {
  DROPNET_CHECK(std::isfinite(lr) && lr >= 0.0, "lr: expected a finite value >= 0, got ", lr);
  config_.lr = lr;
}

void Optimizer::apply_mask(int64_t param_index, const float* mask, int64_t n) {
  const int64_t k = slots_per_param();
  for (int64_t s = 0; s < k; ++s) {
    Buffer<float>& slot = slots_[static_cast<size_t>(param_index * k + s)];
    buffer_mask(slot.backend(), slot.data(), mask, static_cast<size_t>(n));
  }
}

OptimizerSegment Optimizer::target(Param& prm, size_t p) {
  const int64_t k = slots_per_param();
  OptimizerSegment t;
  float** slot[2] = {&t.slot0, &t.slot1};
  if (prm.run_sparse) {
    // The compressed copy holds exactly the surviving entries: no mask needed, O(nnz) work. Per
    // element the update is the dense masked one (mask 1), so both paths give the same bits.
    SparseWeight& s = *prm.sparse;
    t.n = s.nnz;
    t.w = s.values.data();
    t.g = s.grad.data();
    for (int64_t j = 0; j < k; ++j) *slot[j] = s.slots[static_cast<size_t>(j)].data();
    return t;
  }
  t.n = prm.size;
  t.w = prm.value.data();
  t.g = prm.grad.data();
  t.mask = prm.mask_or_null();
  for (int64_t j = 0; j < k; ++j) *slot[j] = slots_[p * static_cast<size_t>(k) + static_cast<size_t>(j)].data();
  return t;
}

void Optimizer::step(const std::vector<Param*>& params) {
  ++step_;
  // Every trainable parameter in one list (frozen ones: weights and slots stay as they are), one
  // backend call: a device updates them all in one launch.
  segments_.clear();
  for (size_t p = 0; p < params.size(); ++p)
    if (params[p]->trainable) segments_.push_back(target(*params[p], p));
  const int64_t count = static_cast<int64_t>(segments_.size());
  if (config_.type == OptimizerType::sgd) {
    SgdArgs a;
    a.lr = static_cast<float>(config_.lr);
    a.momentum = static_cast<float>(config_.momentum);
    a.weight_decay = static_cast<float>(config_.weight_decay);
    a.nesterov = config_.nesterov;
    backend_->sgd_update(a, segments_.data(), count);
    return;
  }
  AdamArgs a;
  a.lr = static_cast<float>(config_.lr);
  a.beta1 = static_cast<float>(config_.beta1);
  a.beta2 = static_cast<float>(config_.beta2);
  a.epsilon = static_cast<float>(config_.epsilon);
  a.weight_decay = static_cast<float>(config_.weight_decay);
  a.decoupled = config_.type == OptimizerType::adamw;
  // Bias corrections in double from the float betas, as PyTorch computes them in Python floats.
  const double t = static_cast<double>(step_);
  a.step_size = static_cast<float>(config_.lr / (1.0 - std::pow(config_.beta1, t)));
  a.bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(config_.beta2, t)));
  backend_->adam_update(a, segments_.data(), count);
}

}  // namespace nn
}  // namespace dropnet

#include "dropnet/nn/network.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dropnet/core/batch_metrics_element.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/error.h"
#include "dropnet/core/parallel.h"
#include "dropnet/kernels/cpu/activation.h"
#include "dropnet/kernels/cpu/finite_check.h"
#include "dropnet/kernels/cpu/weight_penalty.h"
#include "dropnet/nn/conv_layers.h"

namespace dropnet {
namespace nn {

namespace {
const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::sparse_categorical_crossentropy: return "sparse_categorical_crossentropy";
    case LossKind::categorical_crossentropy: return "categorical_crossentropy";
    case LossKind::mse: return "mse";
    case LossKind::binary_crossentropy: return "binary_crossentropy";
    case LossKind::mae: return "mae";
    case LossKind::huber: return "huber";
  }
  return "?";
}

bool is_one_hot_row(const float* r, int64_t n) {
  int64_t ones = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (r[j] == 1.f) ++ones;
    else if (r[j] != 0.f) return false;
  }
  return ones == 1;
}
}  // namespace

LossKind parse_loss(const std::string& name) {
  if (name == "sparse_categorical_crossentropy") return LossKind::sparse_categorical_crossentropy;
  if (name == "categorical_crossentropy") return LossKind::categorical_crossentropy;
  if (name == "mse" || name == "mean_squared_error") return LossKind::mse;
  if (name == "binary_crossentropy") return LossKind::binary_crossentropy;
  if (name == "mae" || name == "mean_absolute_error") return LossKind::mae;
  if (name == "huber") return LossKind::huber;
  throw ValueError(str_concat("loss: expected 'sparse_categorical_crossentropy', 'categorical_crossentropy', 'mse', "
                              "'binary_crossentropy', 'mae' or 'huber', got '", name, "'"));
}

namespace {
// p's mask in host memory: the mask itself on the CPU, else `copy` read through the backend.
const float* host_mask(const Backend& be, const Param& p, std::vector<float>& copy) {
  if (be.host_memory()) return p.mask.data();
  copy.resize(static_cast<size_t>(p.size));
  be.to_host(copy.data(), p.mask.data(), copy.size() * sizeof(float));
  return copy.data();
}

// The CPU backend as a shared pointer that never deletes it (it outlives every network).
std::shared_ptr<const Backend> shared_cpu_backend() {
  return std::shared_ptr<const Backend>(&cpu_backend(), [](const Backend*) {});
}
}  // namespace

Network::Network(const std::vector<LayerSpec>& specs, const Shape& input_shape, LossKind loss, uint64_t seed,
                 std::shared_ptr<const Backend> backend)
    : backend_(backend ? std::move(backend) : shared_cpu_backend()), input_shape_(input_shape), loss_(loss),
      seed_(seed) {
  DROPNET_CHECK(!input_shape.empty(), "input_shape: expected at least one dimension, got ()");
  for (int64_t d : input_shape)
    DROPNET_CHECK(d > 0, "input_shape: expected positive dimensions, got ", shape_to_string(input_shape));
  Shape shape = input_shape;
  int64_t n_init = 0;  // dense and conv layers in order: each takes its own init stream
  for (size_t l = 0; l < specs.size(); ++l) {
    const LayerSpec& s = specs[l];
    std::unique_ptr<Layer> layer;
    const auto where = [&](const char* type) { return str_concat("layers[", l, "] ", type); };
    switch (s.type) {
      case LayerType::dense:
        DROPNET_CHECK(s.units > 0, "layers[", l, "] dense: units must be > 0, got ", s.units);
        DROPNET_CHECK(s.rate >= 0.0 && s.rate < 1.0, "layers[", l, "] dense: dropout must be in [0, 1), got ", s.rate);
        DROPNET_CHECK(std::isfinite(s.l1) && s.l1 >= 0.f, "layers[", l, "] dense: l1 must be >= 0, got ", s.l1);
        DROPNET_CHECK(std::isfinite(s.l2) && s.l2 >= 0.f, "layers[", l, "] dense: l2 must be >= 0, got ", s.l2);
        DROPNET_CHECK(shape.size() == 1, "layers[", l, "] dense: expected a flat input (features,), got ",
                      shape_to_string(shape), "; put a flatten layer before it");
        DROPNET_CHECK(s.drop_connect >= 0.0 && s.drop_connect < 1.0, "layers[", l,
                      "] dense: drop_connect must be in [0, 1), got ", s.drop_connect);
        layer = std::make_unique<DenseLayer>(s, shape, seed, n_init++);
        sparse_layers_.push_back(static_cast<DenseLayer*>(layer.get()));
        // DropConnect draws a mask over the whole dense weight each step: it always runs dense.
        if (s.drop_connect > 0.0) sparse_layers_.back()->sparse_mode = SparseMode::dense;
        sparse_layer_index_.push_back(static_cast<int64_t>(l));
        break;
      case LayerType::dropout:
      case LayerType::alpha_dropout:
        DROPNET_CHECK(s.rate >= 0.0 && s.rate < 1.0, "layers[", l, "] ",
                      s.type == LayerType::dropout ? "dropout" : "alpha_dropout", ": rate must be in [0, 1), got ",
                      s.rate);
        layer = std::make_unique<DropoutLayer>(s.rate, shape, s.type == LayerType::alpha_dropout);
        break;
      case LayerType::activation:
        DROPNET_CHECK(std::isfinite(s.slope), where("activation"), ": slope must be finite, got ", s.slope);
        layer = std::make_unique<ActivationLayer>(s.activation, shape, s.slope);
        break;
      case LayerType::reshape: {
        int64_t n = 1;
        for (int64_t d : s.target_shape) {
          DROPNET_CHECK(d > 0, where("reshape"), ": target_shape must have positive dimensions, got ",
                        shape_to_string(s.target_shape));
          n *= d;
        }
        DROPNET_CHECK(!s.target_shape.empty() && n == shape_size(shape), where("reshape"), ": cannot reshape ",
                      shape_to_string(shape), " (", shape_size(shape), " values) to ", shape_to_string(s.target_shape));
        layer = std::make_unique<ReshapeLayer>(shape, s.target_shape);
        break;
      }
      case LayerType::augment:
        DROPNET_CHECK(shape.size() == 3, where("augment"), ": expected an image input (channels, height, width), got ",
                      shape_to_string(shape));
        DROPNET_CHECK(first_param_layer_ < 0, where("augment"),
                      ": augmentation layers must come before every layer with parameters");
        DROPNET_CHECK(s.augment.pad >= 0 && s.augment.erase_p >= 0.0 && s.augment.erase_p <= 1.0 &&
                          (s.augment.erase_p == 0.0 || (s.augment.erase_max > 0.0 && s.augment.erase_max <= 1.0)),
                      where("augment"), ": expected padding >= 0, erase probability in [0, 1] and erase size in (0, 1]");
        layer = std::make_unique<AugmentLayer>(s.augment, shape);
        break;
      case LayerType::flatten:
        layer = std::make_unique<FlattenLayer>(shape);
        break;
      case LayerType::conv2d:
        layer = std::make_unique<Conv2DLayer>(s, shape, seed, n_init++, where("conv2d").c_str());
        sparse_layers_.push_back(static_cast<Conv2DLayer*>(layer.get()));
        sparse_layer_index_.push_back(static_cast<int64_t>(l));
        break;
      case LayerType::max_pool2d:
        layer = std::make_unique<Pool2DLayer>(Pool2DLayer::Kind::max, s, shape, where("max_pool2d").c_str());
        break;
      case LayerType::avg_pool2d:
        layer = std::make_unique<Pool2DLayer>(Pool2DLayer::Kind::avg, s, shape, where("avg_pool2d").c_str());
        break;
      case LayerType::global_avg_pool2d:
        layer = std::make_unique<Pool2DLayer>(Pool2DLayer::Kind::global_avg, s, shape,
                                              where("global_avg_pool2d").c_str());
        break;
      case LayerType::batch_norm: {
        DROPNET_CHECK(shape.size() == 1 || shape.size() == 3, where("batch_norm"),
                      ": expected an input (features,) or (channels, height, width), got ", shape_to_string(shape));
        DROPNET_CHECK(std::isfinite(s.momentum) && s.momentum >= 0.0 && s.momentum <= 1.0, where("batch_norm"),
                      ": momentum must be in [0, 1] (PyTorch convention: running = (1 - m)*running + m*batch), got ",
                      s.momentum);
        DROPNET_CHECK(std::isfinite(s.epsilon) && s.epsilon > 0.0, where("batch_norm"), ": epsilon must be > 0, got ",
                      s.epsilon);
        auto bn = std::make_unique<BatchNormLayer>(s, shape);
        bn_min_values_ = bn_min_values_ ? std::min(bn_min_values_, bn->values_per_channel(1)) : bn->values_per_channel(1);
        layer = std::move(bn);
        break;
      }
      case LayerType::spatial_dropout2d:
        DROPNET_CHECK(s.rate >= 0.0 && s.rate < 1.0, where("spatial_dropout2d"), ": rate must be in [0, 1), got ",
                      s.rate);
        DROPNET_CHECK(shape.size() == 3, where("spatial_dropout2d"),
                      ": expected an image input (channels, height, width), got ", shape_to_string(shape));
        layer = std::make_unique<SpatialDropoutLayer>(s.rate, shape);
        break;
    }
    shape = layer->out_shape();
    for (Param* p : layer->params()) params_.push_back(p);
    for (Param* p : layer->state()) state_.push_back(p);
    if (first_param_layer_ < 0 && !layer->params().empty()) first_param_layer_ = static_cast<int64_t>(l);
    layers_.push_back(std::move(layer));
  }
  output_shape_ = shape;
  DROPNET_CHECK(output_shape_.size() == 1 || elementwise_loss(), "layers: the network's output must be flat "
                "(features,) for ", loss_name(loss_), ", got ", shape_to_string(output_shape_),
                "; end with a dense or flatten layer");
  for (SparseCapable* layer : sparse_layers_) layer->weight().norm_rows = layer->weight_rows();
  max_width_ = n_inputs();
  for (const auto& layer : layers_) max_width_ = std::max(max_width_, layer->out_features());

  // Softmax + crossentropy: train on logits with the fused, stable loss; forward() applies softmax.
  // Sigmoid + binary crossentropy likewise (the stable loss from logits; forward applies sigmoid).
  const bool softmax_loss = loss_ == LossKind::sparse_categorical_crossentropy ||
                            loss_ == LossKind::categorical_crossentropy;
  const cpu::ActivationKind absorbed = softmax_loss ? cpu::ActivationKind::softmax : cpu::ActivationKind::sigmoid;
  if ((softmax_loss || loss_ == LossKind::binary_crossentropy) && !layers_.empty()) {
    Layer* last = layers_.back().get();
    bool fused = false;
    if (auto* d = dynamic_cast<DenseLayer*>(last)) {
      // Not with dropout after the activation: the loss would see dropped logits, not the output.
      if (specs.back().activation == absorbed && specs.back().rate == 0.0) {
        d->drop_softmax();
        fused = true;
      }
    } else if (auto* a = dynamic_cast<ActivationLayer*>(last)) {
      if (a->kind() == absorbed) {
        a->drop_softmax();
        fused = true;
      }
    }
    (softmax_loss ? softmax_fused_ : sigmoid_fused_) = fused;
  }
  const Backend& be = *backend_;
  if (!be.host_memory()) {
    for (size_t l = 0; l < layers_.size(); ++l) layers_[l]->bind(be, str_concat("layers[", l, "]"));
    for (Buffer<float>* b : {&grad_arena_, &d_a_, &d_b_, &loss_rows_, &x_device_, &dense_y_device_, &weights_device_,
                             &data_x_, &data_dense_, &data_weights_})
      b->bind(&be);
    for (Buffer<int64_t>* b : {&labels_device_, &data_labels_, &order_device_, &metric_correct_}) b->bind(&be);
    for (Buffer<double>* b : {&metric_loss_, &metric_penalty_}) b->bind(&be);
    penalty_blocks_.bind(&be);
  }
  // One gradient arena, slices padded to 16 floats (64 bytes) so each keeps Buffer's alignment.
  for (Param* p : params_) {
    grad_offsets_.push_back(grad_arena_size_);
    grad_arena_size_ += (p->size + 15) / 16 * 16;
  }
  grad_arena_.grow(static_cast<size_t>(std::max<int64_t>(grad_arena_size_, 1)));
  grad_arena_.zero(static_cast<size_t>(grad_arena_size_));
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i]->grad.alias(grad_arena_.data() + grad_offsets_[i], static_cast<size_t>(params_[i]->size));
  size_t max_param = 0;
  for (Param* p : params_) max_param = std::max(max_param, static_cast<size_t>(p->size));
  penalty_blocks_.grow(static_cast<size_t>(cpu::penalty_blocks(static_cast<int64_t>(max_param))) + 1);
  optimizer_.reset(OptimizerConfig{}, params_, be);
}

void Network::require_cpu(const char* what) const { require_host(false, *backend_, std::string(), what); }

template <class T>
const T* Network::staged(const T* host, int64_t n, Buffer<T>& staging) const {
  if (backend_->host_memory() || !host) return host;
  staging.grow(static_cast<size_t>(n));
  backend_->to_device(staging.data(), host, static_cast<size_t>(n) * sizeof(T));
  return staging.data();
}

Targets Network::staged_targets(const Targets& y, int64_t rows) {
  Targets d = y;
  d.labels = staged(y.labels, rows, labels_device_);
  d.dense = staged(y.dense, rows * n_outputs(), dense_y_device_);
  d.weights = staged(y.weights, rows, weights_device_);
  return d;
}

const float* Network::host_view(const float* data, int64_t n) {
  if (backend_->host_memory()) return data;
  host_out_.grow(static_cast<size_t>(n));
  backend_->to_host(host_out_.data(), data, static_cast<size_t>(n) * sizeof(float));
  return host_out_.data();
}

double Network::add_loss_rows(int64_t rows, double sum) {
  const float* loss = loss_rows_.data();
  if (!backend_->host_memory()) {
    host_loss_.grow(static_cast<size_t>(rows));
    backend_->to_host(host_loss_.data(), loss, static_cast<size_t>(rows) * sizeof(float));
    loss = host_loss_.data();
  }
  for (int64_t r = 0; r < rows; ++r) sum += loss[r];  // in row order: the same bits for any thread count
  return sum;
}

std::vector<LayerInfo> Network::layer_info() const {
  std::vector<LayerInfo> info;
  for (const auto& layer : layers_) {
    LayerInfo i;
    i.type = layer->type_name();
    i.output_shape = layer->out_shape();
    for (Param* p : layer->params()) i.n_params += p->size;
    info.push_back(std::move(i));
  }
  return info;
}

void Network::check_batch(const float* x, int64_t rows, const Targets& y, const char* x_name,
                          const char* y_name) const {
  DROPNET_CHECK(rows >= 1, x_name, ": expected at least one sample, got 0");
  const int64_t bad = cpu::first_non_finite(x, rows * n_inputs());
  DROPNET_CHECK(bad < 0, x_name, ": expected finite values, got ", x[bad < 0 ? 0 : bad], " at sample ",
                bad / n_inputs(), " (flat index ", bad, ")");
  if (!y.labels && !y.dense) return;
  if (y.weights) {
    for (int64_t r = 0; r < rows; ++r)
      DROPNET_CHECK(std::isfinite(y.weights[r]) && y.weights[r] >= 0.f, "sample_weight: expected finite values >= 0, got ",
                    y.weights[r], " at sample ", r);
  }
  if (loss_ == LossKind::sparse_categorical_crossentropy) {
    DROPNET_CHECK_TYPE(y.labels, y_name, ": sparse_categorical_crossentropy expects int64 labels of shape (",
                       rows, ",), got float targets");
    const int64_t n_classes = n_outputs();
    for (int64_t r = 0; r < rows; ++r)
      DROPNET_CHECK(y.labels[r] >= 0 && y.labels[r] < n_classes, y_name, ": expected labels in [0, ", n_classes,
                    "), got ", y.labels[r], " at sample ", r);
  } else {
    DROPNET_CHECK_TYPE(y.dense, y_name, ": ", loss_name(loss_), " expects float32 targets of shape (", rows, ", ",
                       n_outputs(), "), got int64 labels");
    const int64_t bad_y = cpu::first_non_finite(y.dense, rows * n_outputs());
    DROPNET_CHECK(bad_y < 0, y_name, ": expected finite values, got ", y.dense[bad_y < 0 ? 0 : bad_y], " at sample ",
                  bad_y / n_outputs());
  }
}

void Network::reserve(int64_t rows) {
  if (rows <= capacity_rows_) return;
  for (auto& layer : layers_) layer->reserve(rows);
  d_a_.grow(static_cast<size_t>(rows * max_width_));
  d_b_.grow(static_cast<size_t>(rows * max_width_));
  loss_rows_.grow(static_cast<size_t>(rows));
  capacity_rows_ = rows;
}

const float* Network::run_forward(const float* x, int64_t rows, bool training, bool bn_training,
                                  uint64_t* next_stream, uint64_t row_offset,
                                  const cpu::SumAcrossProcesses* sync_batchnorm) {
  ForwardContext ctx;
  ctx.row_offset = row_offset;
  ctx.sync_batchnorm = sync_batchnorm;
  ctx.rows = rows;
  ctx.training = training;
  ctx.bn_training = bn_training;
  ctx.seed = seed_;
  ctx.next_stream = next_stream;
  const float* cur = x;
  for (auto& layer : layers_) cur = layer->forward(cur, ctx);
  return cur;
}

void Network::compute_loss(const float* out, int64_t rows, const Targets& y, float* d_out, int64_t grad_rows) {
  const float grad_scale = 1.f / static_cast<float>(grad_rows);
  const int64_t n_out = n_outputs();
  float* loss = loss_rows_.data();
  if (loss_ == LossKind::sparse_categorical_crossentropy) {
    backend_->softmax_xent_sparse(out, y.labels, rows, n_out, grad_scale, loss, d_out);
  } else if (loss_ == LossKind::categorical_crossentropy) {
    backend_->softmax_xent_dense(out, y.dense, rows, n_out, grad_scale, loss, d_out);
  } else {
    const ElementwiseLossKind kind = loss_ == LossKind::mse   ? ElementwiseLossKind::mse
                                     : loss_ == LossKind::mae ? ElementwiseLossKind::mae
                                     : loss_ == LossKind::huber
                                         ? ElementwiseLossKind::huber
                                         : ElementwiseLossKind::binary_crossentropy_logits;
    backend_->elementwise_loss(kind, out, y.dense, rows, n_out, grad_scale, 1.f, loss, d_out);
  }
  // Sample weights scale each row's loss and its gradient (rows are independent).
  if (y.weights) backend_->weight_loss_rows(y.weights, rows, n_out, loss, d_out);
}

bool Network::elementwise_loss() const {
  return loss_ == LossKind::mse || loss_ == LossKind::mae || loss_ == LossKind::huber ||
         loss_ == LossKind::binary_crossentropy;
}

double Network::train_step(const float* x, int64_t rows, const Targets& y) {
  std::lock_guard<std::mutex> lock(mu_);
  return train_step_locked(x, rows, y);
}

void Network::train_steps(const float* x, int64_t n, const Targets& y, const int64_t* order, int64_t n_order,
                          int64_t batch, int64_t step0, int64_t step1, double* losses, int64_t* correct) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(y.labels || y.dense, "y: expected targets, got none");
  DROPNET_CHECK(batch >= 1, "batch_size: expected an int >= 1, got ", batch);
  if (!order) n_order = n;
  const int64_t steps = (n_order + batch - 1) / batch;
  DROPNET_CHECK(0 <= step0 && step0 <= step1 && step1 <= steps, "steps: expected 0 <= step0 <= step1 <= ", steps,
                ", got [", step0, ", ", step1, ")");
  if (step0 == step1) return;
  const int64_t width = n_inputs(), n_out = n_outputs();
  const int64_t rows_max = std::min(batch, n_order), first_row = step0 * batch;
  // A dataset kept on the device (keep_dataset) gives its batches there: nothing crosses per step
  // but the dropout streams' counter, which stays on the host. Otherwise each batch is gathered on
  // the host, checked, and copied in.
  const bool resident = data_rows_ > 0 && data_host_x_ == x && data_rows_ == n && data_host_w_ == y.weights &&
                        data_host_y_ == (y.labels ? static_cast<const void*>(y.labels) : y.dense);
  const Backend& gather = resident ? *backend_ : cpu_backend();
  float* bx = resident ? x_device_.grow(static_cast<size_t>(rows_max * width))
                       : batch_x_.grow(static_cast<size_t>(rows_max * width));
  int64_t* bl = !y.labels ? nullptr
                : resident ? labels_device_.grow(static_cast<size_t>(rows_max))
                           : batch_labels_.grow(static_cast<size_t>(rows_max));
  float* bd = !y.dense ? nullptr
              : resident ? dense_y_device_.grow(static_cast<size_t>(rows_max * n_out))
                         : batch_dense_y_.grow(static_cast<size_t>(rows_max * n_out));
  float* bw = !y.weights ? nullptr
              : resident ? weights_device_.grow(static_cast<size_t>(rows_max))
                         : batch_weights_.grow(static_cast<size_t>(rows_max));
  const int64_t* idx_base = order;
  if (resident && order) {
    const int64_t n_idx = std::min(n_order, step1 * batch) - first_row;
    order_device_.grow(static_cast<size_t>(n_idx));
    backend_->to_device(order_device_.data(), order + first_row, static_cast<size_t>(n_idx) * sizeof(int64_t));
    idx_base = order_device_.data() - first_row;  // indexed by lo below, never below first_row
  }
  const int64_t count = step1 - step0;
  reserve_metrics(count);
  std::vector<int64_t> batch_rows(static_cast<size_t>(count));
  for (int64_t s = step0; s < step1; ++s) {
    const int64_t lo = s * batch, rows = std::min(n_order, lo + batch) - lo, slot = s - step0;
    const int64_t* idx = order ? idx_base + lo : nullptr;
    gather.gather_rows(resident ? data_x_.data() : x, width * 4, idx, lo, rows, bx);
    if (bl) gather.gather_rows(resident ? data_labels_.data() : y.labels, 8, idx, lo, rows, bl);
    if (bd) gather.gather_rows(resident ? data_dense_.data() : y.dense, n_out * 4, idx, lo, rows, bd);
    if (bw) gather.gather_rows(resident ? data_weights_.data() : y.weights, 4, idx, lo, rows, bw);
    const Targets by{bl, bd, bw};
    if (resident) backprop(bx, rows, by, 0, rows, false, data_kind_, slot);
    else checked_backprop(bx, rows, by, 0, rows, false, slot);
    apply_gradients_locked(slot);
    batch_rows[static_cast<size_t>(slot)] = rows;
  }
  // The chunk's statistics cross once: its loss sums, correct counts and penalties.
  std::vector<double> penalty(static_cast<size_t>(count));
  fetch_metrics(count, losses, correct, penalty.data());
  for (int64_t i = 0; i < count; ++i)
    losses[i] = losses[i] / static_cast<double>(batch_rows[static_cast<size_t>(i)]) + penalty[static_cast<size_t>(i)];
  last_batch_correct_ = correct[count - 1];
}

void Network::reserve_metrics(int64_t steps) {
  metric_loss_.grow(static_cast<size_t>(steps));
  metric_correct_.grow(static_cast<size_t>(steps));
  metric_penalty_.grow(static_cast<size_t>(steps * std::max<int64_t>(n_params(), 1)));
}

bool Network::penalised(const Param& p) { return p.trainable && (p.l1 != 0.f || p.l2 != 0.f); }

void Network::fetch_metrics(int64_t steps, double* loss_sums, int64_t* correct, double* penalties) {
  if (loss_sums) backend_->to_host(loss_sums, metric_loss_.data(), static_cast<size_t>(steps) * sizeof(double));
  if (correct) backend_->to_host(correct, metric_correct_.data(), static_cast<size_t>(steps) * sizeof(int64_t));
  if (!penalties) return;
  const int64_t np = n_params();
  bool any = false;
  for (const Param* p : params_) any = any || penalised(*p);
  std::vector<double> values(any ? static_cast<size_t>(steps * np) : 0);
  if (any) backend_->to_host(values.data(), metric_penalty_.data(), values.size() * sizeof(double));
  for (int64_t s = 0; s < steps; ++s) {
    // Parameters in order, as the CPU has always added them (an unpenalised one adds an exact 0).
    double total = 0.0;
    for (int64_t i = 0; i < np; ++i)
      if (penalised(*params_[static_cast<size_t>(i)])) total += values[static_cast<size_t>(s * np + i)];
    penalties[s] = total;
  }
}

bool Network::keep_dataset(const float* x, int64_t n, const Targets& y) {
  std::lock_guard<std::mutex> lock(mu_);
  release_dataset_locked();
  if (backend_->host_memory()) return false;  // the batches are gathered from x itself
  DROPNET_CHECK(y.labels || y.dense, "y: expected targets, got none");
  check_batch(x, n, y, "x", "y");
  try {
    backend_->to_device(data_x_.grow(static_cast<size_t>(n * n_inputs())), x,
                        static_cast<size_t>(n * n_inputs()) * sizeof(float));
    if (y.weights)
      backend_->to_device(data_weights_.grow(static_cast<size_t>(n)), y.weights, static_cast<size_t>(n) * sizeof(float));
    if (y.labels)
      backend_->to_device(data_labels_.grow(static_cast<size_t>(n)), y.labels, static_cast<size_t>(n) * sizeof(int64_t));
    else
      backend_->to_device(data_dense_.grow(static_cast<size_t>(n * n_outputs())), y.dense,
                          static_cast<size_t>(n * n_outputs()) * sizeof(float));
  } catch (...) {
    release_dataset_locked();
    throw;
  }
  data_host_x_ = x;
  data_host_y_ = y.labels ? static_cast<const void*>(y.labels) : y.dense;
  data_host_w_ = y.weights;
  data_kind_ = correct_kind(y, n);
  data_rows_ = n;
  return true;
}

void Network::release_dataset() {
  std::lock_guard<std::mutex> lock(mu_);
  release_dataset_locked();
}

void Network::release_dataset_locked() {
  for (Buffer<float>* b : {&data_x_, &data_dense_, &data_weights_}) b->release();
  data_labels_.release();
  data_host_x_ = nullptr;
  data_host_y_ = nullptr;
  data_host_w_ = nullptr;
  data_rows_ = 0;
}

double Network::compute_gradients(const float* x, int64_t rows, const Targets& y, uint64_t row_offset,
                                  int64_t grad_rows) {
  std::lock_guard<std::mutex> lock(mu_);
  require_cpu("compute_gradients (data-parallel training)");
  return compute_gradients_locked(x, rows, y, row_offset, grad_rows, true);
}

void Network::set_batchnorm_sum(std::function<void(double*, int64_t)> sum) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sum) require_cpu("synchronised batch norm");
  batchnorm_sum_ = std::move(sum);
  batchnorm_across_.ctx = this;
  batchnorm_across_.sum = [](void* ctx, double* data, int64_t n) {
    static_cast<Network*>(ctx)->batchnorm_sum_(data, n);
  };
}

double Network::apply_gradients() {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(gradients_ready_, "apply_gradients: no gradients to apply; call compute_gradients first "
                "(each compute_gradients feeds one apply_gradients)");
  reserve_metrics(1);
  apply_gradients_locked(0);
  double penalty = 0.0;
  fetch_metrics(1, nullptr, nullptr, &penalty);
  return penalty;
}

double Network::train_step_locked(const float* x, int64_t rows, const Targets& y) {
  reserve_metrics(1);
  checked_backprop(x, rows, y, 0, rows, false, 0);
  apply_gradients_locked(0);
  double loss_sum = 0.0, penalty = 0.0;
  fetch_metrics(1, &loss_sum, &last_batch_correct_, &penalty);  // the step's one crossing
  return loss_sum / static_cast<double>(rows) + penalty;
}

double Network::compute_gradients_locked(const float* x, int64_t rows, const Targets& y, uint64_t row_offset,
                                         int64_t grad_rows, bool split) {
  reserve_metrics(1);
  checked_backprop(x, rows, y, row_offset, grad_rows, split, 0);
  double loss_sum = 0.0;
  fetch_metrics(1, &loss_sum, &last_batch_correct_, nullptr);
  return loss_sum;
}

void Network::checked_backprop(const float* x, int64_t rows, const Targets& y, uint64_t row_offset, int64_t grad_rows,
                               bool split, int64_t slot) {
  DROPNET_CHECK(y.labels || y.dense, "y: expected targets, got none");
  DROPNET_CHECK(grad_rows >= rows, "grad_rows: expected an int >= the batch's rows (", rows, "), got ", grad_rows);
  check_batch(x, rows, y, "x", "y");
  const CorrectKind kind = correct_kind(y, rows);
  backprop(staged(x, rows * n_inputs(), x_device_), rows, staged_targets(y, rows), row_offset, grad_rows, split, kind,
           slot);
}

void Network::backprop(const float* x, int64_t rows, const Targets& y, uint64_t row_offset, int64_t grad_rows,
                       bool split, CorrectKind kind, int64_t slot) {
  check_bn_batch(rows);
  DenormalsFlushed ftz;
  reserve(rows);
  prepare_execution(rows, true, !split);
  uint64_t stream = rng_offset_;
  const float* out =
      run_forward(x, rows, true, true, &stream, row_offset, split && batchnorm_sum_ ? &batchnorm_across_ : nullptr);
  compute_loss(out, rows, y, d_a_.data(), grad_rows);
  // The loss sum and the training accuracy (Keras' running batch accuracy, from the logits this
  // step computed anyway) stay in the backend's memory until the caller fetches them.
  backend_->batch_metrics(loss_rows_.data(), rows, out, n_outputs(), y.labels, y.dense, kind,
                          metric_loss_.data() + slot, metric_correct_.data() + slot);

  if (first_param_layer_ >= 0) {
    float* d = d_a_.data();
    float* spare = d_b_.data();
    for (int64_t l = static_cast<int64_t>(layers_.size()) - 1; l >= first_param_layer_; --l) {
      float* d_in = layers_[static_cast<size_t>(l)]->backward(d, spare, l > first_param_layer_, rows);
      if (d_in == spare) std::swap(d, spare);
    }
  }
  pending_stream_ = stream;
  gradients_ready_ = true;
}

void Network::apply_gradients_locked(int64_t slot) {
  DenormalsFlushed ftz;
  const int64_t np = n_params();
  for (int64_t i = 0; i < np; ++i) {
    Param* p = params_[static_cast<size_t>(i)];
    if (!p->trainable) continue;
    // The penalty's value waits in the backend's memory with the step's other metrics.
    double* value = penalised(*p) ? metric_penalty_.data() + slot * np + i : nullptr;
    if (p->run_sparse)
      backend_->weight_penalty_grad(p->sparse->nnz, p->sparse->values.data(), p->sparse->grad.data(), nullptr, p->l1,
                                    p->l2, penalty_blocks_.data(), value);
    else
      backend_->weight_penalty_grad(p->size, p->value.data(), p->grad.data(), p->mask_or_null(), p->l1, p->l2,
                                    penalty_blocks_.data(), value);
  }
  optimizer_.step(params_);
  mark_updated();
  apply_max_norm();
  rng_offset_ = pending_stream_;
  gradients_ready_ = false;
}

void Network::check_bn_batch(int64_t rows) const {
  DROPNET_CHECK(bn_min_values_ == 0 || rows * bn_min_values_ >= 2, "x: batch norm with batch statistics needs more "
                "than one value per channel, got a batch of ", rows, " sample(s) with ", bn_min_values_,
                " value(s) per channel each");
}

void Network::forward(const float* x, int64_t rows, bool training, std::optional<uint64_t> stream_offset, float* out,
                      bool bn_training) {
  std::lock_guard<std::mutex> lock(mu_);
  check_batch(x, rows, Targets{}, "x", "y");
  if (bn_training) check_bn_batch(rows);
  DenormalsFlushed ftz;
  reserve(rows);
  prepare_execution(rows, false);
  uint64_t stream = stream_offset ? *stream_offset : rng_offset_;
  const float* y = run_forward(staged(x, rows * n_inputs(), x_device_), rows, training, bn_training, &stream);
  backend_->to_host(out, y, static_cast<size_t>(rows * n_outputs()) * sizeof(float));
  if (softmax_fused_) cpu::softmax_rows_forward(out, out, rows, n_outputs());
  if (sigmoid_fused_) cpu::activation_forward(cpu::ActivationKind::sigmoid, out, out, rows * n_outputs(), 0.f);
  if (training && !stream_offset) rng_offset_ = stream;
}

bool Network::can_count_correct(const Targets& y, int64_t rows) const {
  if (loss_ == LossKind::sparse_categorical_crossentropy || loss_ == LossKind::categorical_crossentropy ||
      loss_ == LossKind::binary_crossentropy)
    return true;
  const int64_t n_out = n_outputs();
  for (int64_t r = 0; r < rows; ++r)
    if (!is_one_hot_row(y.dense + r * n_out, n_out)) return false;
  return true;
}

CorrectKind Network::correct_kind(const Targets& y, int64_t rows) const {
  if (!can_count_correct(y, rows)) return CorrectKind::none;
  // Binary accuracy per output: the loss reads out as logits (the final sigmoid, if any, was
  // absorbed), so an output predicts 1 when it is > 0, i.e. its probability > 0.5.
  if (loss_ == LossKind::binary_crossentropy) return CorrectKind::binary;
  return y.labels ? CorrectKind::labels : CorrectKind::dense_argmax;
}

int64_t Network::count_correct_rows(const float* out, int64_t rows, const Targets& y) const {
  const CorrectKind kind = correct_kind(y, rows);
  int64_t correct = 0;
  for (int64_t r = 0; r < rows; ++r) correct += correct_in_row(kind, out, n_outputs(), y.labels, y.dense, r);
  return correct;
}

void Network::evaluate(const float* x, int64_t rows, const Targets& y, int64_t batch_size, double* loss_sum,
                       double* n_correct, double* weight_sum) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(batch_size >= 1, "batch_size: expected an int >= 1, got ", batch_size);
  DROPNET_CHECK(y.labels || y.dense, "y: expected targets, got none");
  check_batch(x, rows, y, "x", "y");
  DenormalsFlushed ftz;
  const int64_t n_out = n_outputs();
  const bool count_correct = can_count_correct(y, rows);
  reserve(std::min(batch_size, rows));
  prepare_execution(std::min(batch_size, rows), false);
  double total = 0.0, correct = 0.0, weights = 0.0;
  for (int64_t b = 0; b < rows; b += batch_size) {
    const int64_t n = std::min(batch_size, rows - b);
    Targets yb;
    if (y.labels) yb.labels = y.labels + b;
    if (y.dense) yb.dense = y.dense + b * n_out;
    if (y.weights) yb.weights = y.weights + b;
    const float* out_device = run_forward(staged(x + b * n_inputs(), n * n_inputs(), x_device_), n, false, false,
                                          nullptr);
    compute_loss(out_device, n, staged_targets(yb, n), nullptr, n);
    total = add_loss_rows(n, total);
    const float* out = count_correct ? host_view(out_device, n * n_out) : nullptr;
    if (!y.weights) {
      if (count_correct) correct += static_cast<double>(count_correct_rows(out, n, yb));
      weights += static_cast<double>(n);
      continue;
    }
    // Weighted: each row's count times its weight, rows in order.
    for (int64_t r = 0; r < n; ++r) {
      Targets one;
      if (yb.labels) one.labels = yb.labels + r;
      if (yb.dense) one.dense = yb.dense + r * n_out;
      if (count_correct)
        correct += static_cast<double>(yb.weights[r]) * static_cast<double>(count_correct_rows(out + r * n_out, 1, one));
      weights += static_cast<double>(yb.weights[r]);
    }
  }
  *loss_sum = total;
  *n_correct = correct;
  if (weight_sum) *weight_sum = weights;
}

void Network::set_params(const std::vector<const float*>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(values.size() == params_.size(), "params: expected ", params_.size(), " arrays, got ", values.size());
  sync_dense_all();
  mark_compressed_stale();
  for (size_t i = 0; i < params_.size(); ++i) {
    Param* p = params_[i];
    float* w = p->value.data();
    backend_->to_device(w, values[i], static_cast<size_t>(p->size) * sizeof(float));
    std::vector<float> copy;
    if (p->has_mask) buffer_mask(backend_.get(), w, host_mask(*backend_, *p, copy), static_cast<size_t>(p->size));
  }
}

void Network::copy_state(int64_t i, float* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Param& p = state(i);
  backend_->to_host(out, p.value.data(), static_cast<size_t>(p.size) * sizeof(float));
}

void Network::set_state(const std::vector<const float*>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(values.size() == state_.size(), "state: expected ", state_.size(), " arrays, got ", values.size());
  for (size_t i = 0; i < state_.size(); ++i) {
    const Param* p = state_[i];
    // Running variances feed a square root: reject negatives before anything is written.
    if (i % 2 == 1)
      for (int64_t j = 0; j < p->size; ++j)
        DROPNET_CHECK(values[i][j] >= 0.f, "state[", i, "]: running variance must be >= 0, got ", values[i][j],
                      " at index ", j);
  }
  for (size_t i = 0; i < state_.size(); ++i)
    backend_->to_device(state_[i]->value.data(), values[i], static_cast<size_t>(state_[i]->size) * sizeof(float));
}

void Network::copy_param(int64_t i, float* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  sync_dense(i);
  const Param& p = param(i);
  backend_->to_host(out, p.value.data(), static_cast<size_t>(p.size) * sizeof(float));
}

void Network::copy_grad(int64_t i, float* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  sync_dense(i);
  const Param& p = param(i);
  backend_->to_host(out, p.grad.data(), static_cast<size_t>(p.size) * sizeof(float));
}

void Network::set_mask(int64_t i, const float* mask) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(i >= 0 && i < n_params(), "param_index: expected an int in [0, ", n_params(), "), got ", i);
  Param* p = params_[static_cast<size_t>(i)];
  for (int64_t j = 0; mask && j < p->size; ++j)
    DROPNET_CHECK(mask[j] == 0.f || mask[j] == 1.f, "mask: expected only 0 and 1, got ", mask[j], " at flat index ", j);
  // The pattern changes: bring the dense copies up to date and drop the compressed one.
  sync_dense(i);
  p->sparse.reset();
  p->run_sparse = false;
  if (!mask) {
    p->has_mask = false;
    return;
  }
  int64_t kept = 0;
  for (int64_t j = 0; j < p->size; ++j) kept += mask[j] != 0.f;
  p->mask_kept = kept;
  p->mask.grow(static_cast<size_t>(p->size));
  backend_->to_device(p->mask.data(), mask, static_cast<size_t>(p->size) * sizeof(float));
  p->has_mask = true;
  buffer_mask(backend_.get(), p->value.data(), mask, static_cast<size_t>(p->size));
  buffer_mask(backend_.get(), p->grad.data(), mask, static_cast<size_t>(p->size));
  if (optimizer_.slots_per_param() > 0) optimizer_.apply_mask(i, mask, p->size);
}

void Network::copy_mask(int64_t i, float* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Param& p = param(i);
  backend_->to_host(out, p.mask.data(), static_cast<size_t>(p.size) * sizeof(float));
}

void Network::set_optimizer(const OptimizerConfig& config) {
  std::lock_guard<std::mutex> lock(mu_);
  validate_optimizer_config(config);
  sync_dense_all();
  mark_compressed_stale();
  optimizer_.reset(config, params_, *backend_);
}

void Network::set_lr(double lr) {
  std::lock_guard<std::mutex> lock(mu_);
  optimizer_.set_lr(lr);
}

void Network::copy_slot(int64_t k, float* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  sync_dense(slot_param(k));
  const size_t n = static_cast<size_t>(param(slot_param(k)).size);
  backend_->to_host(out, optimizer_.slots()[static_cast<size_t>(k)].data(), n * sizeof(float));
}

void Network::set_optimizer_state(int64_t step, const std::vector<const float*>& slots) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(step >= 0, "state['step']: expected an int >= 0, got ", step);
  DROPNET_CHECK(static_cast<int64_t>(slots.size()) == n_optimizer_slots(), "state['slots']: expected ",
                n_optimizer_slots(), " arrays, got ", slots.size());
  sync_dense_all();
  mark_compressed_stale();
  for (size_t k = 0; k < slots.size(); ++k) copy_into_slot(static_cast<int64_t>(k), slots[k]);
  optimizer_.set_step_count(step);
}

void Network::set_optimizer_slot(int64_t k, const float* values) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(k >= 0 && k < n_optimizer_slots(), "slot: expected an index in [0, ", n_optimizer_slots(),
                "), got ", k);
  sync_dense_all();
  mark_compressed_stale();
  copy_into_slot(k, values);
}

void Network::set_optimizer_step(int64_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(step >= 0, "step: expected an int >= 0, got ", step);
  optimizer_.set_step_count(step);
}

void Network::copy_into_slot(int64_t k, const float* values) {
  const int64_t pi = slot_param(k);
  const Param& p = param(pi);
  float* slot = optimizer_.slots()[static_cast<size_t>(k)].data();
  backend_->to_device(slot, values, static_cast<size_t>(p.size) * sizeof(float));
  std::vector<float> copy;
  if (p.has_mask) buffer_mask(backend_.get(), slot, host_mask(*backend_, p, copy), static_cast<size_t>(p.size));
}

// ------------------------------------------------------------------------------ sparse execution

std::vector<const float*> Network::dense_slots(int64_t i) const {
  std::vector<const float*> out;
  const int64_t k = optimizer_.slots_per_param();
  for (int64_t s = 0; s < k; ++s) out.push_back(optimizer_.slots()[static_cast<size_t>(i * k + s)].data());
  return out;
}

void Network::sync_dense(int64_t i) const {
  Param* p = params_[static_cast<size_t>(i)];
  if (!p->sparse || p->sparse->dense_current) return;
  std::vector<float*> slots;
  for (const float* s : dense_slots(i)) slots.push_back(const_cast<float*>(s));  // optimizer_ is mutable
  p->sparse->scatter(p->value.data(), p->grad.data(), slots);
  p->sparse->dense_current = true;
}

void Network::sync_dense_all() const {
  for (int64_t i = 0; i < n_params(); ++i) sync_dense(i);
}

void Network::mark_compressed_stale() {
  for (Param* p : params_)
    if (p->sparse) p->sparse->compressed_current = false;
}

void Network::mark_updated() {
  for (Param* p : params_) {
    if (!p->sparse) continue;
    if (p->run_sparse) p->sparse->dense_current = false;
    else p->sparse->compressed_current = false;
  }
}

void Network::prepare_execution(int64_t rows, bool training_step, bool allow_sparse) {
  for (size_t j = 0; j < sparse_layers_.size(); ++j) {
    SparseCapable* layer = sparse_layers_[j];
    Param& w = layer->weight();
    bool want = false;
    // On a device a pruned dense layer runs sparse only when asked ("auto" has no device
    // break-even to go by) and a pruned convolution always runs dense (set_sparse_mode).
    const bool host = backend_->host_memory();
    if (allow_sparse && w.has_mask && layer->sparse_mode != SparseMode::dense &&
        (host || layer->sparse_mode == SparseMode::sparse)) {
      if (layer->sparse_mode == SparseMode::sparse) {
        want = true;
      } else {
        layer->last_break_even = layer->break_even(rows);
        const BreakEven& be = layer->last_break_even;
        want = static_cast<double>(w.mask_kept) <
               (training_step ? be.density : be.inference_density) * static_cast<double>(w.size);
      }
    }
    const int64_t i = std::find(params_.begin(), params_.end(), &w) - params_.begin();
    if (want) {
      if (!w.sparse) {
        sync_dense(i);
        w.sparse = std::make_unique<SparseWeight>();
        const int64_t wrows = layer->weight_rows();
        std::vector<float> copy;
        w.sparse->build(host_mask(*backend_, w, copy), wrows, w.size / wrows, *backend_);
      }
      if (!w.sparse->compressed_current) {
        w.sparse->gather(w.value.data(), w.grad.data(), dense_slots(i));
        w.sparse->compressed_current = true;
      }
    } else {
      sync_dense(i);
    }
    w.run_sparse = want;
  }
}

SparseCapable* Network::sparse_layer_of(int64_t param_index) const {
  const Param* p = params_[static_cast<size_t>(param_index)];
  for (size_t j = 0; j < sparse_layers_.size(); ++j)
    for (Param* q : layers_[static_cast<size_t>(sparse_layer_index_[j])]->params())
      if (q == p) return sparse_layers_[j];
  return nullptr;
}

void Network::set_sparse_mode(int64_t param_index, SparseMode mode) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(param_index >= 0 && param_index < n_params(), "param_index: expected an int in [0, ", n_params(),
                "), got ", param_index);
  SparseCapable* layer = sparse_layer_of(param_index);
  DROPNET_CHECK(layer != nullptr, "param_index: parameter ", param_index,
                " belongs to no dense or conv2d layer");
  const auto* dense = dynamic_cast<const DenseLayer*>(layer);
  DROPNET_CHECK(!(dense && dense->drop_connect() && mode != SparseMode::dense), "param_index: parameter ", param_index,
                " belongs to a DropConnect layer, which always runs dense");
  // A device has the sparse products of a dense layer only (Backend::spmm_xt, sddmm).
  const int64_t l = sparse_layer_index_[static_cast<size_t>(
      std::find(sparse_layers_.begin(), sparse_layers_.end(), layer) - sparse_layers_.begin())];
  require_host(dense || mode != SparseMode::sparse, *backend_, str_concat("layers[", l, "] conv2d"),
               ": sparse execution", " (a pruned conv2d layer runs dense with its mask there)");
  layer->sparse_mode = mode;
}

std::vector<SparseLayerInfo> Network::sparse_info() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SparseLayerInfo> out;
  for (size_t j = 0; j < sparse_layers_.size(); ++j) {
    const SparseCapable* d = sparse_layers_[j];
    const Param& w = d->weight();
    SparseLayerInfo info;
    info.layer = sparse_layer_index_[j];
    info.param_index = std::find(params_.begin(), params_.end(), &w) - params_.begin();
    info.density = w.has_mask ? static_cast<double>(w.mask_kept) / static_cast<double>(w.size) : 1.0;
    info.mode = d->sparse_mode;
    info.sparse = w.run_sparse;
    info.break_even = d->last_break_even;
    out.push_back(info);
  }
  return out;
}

void Network::set_trainable(int64_t i, bool trainable) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(i >= 0 && i < n_params(), "param_index: expected an int in [0, ", n_params(), "), got ", i);
  params_[static_cast<size_t>(i)]->trainable = trainable;
}

void Network::set_max_norm(int64_t i, float max_norm) {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(i >= 0 && i < n_params(), "param_index: expected an int in [0, ", n_params(), "), got ", i);
  DROPNET_CHECK(std::isfinite(max_norm) && max_norm >= 0.f, "max_norm: expected a finite float > 0 (0: none), got ",
                max_norm);
  SparseCapable* layer = sparse_layer_of(i);
  DROPNET_CHECK(layer != nullptr && &layer->weight() == params_[static_cast<size_t>(i)], "param_index: parameter ", i,
                " is not the weight of a dense or conv2d layer");
  params_[static_cast<size_t>(i)]->max_norm = max_norm;
}

void Network::apply_max_norm() {
  for (int64_t i = 0; i < n_params(); ++i) {
    Param* p = params_[static_cast<size_t>(i)];
    if (p->max_norm <= 0.f || !p->trainable) continue;
    // The constraint works on the dense copy; a compressed copy then gathers again before use.
    sync_dense(i);
    if (p->sparse) p->sparse->compressed_current = false;
    backend_->max_norm_rows(p->value.data(), p->norm_rows, p->size / p->norm_rows, p->max_norm);
  }
}

bool Network::copy_keep_bits(int64_t layer, int64_t rows, uint64_t* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  DROPNET_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers_.size()), "layer: expected an index in [0, ",
                layers_.size(), "), got ", layer);
  const Layer& l = *layers_[static_cast<size_t>(layer)];
  DROPNET_CHECK(rows >= 0 && rows <= capacity_rows_, "rows: expected at most ", capacity_rows_, ", got ", rows);
  const uint64_t* bits = l.keep_bits();
  if (!bits) return false;
  const int64_t n = rows * l.keep_bits_per_row(), words = (n + 63) / 64;
  backend_->to_host(out, bits, static_cast<size_t>(words) * sizeof(uint64_t));
  // A GEMM epilogue leaves the bits past the batch's last element as they were: clear them.
  if (n % 64) out[words - 1] &= (uint64_t{1} << (n % 64)) - 1;
  return true;
}

void Network::set_rng_offset(uint64_t o) {
  std::lock_guard<std::mutex> lock(mu_);
  rng_offset_ = o;
}

}  // namespace nn
}  // namespace dropnet

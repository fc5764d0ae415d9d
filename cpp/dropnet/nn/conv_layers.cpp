#include "dropnet/nn/conv_layers.h"

#include <cmath>
#include <cstring>

#include "dropnet/core/error.h"
#include "dropnet/core/philox.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/nn/sparse_conv.h"

namespace dropnet {
namespace nn {

namespace {

void alloc_param(Param& p, Shape shape, float fill) {
  p.shape = std::move(shape);
  p.size = shape_size(p.shape);
  p.value.grow(static_cast<size_t>(p.size));
  for (int64_t i = 0; i < p.size; ++i) p.value.data()[i] = fill;
  p.grad.grow(static_cast<size_t>(p.size));
  p.grad.zero(static_cast<size_t>(p.size));
}

void require_image(const Shape& in, const char* where) {
  DROPNET_CHECK(in.size() == 3, where, ": expected an image input (channels, height, width), got ",
                shape_to_string(in));
}

// Output length along one axis for a window of `span` = dilation·(k − 1) + 1 cells; throws when
// the window does not fit.
int64_t window_outputs(int64_t size, int64_t pad_total, int64_t span, int64_t stride, const char* where,
                       const char* axis) {
  const int64_t padded = size + pad_total;
  DROPNET_CHECK(span <= padded, where, ": the window (", span, " cells along ", axis, ", dilation included) is larger than the ",
                axis, " of the padded input (", padded, ")");
  return (padded - span) / stride + 1;
}

void check_window(const LayerSpec& s, const char* where) {
  for (int a = 0; a < 2; ++a) {
    DROPNET_CHECK(s.kernel[a] >= 1, where, ": window sizes must be >= 1, got (", s.kernel[0], ", ", s.kernel[1], ")");
    DROPNET_CHECK(s.strides[a] >= 1, where, ": strides must be >= 1, got (", s.strides[0], ", ", s.strides[1], ")");
    DROPNET_CHECK(s.dilation[a] >= 1, where, ": dilation must be >= 1, got (", s.dilation[0], ", ", s.dilation[1], ")");
    DROPNET_CHECK(s.padding[a] >= 0, where, ": padding must be >= 0, got (", s.padding[0], ", ", s.padding[1], ")");
  }
}

bool conv_activation_ok(cpu::ActivationKind k) {
  return k == cpu::ActivationKind::identity || k == cpu::ActivationKind::relu ||
         k == cpu::ActivationKind::leaky_relu || k == cpu::ActivationKind::tanh || k == cpu::ActivationKind::sigmoid;
}

}  // namespace

// ------------------------------------------------------------------------------------- conv2d

Conv2DLayer::Conv2DLayer(const LayerSpec& spec, const Shape& in_shape, uint64_t seed, int64_t init_index,
                         const char* where)
    : Layer(in_shape, in_shape), filters_(spec.units), activation_(spec.activation), use_bias_(spec.use_bias) {
  require_image(in_shape, where);
  DROPNET_CHECK(filters_ >= 1, where, ": filters must be >= 1, got ", filters_);
  check_window(spec, where);
  DROPNET_CHECK(conv_activation_ok(activation_), where, ": activation '", activation_name(activation_),
                "' cannot be fused into a convolution; use None, 'relu', 'leaky_relu', 'tanh' or 'sigmoid' and a "
                "separate activation layer");
  DROPNET_CHECK(std::isfinite(spec.l1) && spec.l1 >= 0.f, where, ": l1 must be >= 0, got ", spec.l1);
  DROPNET_CHECK(std::isfinite(spec.l2) && spec.l2 >= 0.f, where, ": l2 must be >= 0, got ", spec.l2);
  cpu::ConvGeometry& g = geom_;
  g.C = in_shape[0];
  g.H = in_shape[1];
  g.W = in_shape[2];
  g.kh = spec.kernel[0];
  g.kw = spec.kernel[1];
  g.stride_h = spec.strides[0];
  g.stride_w = spec.strides[1];
  g.dil_h = spec.dilation[0];
  g.dil_w = spec.dilation[1];
  const int64_t span_h = g.dil_h * (g.kh - 1) + 1, span_w = g.dil_w * (g.kw - 1) + 1;
  int64_t pad_h_total, pad_w_total;
  if (spec.same_padding) {
    // Keras "same": ceil(size / stride) outputs, the odd padding cell at the bottom / right.
    const int64_t oh = (g.H + g.stride_h - 1) / g.stride_h, ow = (g.W + g.stride_w - 1) / g.stride_w;
    pad_h_total = std::max<int64_t>((oh - 1) * g.stride_h + span_h - g.H, 0);
    pad_w_total = std::max<int64_t>((ow - 1) * g.stride_w + span_w - g.W, 0);
    g.pad_top = pad_h_total / 2;
    g.pad_left = pad_w_total / 2;
  } else {
    g.pad_top = spec.padding[0];
    g.pad_left = spec.padding[1];
    pad_h_total = 2 * g.pad_top;
    pad_w_total = 2 * g.pad_left;
  }
  g.OH = window_outputs(g.H, pad_h_total, span_h, g.stride_h, where, "height");
  g.OW = window_outputs(g.W, pad_w_total, span_w, g.stride_w, where, "width");
  out_shape_ = Shape{filters_, g.OH, g.OW};

  alloc_param(weight_, Shape{filters_, g.C, g.kh, g.kw}, 0.f);
  weight_.l1 = spec.l1;
  weight_.l2 = spec.l2;
  // Automatic: PyTorch's default (torch_uniform), for Dense layers too. Measured on the small CNN
  // of benchmarks/suites/cnn_epoch.py (Fashion-MNIST, Adam, 10 epochs): test accuracy 92.2 / 92.0 / 91.2 % for seeds
  // 0-2 (best epoch 92.2 / 92.0 / 91.6), against 90.8 % with He / Glorot everywhere, 91.6 / 91.4 %
  // with He convolutions and 91.5 % with torch_uniform convolutions only (seed 0). Batch norm undoes
  // a convolution's weight scale in the forward pass, so smaller weights take larger relative
  // Adam steps; the wide dense layer after it likes the smaller start too. LeNet-300-100 on
  // Fashion-MNIST ends the same (88.3 % mean of 3 seeds, He: 88.1 %).
  const InitKind init = spec.init == InitKind::automatic ? InitKind::torch_uniform : spec.init;
  const double fan_in = static_cast<double>(g.C * g.kh * g.kw), fan_out = static_cast<double>(filters_ * g.kh * g.kw);
  if (use_bias_) alloc_param(bias_, Shape{filters_}, 0.f);
  init_layer_params(init, fan_in, fan_out, weight_.value.data(), weight_.size, use_bias_ ? bias_.value.data() : nullptr,
                    use_bias_ ? filters_ : 0, seed, init_index);
}

std::vector<Param*> Conv2DLayer::params() {
  if (use_bias_) return {&weight_, &bias_};
  return {&weight_};
}

void Conv2DLayer::bind(const Backend& backend, const std::string& where) {
  backend_ = &backend;
  bind_param(weight_, backend, where);
  if (use_bias_) bind_param(bias_, backend, where);
  y_.bind(&backend);
  workspace_.bind(&backend);
}

void Conv2DLayer::reserve(int64_t rows) { y_.grow(static_cast<size_t>(rows * out_features())); }

BreakEven Conv2DLayer::break_even(int64_t rows) const { return sparse_conv_break_even(geom_, filters_, rows); }

const float* Conv2DLayer::forward(const float* x, const ForwardContext& ctx) {
  x_ = x;
  if (weight_.run_sparse) {
    const int64_t ws = sparse_conv_forward_workspace(geom_, get_num_threads());
    workspace_.grow(static_cast<size_t>(ws));
    sparse_conv_forward(x, ctx.rows, geom_, *weight_.sparse, use_bias_ ? bias_.value.data() : nullptr,
                        static_cast<cpu::Activation>(activation_), kLeakySlope, y_.data(), workspace_.data(), ws);
    return y_.data();
  }
  const int64_t ws = be().conv2d_forward_workspace(geom_, filters_, use_bias_);
  workspace_.grow(static_cast<size_t>(ws));
  be().conv2d_forward(x, ctx.rows, geom_, weight_.value.data(), filters_, use_bias_ ? bias_.value.data() : nullptr,
                      static_cast<cpu::Activation>(activation_), kLeakySlope, y_.data(), workspace_.data(), ws);
  return y_.data();
}

float* Conv2DLayer::backward(float* d_out, float* spare, bool need_d_in, int64_t rows) {
  const int64_t plane = geom_.OH * geom_.OW;
  if (activation_ != cpu::ActivationKind::identity)
    be().activation_backward(activation_, rows * filters_, plane, d_out, y_.data(), nullptr, nullptr, 1.f,
                             kLeakySlope, d_out, nullptr);
  if (use_bias_) bias_.grad.zero(static_cast<size_t>(bias_.size));
  float* dx = need_d_in ? spare : nullptr;
  if (weight_.run_sparse) {  // the weight gradient at the stored entries only, into the copy's grad
    SparseWeight& sw = *weight_.sparse;
    const int64_t ws = sparse_conv_backward_workspace(geom_, rows, filters_, sw.nnz, get_num_threads());
    workspace_.grow(static_cast<size_t>(ws));
    sparse_conv_backward(d_out, x_, rows, geom_, sw, dx, sw.grad.data(), use_bias_ ? bias_.grad.data() : nullptr,
                         workspace_.data(), ws);
    return dx;
  }
  weight_.grad.zero(static_cast<size_t>(weight_.size));
  const int64_t ws = be().conv2d_backward_workspace(geom_, rows, filters_);
  workspace_.grow(static_cast<size_t>(ws));
  be().conv2d_backward(d_out, x_, rows, geom_, weight_.value.data(), filters_, dx, weight_.grad.data(),
                       use_bias_ ? bias_.grad.data() : nullptr, workspace_.data(), ws);
  return dx;
}

// ------------------------------------------------------------------------------------- pooling

Pool2DLayer::Pool2DLayer(Kind kind, const LayerSpec& spec, const Shape& in_shape, const char* where)
    : Layer(in_shape, in_shape), kind_(kind), count_include_pad_(spec.count_include_pad) {
  require_image(in_shape, where);
  geom_.H = in_shape[1];
  geom_.W = in_shape[2];
  if (kind_ == Kind::global_avg) {
    out_shape_ = Shape{in_shape[0]};
    return;
  }
  check_window(spec, where);
  DROPNET_CHECK(!spec.same_padding, where, ": padding 'same' is not supported for pooling; use 'valid' or an int");
  geom_.kh = spec.kernel[0];
  geom_.kw = spec.kernel[1];
  geom_.stride_h = spec.strides[0];
  geom_.stride_w = spec.strides[1];
  geom_.pad_h = spec.padding[0];
  geom_.pad_w = spec.padding[1];
  DROPNET_CHECK(2 * geom_.pad_h <= geom_.kh && 2 * geom_.pad_w <= geom_.kw, where,
                ": padding must be at most half the pool size, got padding (", geom_.pad_h, ", ", geom_.pad_w,
                ") for pool size (", geom_.kh, ", ", geom_.kw, ")");
  geom_.OH = window_outputs(geom_.H, 2 * geom_.pad_h, geom_.kh, geom_.stride_h, where, "height");
  geom_.OW = window_outputs(geom_.W, 2 * geom_.pad_w, geom_.kw, geom_.stride_w, where, "width");
  out_shape_ = Shape{in_shape[0], geom_.OH, geom_.OW};
}

const char* Pool2DLayer::type_name() const {
  switch (kind_) {
    case Kind::max: return "max_pool2d";
    case Kind::avg: return "avg_pool2d";
    case Kind::global_avg: return "global_avg_pool2d";
  }
  return "?";
}

void Pool2DLayer::bind(const Backend& backend, const std::string&) {
  backend_ = &backend;
  y_.bind(&backend);
  indices_.bind(&backend);
}

void Pool2DLayer::reserve(int64_t rows) {
  y_.grow(static_cast<size_t>(rows * out_features()));
  if (kind_ == Kind::max) indices_.grow(static_cast<size_t>(rows * out_features()));
}

const float* Pool2DLayer::forward(const float* x, const ForwardContext& ctx) {
  const int64_t planes = ctx.rows * in_shape_[0];
  switch (kind_) {
    case Kind::max: be().max_pool2d_forward(x, planes, geom_, y_.data(), indices_.data()); break;
    case Kind::avg: be().avg_pool2d_forward(x, planes, geom_, count_include_pad_, y_.data()); break;
    case Kind::global_avg: be().global_avg_pool2d_forward(x, planes, geom_.H * geom_.W, y_.data()); break;
  }
  return y_.data();
}

float* Pool2DLayer::backward(float* d_out, float* spare, bool need_d_in, int64_t rows) {
  if (!need_d_in) return nullptr;
  const int64_t planes = rows * in_shape_[0];
  switch (kind_) {
    case Kind::max: be().max_pool2d_backward(d_out, indices_.data(), planes, geom_, spare); break;
    case Kind::avg: be().avg_pool2d_backward(d_out, planes, geom_, count_include_pad_, spare); break;
    case Kind::global_avg: be().global_avg_pool2d_backward(d_out, planes, geom_.H * geom_.W, spare); break;
  }
  return spare;
}

// ------------------------------------------------------------------------------------- batch norm

BatchNormLayer::BatchNormLayer(const LayerSpec& spec, const Shape& in_shape)
    : Layer(in_shape, in_shape),
      channels_(in_shape[0]),
      hw_(shape_size(in_shape) / in_shape[0]),
      momentum_(static_cast<float>(spec.momentum)),
      epsilon_(static_cast<float>(spec.epsilon)),
      relu_(spec.relu),
      max_pool_(spec.max_pool) {
  if (max_pool_) {
    DROPNET_CHECK(relu_ && in_shape.size() == 3 && in_shape[1] >= 2 && in_shape[2] >= 2,
                  "batch_norm: max_pool is fused only after relu, on images of at least 2 × 2, got relu=", relu_,
                  " and input ", shape_to_string(in_shape));
    out_shape_ = Shape{in_shape[0], in_shape[1] / 2, in_shape[2] / 2};
    pool_.H = in_shape[1];
    pool_.W = in_shape[2];
  }
  alloc_param(gamma_, Shape{channels_}, 1.f);
  alloc_param(beta_, Shape{channels_}, 0.f);
  alloc_param(running_mean_, Shape{channels_}, 0.f);
  alloc_param(running_var_, Shape{channels_}, 1.f);
  mean_.grow(static_cast<size_t>(channels_));
  invstd_.grow(static_cast<size_t>(channels_));
}

void BatchNormLayer::bind(const Backend& backend, const std::string& where) {
  require_host(!max_pool_, backend, where, " batch_norm: the fused max_pool");
  backend_ = &backend;
  for (Param* p : {&gamma_, &beta_, &running_mean_, &running_var_}) bind_param(*p, backend, where);
  y_.bind(&backend);
  mean_.bind(&backend);
  invstd_.bind(&backend);
}

void BatchNormLayer::reserve(int64_t rows) {
  y_.grow(static_cast<size_t>(rows * out_features()));
  if (max_pool_) indices_.grow(static_cast<size_t>(rows * out_features()));
}

const cpu::BatchNormMaxPool* BatchNormLayer::pooling(int64_t rows, bool backward) {
  if (!max_pool_) return nullptr;
  pool_.y = y_.data();
  pool_.indices = indices_.data();
  if (backward) {  // one scratch plane per thread: the backward rebuilds a channel's gradient there
    const int planes = std::max(1, get_num_threads());
    scratch_.grow(static_cast<size_t>(planes * rows * hw_));
    pool_.scratch = scratch_.data();
    pool_.scratch_planes = planes;
  }
  return &pool_;
}

const float* BatchNormLayer::forward(const float* x, const ForwardContext& ctx) {
  x_ = x;
  batch_stats_ = ctx.bn_training;
  sync_ = batch_stats_ ? ctx.sync_batchnorm : nullptr;
  const cpu::BatchNormMaxPool* pool = pooling(ctx.rows, false);
  if (sync_) {
    cpu::batchnorm_forward_training_sync(x, ctx.rows, channels_, hw_, gamma_.value.data(), beta_.value.data(),
                                         epsilon_, momentum_, running_mean_.value.data(), running_var_.value.data(),
                                         relu_, y_.data(), mean_.data(), invstd_.data(), *sync_, &values_total_, pool);
  } else if (pool) {  // the fused pooling: a CPU capability (bind refuses it elsewhere)
    if (batch_stats_)
      cpu::batchnorm_forward_training(x, ctx.rows, channels_, hw_, gamma_.value.data(), beta_.value.data(), epsilon_,
                                      momentum_, running_mean_.value.data(), running_var_.value.data(), relu_,
                                      y_.data(), mean_.data(), invstd_.data(), pool);
    else
      cpu::batchnorm_forward_inference(x, ctx.rows, channels_, hw_, gamma_.value.data(), beta_.value.data(),
                                       running_mean_.value.data(), running_var_.value.data(), epsilon_, relu_,
                                       y_.data(), invstd_.data(), pool);
  } else if (batch_stats_) {
    be().batchnorm_forward_training(x, ctx.rows, channels_, hw_, gamma_.value.data(), beta_.value.data(), epsilon_,
                                    momentum_, running_mean_.value.data(), running_var_.value.data(), relu_, y_.data(),
                                    mean_.data(), invstd_.data());
  } else {
    be().batchnorm_forward_inference(x, ctx.rows, channels_, hw_, gamma_.value.data(), beta_.value.data(),
                                     running_mean_.value.data(), running_var_.value.data(), epsilon_, relu_,
                                     y_.data(), invstd_.data());
  }
  if (!batch_stats_)
    be().copy(mean_.data(), running_mean_.value.data(), static_cast<size_t>(channels_) * sizeof(float));
  return y_.data();
}

float* BatchNormLayer::backward(float* d_out, float* spare, bool need_d_in, int64_t rows) {
  gamma_.grad.zero(static_cast<size_t>(channels_));
  beta_.grad.zero(static_cast<size_t>(channels_));
  // The kernel always writes dx; when nobody needs it, spare is scratch.
  const cpu::BatchNormMaxPool* pool = pooling(rows, true);
  if (sync_) {
    cpu::batchnorm_backward_sync(d_out, x_, relu_ ? y_.data() : nullptr, rows, channels_, hw_, gamma_.value.data(),
                                 mean_.data(), invstd_.data(), values_total_, spare, gamma_.grad.data(),
                                 beta_.grad.data(), *sync_, pool);
    return need_d_in ? spare : nullptr;
  }
  if (pool)
    cpu::batchnorm_backward(d_out, x_, relu_ ? y_.data() : nullptr, rows, channels_, hw_, gamma_.value.data(),
                            mean_.data(), invstd_.data(), batch_stats_, spare, gamma_.grad.data(), beta_.grad.data(),
                            pool);
  else
    be().batchnorm_backward(d_out, x_, relu_ ? y_.data() : nullptr, rows, channels_, hw_, gamma_.value.data(),
                            mean_.data(), invstd_.data(), batch_stats_, spare, gamma_.grad.data(), beta_.grad.data());
  return need_d_in ? spare : nullptr;
}

// ------------------------------------------------------------------------------------- spatial dropout

SpatialDropoutLayer::SpatialDropoutLayer(double rate, const Shape& shape)
    : Layer(shape, shape), rate_(rate), channels_(shape.empty() ? 0 : shape[0]), hw_(0) {
  require_image(shape, "spatial_dropout2d");
  hw_ = shape[1] * shape[2];
}

void SpatialDropoutLayer::bind(const Backend& backend, const std::string&) {
  backend_ = &backend;
  y_.bind(&backend);
  keep_bits_.bind(&backend);
}

void SpatialDropoutLayer::reserve(int64_t rows) {
  if (rate_ <= 0.0) return;
  y_.grow(static_cast<size_t>(rows * in_features()));
  keep_bits_.grow(static_cast<size_t>((rows * channels_ + 63) / 64));
}

const float* SpatialDropoutLayer::forward(const float* x, const ForwardContext& ctx) {
  applied_ = ctx.training && rate_ > 0.0;
  if (!applied_) return x;
  const uint64_t stream = (*ctx.next_stream)++;
  be().spatial_dropout_forward(x, y_.data(), ctx.rows * channels_, hw_, keep_threshold(rate_), keep_scale(rate_),
                               ctx.seed, stream, keep_bits_.data(), ctx.row_offset * static_cast<uint64_t>(channels_));
  return y_.data();
}

float* SpatialDropoutLayer::backward(float* d_out, float*, bool need_d_in, int64_t rows) {
  if (!need_d_in) return nullptr;
  if (!applied_) return d_out;
  be().spatial_dropout_backward(d_out, d_out, rows * channels_, hw_, keep_bits_.data(), keep_scale(rate_));
  return d_out;
}

}  // namespace nn
}  // namespace dropnet

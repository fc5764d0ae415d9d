#include "dropnet/nn/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dropnet/core/error.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/gemm_skip_zeros.h"
#include "dropnet/kernels/cpu/philox_stream.h"
#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/spmm.h"

namespace dropnet {
namespace nn {

int64_t shape_size(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_to_string(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    r += std::to_string(s[i]);
    if (i + 1 < s.size() || s.size() == 1) r += ",";
    if (i + 1 < s.size()) r += " ";
  }
  return r + ")";
}

namespace {
struct ActivationName {
  const char* name;
  cpu::ActivationKind kind;
};
constexpr ActivationName kActivations[] = {
    {"linear", cpu::ActivationKind::identity}, {"relu", cpu::ActivationKind::relu},
    {"leaky_relu", cpu::ActivationKind::leaky_relu}, {"tanh", cpu::ActivationKind::tanh},
    {"sigmoid", cpu::ActivationKind::sigmoid}, {"gelu", cpu::ActivationKind::gelu},
    {"selu", cpu::ActivationKind::selu}, {"softmax", cpu::ActivationKind::softmax},
    {"elu", cpu::ActivationKind::elu},
};

constexpr const char* kSoftmaxHint = " (a device takes a softmax only as the output under a crossentropy loss)";

bool gemm_can_apply(cpu::ActivationKind k) {
  return k != cpu::ActivationKind::selu && k != cpu::ActivationKind::softmax && k != cpu::ActivationKind::elu;
}

size_t mask_words(int64_t n) { return static_cast<size_t>((n + 63) / 64); }

}  // namespace

cpu::ActivationKind parse_activation(const std::string& name, const char* what) {
  for (const auto& a : kActivations)
    if (name == a.name) return a.kind;
  throw ValueError(str_concat(what, ": expected one of None, 'linear', 'relu', 'leaky_relu', 'tanh', 'sigmoid', "
                                    "'gelu', 'selu', 'softmax', 'elu', got '",
                              name, "'"));
}

const char* activation_name(cpu::ActivationKind kind) {
  for (const auto& a : kActivations)
    if (a.kind == kind) return a.name;
  return "linear";
}

void uniform_init(float* w, int64_t n, double limit, uint64_t seed, uint64_t stream) {
  std::vector<uint32_t> words(static_cast<size_t>(n));
  cpu::philox_stream(seed, stream, 0, n, words.data());
  for (int64_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(words[static_cast<size_t>(i)] >> 8) * (1.0 / 16777216.0);
    w[i] = static_cast<float>((2.0 * u - 1.0) * limit);
  }
}

void init_layer_params(InitKind init, double fan_in, double fan_out, float* w, int64_t n_w, float* b, int64_t n_b,
                       uint64_t seed, int64_t index) {
  double limit = 0.0;
  switch (init) {
    case InitKind::he_uniform: limit = std::sqrt(6.0 / fan_in); break;
    case InitKind::glorot_uniform: limit = std::sqrt(6.0 / (fan_in + fan_out)); break;
    case InitKind::torch_uniform:
    case InitKind::automatic: limit = 1.0 / std::sqrt(fan_in); break;
  }
  uniform_init(w, n_w, limit, seed, kInitStreamBase + static_cast<uint64_t>(index));
  if ((init == InitKind::torch_uniform || init == InitKind::automatic) && b && n_b > 0)
    uniform_init(b, n_b, limit, seed, kBiasInitStreamBase + static_cast<uint64_t>(index));
}

void require_host(bool allowed, const Backend& backend, const std::string& where, const char* what, const char* hint) {
  if (allowed || backend.host_memory()) return;
  throw ValueError(where + what + " runs on the CPU only, not on device '" + backend.name() + "'" + hint);
}

void Layer::bind(const Backend& backend, const std::string& where) {
  if (!backend.host_memory()) require_host(false, backend, where + " " + type_name(), ":");
}

void bind_param(Param& p, const Backend& backend, const std::string&) {
  p.value.bind(&backend, static_cast<size_t>(p.size));
  p.grad.bind(&backend);
  p.mask.bind(&backend, p.has_mask ? static_cast<size_t>(p.size) : 0);
}

// ------------------------------------------------------------------------------------- dense

DenseLayer::DenseLayer(const LayerSpec& spec, const Shape& in_shape, uint64_t seed, int64_t layer_index)
    : Layer(in_shape, Shape{spec.units}),
      in_(shape_size(in_shape)),
      out_(spec.units),
      activation_(spec.activation),
      rate_(spec.rate),
      drop_connect_(spec.drop_connect),
      use_bias_(spec.use_bias) {
  DROPNET_CHECK(in_shape.size() == 1, "layers[", layer_index, "] dense: expected a flat input (features,), got ",
                shape_to_string(in_shape), "; put a flatten layer before it");
  // elu takes its alpha from an activation layer's slope; a dense layer has none to give.
  DROPNET_CHECK(activation_ != cpu::ActivationKind::elu,
                "dense: activation 'elu' is only available as a separate activation layer (layers.ELU)");
  DROPNET_CHECK(!(rate_ > 0.0 && activation_ == cpu::ActivationKind::softmax),
                "dense: dropout after a softmax activation is not supported (got dropout=", rate_, ")");
  weight_.shape = {out_, in_};
  weight_.size = out_ * in_;
  weight_.value.grow(weight_.size);
  weight_.grad.grow(weight_.size);
  weight_.grad.zero(weight_.size);
  weight_.l1 = spec.l1;
  weight_.l2 = spec.l2;
  // Automatic: PyTorch's default (torch_uniform), see Conv2DLayer.
  const InitKind init = spec.init == InitKind::automatic ? InitKind::torch_uniform : spec.init;
  if (use_bias_) {
    bias_.shape = {out_};
    bias_.size = out_;
    bias_.value.grow(out_);
    bias_.value.zero(out_);
    bias_.grad.grow(out_);
    bias_.grad.zero(out_);
  }
  init_layer_params(init, static_cast<double>(in_), static_cast<double>(out_), weight_.value.data(), weight_.size,
                    use_bias_ ? bias_.value.data() : nullptr, use_bias_ ? out_ : 0, seed, layer_index);
}

std::vector<Param*> DenseLayer::params() {
  if (use_bias_) return {&weight_, &bias_};
  return {&weight_};
}

void DenseLayer::bind(const Backend& backend, const std::string& where) {
  // The device twins have no row softmax (the crossentropy loss absorbs the output layer's).
  require_host(activation_ != cpu::ActivationKind::softmax, backend, where, " dense: activation 'softmax'", kSoftmaxHint);
  backend_ = &backend;
  bind_param(weight_, backend, where);
  if (use_bias_) bind_param(bias_, backend, where);
  y_.bind(&backend);
  pre_.bind(&backend);
  keep_bits_.bind(&backend);
  w_dropped_.bind(&backend);
  w_keep_bits_.bind(&backend);
}

void DenseLayer::reserve(int64_t rows) {
  y_.grow(static_cast<size_t>(rows * out_));
  if (activation_ == cpu::ActivationKind::gelu) pre_.grow(static_cast<size_t>(rows * out_));
  if (rate_ > 0.0) keep_bits_.grow(mask_words(rows * out_));
  if (drop_connect_ > 0.0) {
    w_dropped_.grow(static_cast<size_t>(weight_.size));
    w_keep_bits_.grow(mask_words(weight_.size));
  }
}

const float* DenseLayer::forward(const float* x, const ForwardContext& ctx) {
  const int64_t rows = ctx.rows;
  x_ = x;
  dropout_applied_ = ctx.training && rate_ > 0.0;
  const bool fused_act = gemm_can_apply(activation_);
  cpu::GemmEpilogue ep;
  ep.bias = use_bias_ ? bias_.value.data() : nullptr;
  ep.activation = fused_act ? static_cast<cpu::Activation>(activation_) : cpu::Activation::identity;
  ep.leaky_slope = kLeakySlope;
  ep.pre_activation = activation_ == cpu::ActivationKind::gelu ? pre_.data() : nullptr;
  const uint32_t threshold = keep_threshold(rate_);
  const float scale = keep_scale(rate_);
  // DropConnect takes its stream before the layer's dropout (one each, in this order).
  drop_connect_applied_ = ctx.training && drop_connect_ > 0.0;
  if (drop_connect_applied_)
    be().dropout_forward(weight_.value.data(), w_dropped_.data(), weight_.size, keep_threshold(drop_connect_),
                         keep_scale(drop_connect_), ctx.seed, (*ctx.next_stream)++, w_keep_bits_.data(), 0);
  uint64_t stream = 0;
  if (dropout_applied_) stream = (*ctx.next_stream)++;
  if (dropout_applied_ && fused_act) {
    ep.dropout = true;
    ep.threshold = threshold;
    ep.scale = scale;
    ep.seed = ctx.seed;
    ep.stream = stream;
    ep.index_offset = ctx.row_offset * static_cast<uint64_t>(out_);
    ep.mask_bits = keep_bits_.data();
  }
  float* y = y_.data();
  product_forward(x, rows, ep, y);
  if (!fused_act) {
    if (activation_ == cpu::ActivationKind::softmax) be().softmax_rows_forward(y, y, rows, out_);
    else be().activation_forward(activation_, y, y, rows * out_, kLeakySlope);
    if (dropout_applied_)
      be().dropout_forward(y, y, rows * out_, threshold, scale, ctx.seed, stream, keep_bits_.data(),
                           ctx.row_offset * static_cast<uint64_t>(out_));
  }
  return y;
}

void DenseLayer::product_forward(const float* x, int64_t rows, const cpu::GemmEpilogue& ep, float* y) {
  if (!weight_.run_sparse) {
    // Y = X · Wᵀ, skipping the zeros of X when it comes from ReLU / dropout.
    const float* w = drop_connect_applied_ ? w_dropped_.data() : weight_.value.data();
    be().gemm(false, true, rows, out_, in_, x, in_, w, in_, y, out_, &ep, kSkipZerosForward);
    return;
  }
  // The sparse product adds the bias and applies ReLU in its writeback; every other step is the
  // pass the GEMM epilogue would have made, in its order (bias, pre-activation, activation,
  // dropout). The dropout pass numbers elements row·out + col like the epilogue, so the masks
  // are the same bits as on the dense path.
  const bool in_kernel = ep.activation == cpu::Activation::identity || ep.activation == cpu::Activation::relu;
  be().spmm_xt(rows, x, in_, weight_.sparse->view(), weight_.sparse->nnz, ep.bias,
               in_kernel ? ep.activation : cpu::Activation::identity, y, out_);
  const int64_t n = rows * out_;
  if (!in_kernel) {
    if (ep.pre_activation) be().copy(ep.pre_activation, y, static_cast<size_t>(n) * sizeof(float));
    be().activation_forward(static_cast<cpu::ActivationKind>(ep.activation), y, y, n, ep.leaky_slope);
  }
  if (ep.dropout)
    be().dropout_forward(y, y, n, ep.threshold, ep.scale, ep.seed, ep.stream, ep.mask_bits, ep.index_offset);
}

float* DenseLayer::backward(float* d_out, float* spare, bool need_d_in, int64_t rows) {
  float* d_bias = use_bias_ ? bias_.grad.data() : nullptr;
  const float* y = y_.data();
  // d_out becomes the gradient at the pre-activation, and the bias gradient its column sums.
  if (activation_ == cpu::ActivationKind::softmax) {
    be().softmax_rows_backward(y, d_out, d_out, rows, out_);
    be().activation_backward(cpu::ActivationKind::identity, rows, out_, d_out, y, nullptr, nullptr, 1.f, kLeakySlope,
                             d_out, d_bias);
  } else {
    const float scale = keep_scale(rate_);
    be().activation_backward(activation_, rows, out_, d_out, y, pre_.data(),
                             dropout_applied_ ? keep_bits_.data() : nullptr, scale, kLeakySlope, d_out, d_bias);
  }
  if (weight_.run_sparse) {
    // dW at the stored entries only, dX = dZ · W through the transposed copy.
    const SparseWeight& sw = *weight_.sparse;
    be().sddmm(rows, d_out, out_, x_, in_, sw.view(), sw.nnz, weight_.sparse->grad.data());
    if (!need_d_in) return nullptr;
    be().spmm_xt(rows, d_out, out_, sw.t_view(), sw.nnz, nullptr, cpu::Activation::identity, spare, in_);
    return spare;
  }
  // dW = dZᵀ · X  (out × in). Behind ReLU and dropout most of dZ is zeros.
  be().gemm(true, false, out_, in_, rows, d_out, out_, x_, in_, weight_.grad.data(), in_, nullptr,
            kSkipZerosWeightGrad);
  // DropConnect: the step used W' = W ⊙ keep / (1 − p), so dL/dW = dL/dW' ⊙ keep / (1 − p).
  if (drop_connect_applied_)
    be().dropout_backward_bits(weight_.grad.data(), w_keep_bits_.data(), weight_.grad.data(), weight_.size,
                               keep_scale(drop_connect_));
  if (!need_d_in) return nullptr;
  // dX = dZ · W'  (rows × in)
  const float* w = drop_connect_applied_ ? w_dropped_.data() : weight_.value.data();
  be().gemm(false, false, rows, in_, out_, d_out, out_, w, in_, spare, in_, nullptr, kSkipZerosInputGrad);
  return spare;
}

// ------------------------------------------------------------------------------------- dropout

DropoutLayer::DropoutLayer(double rate, const Shape& shape, bool alpha)
    : Layer(shape, shape), rate_(rate), alpha_(alpha) {
  if (alpha_) alpha_coef_ = cpu::alpha_dropout_coeffs(rate_);
}

void DropoutLayer::bind(const Backend& backend, const std::string&) {
  backend_ = &backend;
  y_.bind(&backend);
  keep_bits_.bind(&backend);
}

void DropoutLayer::reserve(int64_t rows) {
  if (rate_ <= 0.0) return;
  const int64_t n = rows * in_features();
  y_.grow(static_cast<size_t>(n));
  keep_bits_.grow(mask_words(n));
}

const float* DropoutLayer::forward(const float* x, const ForwardContext& ctx) {
  applied_ = ctx.training && rate_ > 0.0;
  if (!applied_) return x;
  const int64_t n = ctx.rows * in_features();
  const uint64_t stream = (*ctx.next_stream)++;
  const uint32_t threshold = keep_threshold(rate_);
  const uint64_t index_offset = ctx.row_offset * static_cast<uint64_t>(in_features());
  if (alpha_)
    be().alpha_dropout_forward(x, y_.data(), n, threshold, alpha_coef_.a, alpha_coef_.b, alpha_coef_.dropped_value,
                               ctx.seed, stream, keep_bits_.data(), index_offset);
  else
    be().dropout_forward(x, y_.data(), n, threshold, keep_scale(rate_), ctx.seed, stream, keep_bits_.data(),
                         index_offset);
  return y_.data();
}

float* DropoutLayer::backward(float* d_out, float*, bool need_d_in, int64_t rows) {
  if (!need_d_in) return nullptr;
  if (!applied_) return d_out;
  const float scale = alpha_ ? alpha_coef_.a : keep_scale(rate_);
  be().dropout_backward_bits(d_out, keep_bits_.data(), d_out, rows * in_features(), scale);
  return d_out;
}

// ------------------------------------------------------------------------------------- activation

ActivationLayer::ActivationLayer(cpu::ActivationKind kind, const Shape& shape, float slope)
    : Layer(shape, shape), kind_(kind), slope_(slope) {
  DROPNET_CHECK(kind_ != cpu::ActivationKind::softmax || shape.size() == 1,
                "activation: softmax needs a flat input (features,), got ", shape_to_string(shape));
}

void ActivationLayer::bind(const Backend& backend, const std::string& where) {
  require_host(kind_ != cpu::ActivationKind::softmax, backend, where, " activation: 'softmax'", kSoftmaxHint);
  backend_ = &backend;
  y_.bind(&backend);
}

void ActivationLayer::reserve(int64_t rows) {
  if (kind_ != cpu::ActivationKind::identity) y_.grow(static_cast<size_t>(rows * in_features()));
}

const float* ActivationLayer::forward(const float* x, const ForwardContext& ctx) {
  x_ = x;
  if (kind_ == cpu::ActivationKind::identity) return x;
  const int64_t n = ctx.rows * in_features();
  if (kind_ == cpu::ActivationKind::softmax) be().softmax_rows_forward(x, y_.data(), ctx.rows, in_features());
  else be().activation_forward(kind_, x, y_.data(), n, slope_);
  return y_.data();
}

float* ActivationLayer::backward(float* d_out, float*, bool need_d_in, int64_t rows) {
  if (!need_d_in) return nullptr;
  if (kind_ == cpu::ActivationKind::identity) return d_out;
  if (kind_ == cpu::ActivationKind::softmax) {
    be().softmax_rows_backward(y_.data(), d_out, d_out, rows, in_features());
    return d_out;
  }
  // gelu reads the pre-activation, which is this layer's (unchanged) input.
  be().activation_backward(kind_, rows, in_features(), d_out, y_.data(), x_, nullptr, 1.f, slope_, d_out, nullptr);
  return d_out;
}

// ------------------------------------------------------------------------------------- augment

const float* AugmentLayer::forward(const float* x, const ForwardContext& ctx) {
  // Training steps only: inference and Monte Carlo dropout (training without bn_training) see
  // the images as they are.
  if (!ctx.training || !ctx.bn_training) return x;
  const Shape& s = in_shape();
  cpu::augment_images(x, y_.data(), ctx.rows, s[0], s[1], s[2], spec_, ctx.seed, (*ctx.next_stream)++,
                      ctx.row_offset);
  return y_.data();
}

}  // namespace nn
}  // namespace dropnet

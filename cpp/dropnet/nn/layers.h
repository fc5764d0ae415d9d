// Layers of the dense training core. A layer knows its shapes, owns its parameters and the
// per-batch buffers its backward pass needs, and runs forward/backward on raw row-major buffers
// of `rows` samples. The Network (network.h) chains them and owns the gradient scratch.
//
// Conventions: a layer's output is rows × out_features (C order). forward() returns a pointer
// to the output, which may be the input itself (flatten, dropout at inference). backward()
// receives d_out (rows × out_features, writable) and returns d_in: either d_out updated in place
// (elementwise layers) or `spare` (dense), or null when the caller said the input gradient is not
// needed. Parameter gradients overwrite (one batch per step; no accumulation across calls).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dropnet/kernels/backend.h"
#include "dropnet/kernels/cpu/activation.h"
#include "dropnet/kernels/cpu/augment.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/nn/buffer.h"
#include "dropnet/nn/sparse_weight.h"

namespace dropnet {
namespace cpu {
struct SumAcrossProcesses;  // kernels/cpu/batchnorm.h
}
namespace nn {

using Shape = std::vector<int64_t>;
int64_t shape_size(const Shape& s);
std::string shape_to_string(const Shape& s);

enum class LayerType {
  dense, dropout, alpha_dropout, activation, flatten,
  conv2d, max_pool2d, avg_pool2d, global_avg_pool2d, batch_norm, spatial_dropout2d, reshape, augment
};
// Initial weights, all uniform on [-limit, limit): he_uniform sqrt(6 / fan_in), glorot_uniform
// sqrt(6 / (fan_in + fan_out)), torch_uniform 1 / sqrt(fan_in) for the weight and the bias alike
// (PyTorch's nn.Linear / nn.Conv2d default); the others start biases at 0.
enum class InitKind { automatic, he_uniform, glorot_uniform, torch_uniform };

// One layer as the user described it (parsed from the Python dict by the bindings).
struct LayerSpec {
  LayerType type = LayerType::dense;
  int64_t units = 0;
  cpu::ActivationKind activation = cpu::ActivationKind::identity;
  bool use_bias = true;
  float l1 = 0.f, l2 = 0.f;
  InitKind init = InitKind::automatic;
  double rate = 0.0;  // dense: fused dropout after the activation; dropout / alpha_dropout: the rate
  // conv2d (filters = units) and pooling: window, strides, dilation; padding as given by the user
  // (same_padding: Keras "same", padding ignored), resolved against the input by the layer.
  int64_t kernel[2] = {1, 1}, strides[2] = {1, 1}, dilation[2] = {1, 1}, padding[2] = {0, 0};
  bool same_padding = false;
  bool count_include_pad = true;  // avg_pool2d
  // batch_norm: PyTorch's momentum (running = (1 - m)·running + m·batch), epsilon, fused ReLU.
  double momentum = 0.1, epsilon = 1e-5;
  bool relu = false;
  bool max_pool = false;  // batch_norm: a following 2×2 / stride 2 max pooling fused (after relu)
  float slope = 0.01f;          // activation: leaky_relu's negative slope
  double drop_connect = 0.0;    // dense: DropConnect rate on the weight in training (Wan et al. 2013)
  std::vector<int64_t> target_shape;  // reshape: the output shape of one sample
  cpu::AugmentSpec augment;     // augment: crop / flip / erasing (kernels/cpu/augment.h)
};

cpu::ActivationKind parse_activation(const std::string& name, const char* what);
const char* activation_name(cpu::ActivationKind kind);

// A trainable tensor with its gradient and optional 0/1 pruning mask.
struct Param {
  Shape shape;
  int64_t size = 0;
  // mask: the 0/1 pruning mask; the penalty pass of every step (Backend::weight_penalty_grad,
  // Network::apply_gradients) multiplies the gradient by it, on every device.
  Buffer<float> value, grad, mask;
  bool has_mask = false;
  int64_t mask_kept = 0;  // number of ones in the mask
  float l1 = 0.f, l2 = 0.f;  // Keras-style penalty l1·Σ|w| + l2·Σw² on this tensor
  // Frozen (trainable = false): gradients still flow through the layer, but neither the
  // optimizer nor the weight penalty touches the tensor.
  bool trainable = true;
  // Max-norm constraint: after each update every one of the norm_rows rows (a unit's incoming
  // weights, a filter) whose L2 norm exceeds max_norm is scaled back to max_norm. 0: none.
  float max_norm = 0.f;
  int64_t norm_rows = 1;
  const float* mask_or_null() const { return has_mask ? mask.data() : nullptr; }
  // Compressed copy of a masked weight (sparse_weight.h), built when sparse execution first wants
  // it; run_sparse: the current step reads and updates it instead of the dense arrays.
  std::unique_ptr<SparseWeight> sparse;
  bool run_sparse = false;
};

struct ForwardContext {
  int64_t rows = 0;
  bool training = false;     // dropout on
  bool bn_training = false;  // batch norm uses (and updates running) batch statistics
  uint64_t seed = 0;
  uint64_t* next_stream = nullptr;  // each dropout application takes *next_stream and bumps it
  // Global position of row 0 in the whole batch: a layer's dropout draws element (row, j) from
  // Philox word (row_offset + row)·(elements per row) + j, so a data-parallel rank's masks are
  // those its rows get in the one-process step (docs/distributed.md).
  uint64_t row_offset = 0;
  // Non-null: batch norm layers with batch statistics take them over every process's batch
  // (synchronised batch norm of a data-parallel step, docs/distributed.md).
  const cpu::SumAcrossProcesses* sync_batchnorm = nullptr;
};

class Layer {
 public:
  Layer(Shape in_shape, Shape out_shape) : in_shape_(std::move(in_shape)), out_shape_(std::move(out_shape)) {}
  virtual ~Layer() = default;
  virtual const char* type_name() const = 0;
  const Shape& in_shape() const { return in_shape_; }
  const Shape& out_shape() const { return out_shape_; }
  int64_t in_features() const { return shape_size(in_shape_); }
  int64_t out_features() const { return shape_size(out_shape_); }
  virtual std::vector<Param*> params() { return {}; }
  // Non-trainable state (batch norm's running mean and variance): value only, no gradient.
  virtual std::vector<Param*> state() { return {}; }
  // Room for batches of up to `rows` samples.
  virtual void reserve(int64_t rows) { (void)rows; }
  virtual const float* forward(const float* x, const ForwardContext& ctx) = 0;
  virtual float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) = 0;
  // Moves the layer onto `backend` before its first step (Network's constructor): parameters and
  // state keep their values, every buffer allocates there from now on. A layer that runs on the
  // CPU only (the default) throws ValueError naming itself and `where` (its place in the network).
  virtual void bind(const Backend& backend, const std::string& where);
  // The dropout keep bits of the last training forward (this backend's memory, keep_bits_per_row()
  // bits per sample), or null when it dropped nothing.
  virtual const uint64_t* keep_bits() const { return nullptr; }
  virtual int64_t keep_bits_per_row() const { return out_features(); }

 protected:
  const Backend& be() const { return *backend_; }
  const Backend* backend_ = &cpu_backend();
  Shape in_shape_, out_shape_;
};

// A parameter or state tensor onto `backend`, its values and pruning mask kept (Layer::bind).
void bind_param(Param& p, const Backend& backend, const std::string& where);


// Unless `allowed` or the backend is the host's: ValueError "<where><what> runs on the CPU only, not
// on device '<name>'<hint>". Every refusal of a CPU-only layer or option goes through here; the
// message is built only when it throws.
void require_host(bool allowed, const Backend& backend, const std::string& where, const char* what,
                  const char* hint = "");

// y = dropout(act(x · Wᵀ + b)), W: units × in, fused into the forward GEMM's epilogue where the
// activation allows (gemm.h); selu and softmax run as a second pass, dropout after them.
// When the network runs the weight sparse (weight_.run_sparse, network.h: prepare_execution) the
// three products use its compressed copy instead: forward spmm_xt, input gradient spmm_xt on the
// transposed copy, weight gradient sddmm at the stored entries only (into the copy's grad).
// A layer whose weight can run compressed when it is pruned (Dense, Conv2D): Network's
// prepare_execution reads the mode, asks for the break-even and sets weight().run_sparse.
class SparseCapable {
 public:
  virtual ~SparseCapable() = default;
  virtual Param& weight() = 0;
  virtual const Param& weight() const = 0;
  // Rows of the weight seen as a matrix (output units, filters); columns = size / rows.
  virtual int64_t weight_rows() const = 0;
  // Measured break-even of this layer's shape at batch `rows` (cached per shape).
  virtual BreakEven break_even(int64_t rows) const = 0;
  // Sparse execution choice (network.h: set_sparse_mode) and the break-even it last used.
  SparseMode sparse_mode = SparseMode::automatic;
  BreakEven last_break_even;
};

class DenseLayer : public Layer, public SparseCapable {
 public:
  // layer_index: position among the network's dense layers (picks the init stream).
  DenseLayer(const LayerSpec& spec, const Shape& in_shape, uint64_t seed, int64_t layer_index);
  const char* type_name() const override { return "dense"; }
  std::vector<Param*> params() override;
  void reserve(int64_t rows) override;
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) override;
  void bind(const Backend& backend, const std::string& where) override;
  const uint64_t* keep_bits() const override { return dropout_applied_ ? keep_bits_.data() : nullptr; }
  // Output layer fused with softmax (sigmoid) cross-entropy: produce logits from now on.
  void drop_softmax() { activation_ = cpu::ActivationKind::identity; }
  cpu::ActivationKind activation() const { return activation_; }
  bool drop_connect() const { return drop_connect_ > 0.0; }
  Param& weight() override { return weight_; }
  const Param& weight() const override { return weight_; }
  int64_t weight_rows() const override { return out_; }
  BreakEven break_even(int64_t rows) const override { return sparse_break_even(out_, in_, rows); }

 private:
  // y = act(x · Wᵀ + b) with the fused-activation kinds applied here (dense GEMM epilogue, or the
  // sparse product plus the same passes), dropout too when `ep.dropout`.
  void product_forward(const float* x, int64_t rows, const cpu::GemmEpilogue& ep, float* y);
  int64_t in_, out_;
  cpu::ActivationKind activation_;
  double rate_;
  double drop_connect_ = 0.0;
  Param weight_, bias_;
  bool use_bias_;
  Buffer<float> y_, pre_;
  Buffer<uint64_t> keep_bits_;
  // DropConnect in training: the step's weight W ⊙ keep / (1 − p) and its keep bits.
  Buffer<float> w_dropped_;
  Buffer<uint64_t> w_keep_bits_;
  bool drop_connect_applied_ = false;
  const float* x_ = nullptr;
  bool dropout_applied_ = false;
};

// Inverted dropout with a 1-bit mask kept for backward (cpu::dropout_*).
class DropoutLayer : public Layer {
 public:
  DropoutLayer(double rate, const Shape& shape, bool alpha);
  const char* type_name() const override { return alpha_ ? "alpha_dropout" : "dropout"; }
  void reserve(int64_t rows) override;
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) override;
  void bind(const Backend& backend, const std::string& where) override;
  const uint64_t* keep_bits() const override { return applied_ ? keep_bits_.data() : nullptr; }

 private:
  double rate_;
  bool alpha_;
  cpu::AlphaDropoutCoeffs alpha_coef_{};
  Buffer<float> y_;
  Buffer<uint64_t> keep_bits_;
  bool applied_ = false;
};

class ActivationLayer : public Layer {
 public:
  ActivationLayer(cpu::ActivationKind kind, const Shape& shape, float slope = 0.01f);
  const char* type_name() const override { return "activation"; }
  void reserve(int64_t rows) override;
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) override;
  void bind(const Backend& backend, const std::string& where) override;
  void drop_softmax() { kind_ = cpu::ActivationKind::identity; }
  cpu::ActivationKind kind() const { return kind_; }

 private:
  cpu::ActivationKind kind_;
  float slope_;
  Buffer<float> y_;
  const float* x_ = nullptr;
};

// Any reshape of the sample (same number of values, C order): no data moves.
class ReshapeLayer : public Layer {
 public:
  ReshapeLayer(const Shape& in_shape, const Shape& out_shape) : Layer(in_shape, out_shape) {}
  const char* type_name() const override { return "reshape"; }
  const float* forward(const float* x, const ForwardContext&) override { return x; }
  float* backward(float* d_out, float*, bool, int64_t) override { return d_out; }
  void bind(const Backend&, const std::string&) override {}  // no data, no buffers
};

// Random crop / flip / erasing of (C, H, W) images in training steps (one Philox stream per
// batch), identity at inference and in Monte Carlo dropout (training without bn_training). Only valid before the first layer with parameters (no backward).
class AugmentLayer : public Layer {
 public:
  AugmentLayer(const cpu::AugmentSpec& spec, const Shape& shape) : Layer(shape, shape), spec_(spec) {}
  const char* type_name() const override { return "augment"; }
  void reserve(int64_t rows) override { y_.grow(static_cast<size_t>(rows * in_features())); }
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float*, float*, bool, int64_t) override { return nullptr; }

 private:
  cpu::AugmentSpec spec_;
  Buffer<float> y_;
};

// Reshape to (features,): no data moves.
class FlattenLayer : public Layer {
 public:
  explicit FlattenLayer(const Shape& in_shape) : Layer(in_shape, Shape{shape_size(in_shape)}) {}
  const char* type_name() const override { return "flatten"; }
  const float* forward(const float* x, const ForwardContext&) override { return x; }
  float* backward(float* d_out, float*, bool, int64_t) override { return d_out; }
  void bind(const Backend&, const std::string&) override {}  // no data, no buffers
};

constexpr float kLeakySlope = 0.01f;  // PyTorch's default negative slope

// Largest fraction of nonzeros in the left operand (X or dZ) at which each product of a dense
// layer skips its zeros rather than running the dense GEMM (gemm_skip_zeros.h). Measured at the
// LeNet-300-100 shapes, batch 128, 1 and 2 threads (benchmarks/suites/gemm.py): the weight
// gradient still wins at half density; the input gradient breaks even there; the forward product
// also transposes W into slabs, and only pays below about a third. The sparse calibration
// (sparse_weight.cpp) times the dense side with the same products.
constexpr double kSkipZerosForward = 0.3, kSkipZerosInputGrad = 0.4, kSkipZerosWeightGrad = 0.5;
// Init streams live in the top half of the stream space; dropout streams count up from 0.
constexpr uint64_t kInitStreamBase = uint64_t{1} << 63;

// W[i] = (2u − 1)·limit, u = (word_i >> 8)·2^-24, word_i = Philox word i of (seed, stream),
// computed in double and rounded once: uniform on [−limit, limit).
void uniform_init(float* w, int64_t n, double limit, uint64_t seed, uint64_t stream);

// Draws a layer's weight (n_w values) and, for torch_uniform, its bias (n_b values, may be 0);
// other kinds leave the bias as it is. Streams: kInitStreamBase + index for the weight,
// kBiasInitStreamBase + index for the bias.
constexpr uint64_t kBiasInitStreamBase = kInitStreamBase | (uint64_t{1} << 62);
void init_layer_params(InitKind init, double fan_in, double fan_out, float* w, int64_t n_w, float* b, int64_t n_b,
                       uint64_t seed, int64_t index);

}  // namespace nn
}  // namespace dropnet

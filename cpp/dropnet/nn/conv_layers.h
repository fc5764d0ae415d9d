// Image layers of the training core, on NCHW batches: a sample is C × H × W floats (C order), so
// `rows` samples are the N × C × H × W tensor the kernels (conv2d.h, pooling.h, batchnorm.h,
// dropout.h's spatial dropout) take. Same contracts as layers.h: forward returns the output
// buffer, backward returns d_in (`spare`, or d_out updated in place), parameter gradients
// overwrite.
#pragma once
#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/pooling.h"
#include "dropnet/nn/layers.h"

namespace dropnet {
namespace nn {

// y = act(conv(x, W) + b), W: filters × C × kh × kw (PyTorch's layout). The activation runs in the
// GEMM epilogue; only activations whose derivative follows from y are allowed (identity, relu,
// leaky_relu, tanh, sigmoid) — the Python API puts others in a separate activation layer.
// When the network runs the weight sparse (weight_.run_sparse) the convolution uses its compressed
// copy (sparse_conv.h).
class Conv2DLayer : public Layer, public SparseCapable {
 public:
  // init_index: position among the network's dense and conv layers (picks the init stream).
  Conv2DLayer(const LayerSpec& spec, const Shape& in_shape, uint64_t seed, int64_t init_index, const char* where);
  const char* type_name() const override { return "conv2d"; }
  std::vector<Param*> params() override;
  void reserve(int64_t rows) override;
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) override;
  void bind(const Backend& backend, const std::string& where) override;
  Param& weight() override { return weight_; }
  const Param& weight() const override { return weight_; }
  int64_t weight_rows() const override { return filters_; }
  BreakEven break_even(int64_t rows) const override;

 private:
  cpu::ConvGeometry geom_;
  int64_t filters_;
  cpu::ActivationKind activation_;
  bool use_bias_;
  Param weight_, bias_;
  Buffer<float> y_, workspace_;
  const float* x_ = nullptr;
};

// Max or average pooling (PyTorch floor mode, symmetric padding <= window / 2), or global average
// pooling (output C values per sample).
class Pool2DLayer : public Layer {
 public:
  enum class Kind { max, avg, global_avg };
  Pool2DLayer(Kind kind, const LayerSpec& spec, const Shape& in_shape, const char* where);
  const char* type_name() const override;
  void reserve(int64_t rows) override;
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) override;
  void bind(const Backend& backend, const std::string& where) override;

 private:
  Kind kind_;
  cpu::PoolGeometry geom_;
  bool count_include_pad_;
  Buffer<float> y_;
  Buffer<int32_t> indices_;
};

// Batch normalisation over (N) for (C,) samples and over (N, H, W) for (C, H, W) samples, with an
// optional fused ReLU, and after it an optional fused 2×2 / stride 2 max pooling (output
// (C, H/2, W/2); cpu::BatchNormMaxPool). Parameters gamma, beta (C); state running_mean,
// running_var (C).
class BatchNormLayer : public Layer {
 public:
  BatchNormLayer(const LayerSpec& spec, const Shape& in_shape);
  const char* type_name() const override { return "batch_norm"; }
  std::vector<Param*> params() override { return {&gamma_, &beta_}; }
  std::vector<Param*> state() override { return {&running_mean_, &running_var_}; }
  void reserve(int64_t rows) override;
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) override;
  void bind(const Backend& backend, const std::string& where) override;
  // Samples per channel in one batch of `rows`: batch statistics need at least 2.
  int64_t values_per_channel(int64_t rows) const { return rows * hw_; }

 private:
  // The fused pooling's buffers in `pool_` (the backward's scratch grown for `rows`), or null
  // without pooling.
  const cpu::BatchNormMaxPool* pooling(int64_t rows, bool backward);

  int64_t channels_, hw_;
  float momentum_, epsilon_;
  bool relu_, max_pool_;
  Param gamma_, beta_, running_mean_, running_var_;
  Buffer<float> y_, mean_, invstd_, scratch_;
  Buffer<int32_t> indices_;
  cpu::BatchNormMaxPool pool_;
  const float* x_ = nullptr;
  bool batch_stats_ = false;
  const cpu::SumAcrossProcesses* sync_ = nullptr;  // the last training forward's, for its backward
  int64_t values_total_ = 0;                         // values per channel over all processes (sync)
};

// Spatial dropout: whole channels (C, H, W samples) dropped with probability rate, the kept ones
// scaled by 1 / (1 - rate); one Philox word per (sample, channel).
class SpatialDropoutLayer : public Layer {
 public:
  SpatialDropoutLayer(double rate, const Shape& shape);
  const char* type_name() const override { return "spatial_dropout2d"; }
  void reserve(int64_t rows) override;
  const float* forward(const float* x, const ForwardContext& ctx) override;
  float* backward(float* d_out, float* spare, bool need_d_in, int64_t rows) override;
  void bind(const Backend& backend, const std::string& where) override;
  const uint64_t* keep_bits() const override { return applied_ ? keep_bits_.data() : nullptr; }
  int64_t keep_bits_per_row() const override { return channels_; }  // one bit per channel

 private:
  double rate_;
  int64_t channels_, hw_;
  Buffer<float> y_;
  Buffer<uint64_t> keep_bits_;
  bool applied_ = false;
};

}  // namespace nn
}  // namespace dropnet

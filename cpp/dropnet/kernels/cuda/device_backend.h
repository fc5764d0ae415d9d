// The device twin of the kernel interface (kernels/backend.h), written once over a set of
// launchers `Kernels` with the cuda:: signatures (kernels/cuda/*.h): kernels/cuda/backend.cu
// instantiates it with the CUDA launchers; the C++ tests (cpp/tests/sim_device.h) with the same
// per-thread bodies run over a simulated grid in host memory that the host cannot read outside a
// backend call. So the mapping from the interface to the launchers, which the GPU build runs, is
// the code the tests run. Free of CUDA headers.
//
// Kernels provides: alloc, free, to_device, to_host, copy, zero (bytes, as Backend); sgemm and
// sgemm_workspace as cuda::sgemm (with its workspace arguments) and cuda::sgemm_workspace
// (kernels/cuda/gemm.h); dropout_forward, dropout_backward_bits, alpha_dropout_forward,
// spatial_dropout_forward / _backward (kernels/cuda/dropout.h); activation_forward,
// activation_backward (kernels/cuda/activation.h);
// the three batch-norm calls (kernels/cuda/batchnorm.h); conv2d_forward, conv2d_backward_workspace,
// conv2d_backward (kernels/cuda/conv2d.h); the six pooling calls (kernels/cuda/pooling.h);
// softmax_xent_sparse / _dense
// (kernels/cuda/softmax_xent.h); elementwise_loss, weight_loss_rows (kernels/cuda/elementwise_loss.h);
// weight_penalty_grad (kernels/cuda/weight_penalty.h); max_norm_rows (kernels/cuda/max_norm.h);
// gather_rows, batch_metrics (kernels/cuda/training_batch.h);
// sgd_update_multi, adam_update_multi (kernels/cuda/optimizer.h); apply_epilogue(ep, rows, N, C,
// ldc) (cuda::apply_epilogue from row 0, kernels/cuda/activation.h); csr_indptr_to_int32,
// csr_gather_values, csr_gather_dense, csr_scatter_dense, spmm_xt_cusparse, sddmm_cusparse
// (kernels/cuda/sparse.h).
#pragma once
#include <string>
#include <utility>

#include "dropnet/core/error.h"
#include "dropnet/core/optimizer_element.h"  // penalty_blocks
#include "dropnet/kernels/backend.h"
#include "dropnet/kernels/cuda/conv2d_body.h"  // ConvShape, conv_shape
#include "dropnet/kernels/cuda/optimizer.h"
#include "dropnet/kernels/cuda/sparse.h"

namespace dropnet {
namespace cuda {

//
// A DeviceBackend belongs to one Network (whose calls are serialised): it keeps the dense
// product's grow-only workspace, so it is not to be shared between threads.
template <class Kernels>
class DeviceBackend final : public Backend {
 public:
  DeviceBackend(std::string name, Kernels kernels) : name_(std::move(name)), k_(std::move(kernels)) {}
  ~DeviceBackend() override {
    k_.free(workspace_);
    k_.free(sparse_scratch_);
  }
  DeviceBackend(const DeviceBackend&) = delete;
  DeviceBackend& operator=(const DeviceBackend&) = delete;
  const std::string& name() const override { return name_; }
  bool host_memory() const override { return false; }
  const Kernels& kernels() const { return k_; }

  void* alloc(size_t bytes) const override { return k_.alloc(bytes); }
  void free(void* p) const noexcept override { k_.free(p); }
  void to_device(void* dst, const void* src, size_t bytes) const override { k_.to_device(dst, src, bytes); }
  void to_host(void* dst, const void* src, size_t bytes) const override { k_.to_host(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) const override {
    if (bytes && dst != src) k_.copy(dst, src, bytes);
  }
  void zero(void* dst, size_t bytes) const override { k_.zero(dst, bytes); }

  // Skipping zeros is a CPU strategy for the same product: the device runs the dense one, split
  // over its K blocks when it is small (the workspace sgemm_workspace asks for; the same bits).
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
            int64_t ldb, float* C, int64_t ldc, const GemmEpilogue* epilogue, double) const override {
    const int64_t need = k_.sgemm_workspace(M, N, K);
    grow(workspace_, workspace_bytes_, static_cast<size_t>(need) * sizeof(float));
    k_.sgemm(trans_a, trans_b, M, N, K, 1.f, A, lda, B, ldb, 0.f, C, ldc, epilogue,
             need > 0 ? static_cast<float*>(workspace_) : nullptr, need);
  }

  void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                       uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) const override {
    k_.dropout_forward(x, y, n, threshold, scale, seed, stream, mask_bits, index_offset);
  }
  void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n,
                             float scale) const override {
    k_.dropout_backward_bits(dy, mask_bits, dx, n, scale);
  }
  void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float a, float b,
                             float dropped_value, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset) const override {
    k_.alpha_dropout_forward(x, y, n, threshold, a, b, dropped_value, seed, stream, mask_bits, index_offset);
  }

  void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                               float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                               uint64_t index_offset) const override {
    k_.spatial_dropout_forward(x, y, n_channels, channel_size, threshold, scale, seed, stream, mask_bits,
                               index_offset);
  }
  void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                                const uint64_t* mask_bits, float scale) const override {
    k_.spatial_dropout_backward(dy, dx, n_channels, channel_size, mask_bits, scale);
  }

  void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope) const override {
    k_.activation_forward(kind, x, y, n, slope);
  }
  void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                           const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope, float* d_pre,
                           float* d_bias) const override {
    k_.activation_backward(kind, rows, cols, dy, y, pre, keep_bits, dropout_scale, slope, d_pre, d_bias);
  }
  // No device twin yet; the layers refuse a softmax before they bind (nn/layers.cpp).
  void softmax_rows_forward(const float*, float*, int64_t, int64_t) const override { cpu_only("softmax_rows_forward"); }
  void softmax_rows_backward(const float*, const float*, float*, int64_t, int64_t) const override {
    cpu_only("softmax_rows_backward");
  }

  void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                  const float* beta, float eps, float momentum, float* running_mean, float* running_var,
                                  bool relu, float* y, float* saved_mean, float* saved_invstd) const override {
    k_.batchnorm_forward_training(x, N, C, HW, gamma, beta, eps, momentum, running_mean, running_var, relu, y,
                                  saved_mean, saved_invstd);
  }
  void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                   const float* beta, const float* running_mean, const float* running_var, float eps,
                                   bool relu, float* y, float* saved_invstd) const override {
    k_.batchnorm_forward_inference(x, N, C, HW, gamma, beta, running_mean, running_var, eps, relu, y, saved_invstd);
  }
  void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                          const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                          float* dgamma, float* dbeta) const override {
    k_.batchnorm_backward(dy, x, y_relu, N, C, HW, gamma, mean, invstd, training, dx, dgamma, dbeta);
  }

  // The implicit-GEMM twin needs no forward workspace; the backward's is its weight-gradient chunks.
  int64_t conv2d_forward_workspace(const ConvGeometry&, int64_t, bool) const override { return 0; }
  void conv2d_forward(const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F, const float* bias,
                      Activation activation, float leaky_slope, float* y, float*, int64_t) const override {
    k_.conv2d_forward(x, N, conv_shape(g), w, F, bias, activation, leaky_slope, y);
  }
  int64_t conv2d_backward_workspace(const ConvGeometry& g, int64_t N, int64_t F) const override {
    return k_.conv2d_backward_workspace(conv_shape(g), N, F);
  }
  void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F,
                       float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats) const override {
    k_.conv2d_backward(dy, x, N, conv_shape(g), w, F, dx, dw, db, workspace, workspace_floats);
  }

  void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y,
                          int32_t* indices) const override {
    k_.max_pool2d_forward(x, planes, g, y, indices);
  }
  void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g,
                           float* dx) const override {
    k_.max_pool2d_backward(dy, indices, planes, g, dx);
  }
  void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                          float* y) const override {
    k_.avg_pool2d_forward(x, planes, g, count_include_pad, y);
  }
  void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                           float* dx) const override {
    k_.avg_pool2d_backward(dy, planes, g, count_include_pad, dx);
  }
  void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y) const override {
    k_.global_avg_pool2d_forward(x, planes, hw, y);
  }
  void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx) const override {
    k_.global_avg_pool2d_backward(dy, planes, hw, dx);
  }

  void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           float grad_scale, float* loss, float* d_logits) const override {
    k_.softmax_xent_sparse(logits, labels, rows, classes, grad_scale, loss, d_logits);
  }
  void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                          float* loss, float* d_logits) const override {
    k_.softmax_xent_dense(logits, targets, rows, classes, grad_scale, loss, d_logits);
  }

  void elementwise_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols,
                        float grad_scale, float delta, float* loss, float* d_y) const override {
    k_.elementwise_loss(kind, y, t, rows, cols, grad_scale, delta, loss, d_y);
  }
  void weight_loss_rows(const float* weights, int64_t rows, int64_t cols, float* loss, float* d) const override {
    k_.weight_loss_rows(weights, rows, cols, loss, d);
  }
  // The CPU's shortcut: nothing to add and no mask leaves g as it is. Otherwise the launch leaves
  // the penalty in block_sums after the chunks' sums, copied on the device to *penalty.
  void weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                           double* block_sums, double* penalty) const override {
    const bool penalised = l1 != 0.f || l2 != 0.f;
    if ((!penalised && !mask) || n <= 0) {
      if (penalty) k_.zero(penalty, sizeof(double));
      return;
    }
    k_.weight_penalty_grad(n, w, g, mask, l1, l2, block_sums);
    // The total (block_sums' last double) stays on the device: a device-to-device copy, no sync.
    if (penalty) copy(penalty, block_sums + penalty_blocks(n), sizeof(double));
  }
  void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm) const override {
    k_.max_norm_rows(w, rows, cols, max_norm);
  }

  // A pruned dense weight through cuSPARSE: 32-bit row offsets narrowed into a scratch per call
  // (O(rows)); a transposed copy's values gathered into its own entry order (O(nnz)), so cuSPARSE
  // only ever multiplies an untransposed CSR; bias and ReLU as the GEMM's epilogue pass after it.
  void spmm_xt(int64_t M, const float* X, int64_t ldx, const cpu::CsrView& S, int64_t nnz, const float* bias,
               Activation act, float* Y, int64_t ldy) const override {
    CsrMatrix32 m = csr32(S, nnz, S.value_index != nullptr);
    if (S.value_index) {
      float* values = gathered_values(S.rows);
      k_.csr_gather_values(S.values, S.value_index, nnz, values);
      m.values = values;
    }
    k_.spmm_xt_cusparse(M, X, ldx, m, Y, ldy);
    if (!bias && act == Activation::identity) return;
    GemmEpilogue ep;
    ep.bias = bias;
    ep.activation = act;
    k_.apply_epilogue(ep, M, S.rows, Y, ldy);
  }
  void sddmm(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const cpu::CsrView& S, int64_t nnz,
             float* dW) const override {
    k_.sddmm_cusparse(M, dY, lddy, X, ldx, csr32(S, nnz, false), dW, false);
  }
  void csr_gather(const float* dense, const cpu::CsrView& S, float* values) const override {
    k_.csr_gather_dense(dense, S.rows, S.cols, S.indptr, S.indices, values);
  }
  void csr_scatter(const float* values, const cpu::CsrView& S, float* dense) const override {
    k_.csr_scatter_dense(values, S.rows, S.cols, S.indptr, S.indices, dense);
  }

  void gather_rows(const void* src, int64_t row_bytes, const int64_t* index, int64_t first, int64_t rows,
                   void* dst) const override {
    k_.gather_rows(src, row_bytes, index, first, rows, dst);
  }
  void batch_metrics(const float* loss, int64_t rows, const float* out, int64_t n_out, const int64_t* labels,
                     const float* dense, CorrectKind kind, double* loss_sum, int64_t* correct) const override {
    k_.batch_metrics(loss, rows, out, n_out, labels, dense, kind, loss_sum, correct);
  }

  // Every parameter of the step in one multi-tensor launch (kMaxSegmentsPerLaunch per launch).
  void sgd_update(const SgdArgs& a, const OptimizerSegment* params, int64_t count) const override {
    k_.sgd_update_multi(a, params, count);
  }
  void adam_update(const AdamArgs& a, const OptimizerSegment* params, int64_t count) const override {
    k_.adam_update_multi(a, params, count);
  }

 private:
  // S with its row offsets narrowed into the scratch (room for nnz gathered values after them
  // when with_values); cuSPARSE takes one index type for offsets and columns.
  CsrMatrix32 csr32(const cpu::CsrView& S, int64_t nnz, bool with_values) const {
    if (nnz >= (int64_t{1} << 31))
      throw ValueError(str_concat("sparse layer on device '", name_, "': ", nnz,
                                  " stored entries, cuSPARSE's 32-bit indices take fewer than 2^31"));
    const size_t offsets = static_cast<size_t>(S.rows + 1) * sizeof(int32_t);
    const size_t bytes = (offsets + 63) / 64 * 64 + (with_values ? static_cast<size_t>(nnz) * sizeof(float) : 0);
    grow(sparse_scratch_, sparse_scratch_bytes_, bytes);
    CsrMatrix32 m;
    m.rows = S.rows;
    m.cols = S.cols;
    m.nnz = nnz;
    int32_t* indptr = static_cast<int32_t*>(sparse_scratch_);
    k_.csr_indptr_to_int32(S.indptr, S.rows + 1, indptr);
    m.indptr = indptr;
    m.indices = S.indices;
    m.values = S.values;
    return m;
  }
  // The values region of the scratch csr32 sized for a matrix of `rows` rows.
  float* gathered_values(int64_t rows) const {
    const size_t offsets = static_cast<size_t>(rows + 1) * sizeof(int32_t);
    return reinterpret_cast<float*>(static_cast<char*>(sparse_scratch_) + (offsets + 63) / 64 * 64);
  }
  // A grow-only scratch block of this backend (the old one freed first: a device may have room
  // for one of the two only); its contents are lost when it grows.
  void grow(void*& block, size_t& have, size_t need) const {
    if (need <= have) return;
    k_.free(block);
    block = nullptr;
    have = 0;
    block = k_.alloc(need);
    have = need;
  }
  [[noreturn]] void cpu_only(const char* op) const {
    throw ValueError(str_concat(op, ": runs on the CPU only, not on device '", name_, "'"));
  }
  std::string name_;
  Kernels k_;
  mutable void* workspace_ = nullptr;  // the dense product's split, grown to the largest asked for
  mutable size_t workspace_bytes_ = 0;
  mutable void* sparse_scratch_ = nullptr;  // the sparse products' int32 row offsets and gathered values
  mutable size_t sparse_scratch_bytes_ = 0;
};

}  // namespace cuda
}  // namespace dropnet

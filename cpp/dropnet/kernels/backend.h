// The one seam between nn/ and the kernels: every operation a training step needs on its device,
// memory included, as a table of virtual calls. nn/ holds a Backend for its device and never
// learns which one it is: kernels/cpu/backend.cpp forwards to the cpu:: kernels (ISA chosen
// inside), kernels/cuda/device_backend.h forwards to the cuda:: launchers (and, in the C++ tests,
// to the same per-thread bodies run over a simulated grid). Every pointer an operation takes is
// memory of this backend, except where "host" says otherwise; sizes and scalars are host values.
// The operations' contracts are the CPU kernels' (the headers named beside each), so a twin
// differs only in where it runs and in the rounding its header documents (docs/design.md,
// "Devices: one network, two backends").
//
// What only the CPU runs (skipping the zeros of a product's left operand, sparse execution of a
// pruned convolution, augmentation, batch norm's fused pooling and synchronised
// statistics) stays with the CPU kernels:
// nn/ asks `host_memory()` and a network refuses those features on another device before it
// builds (nn/network.h: Network::Network), naming them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "dropnet/core/batch_metrics_element.h"
#include "dropnet/core/conv_geometry.h"
#include "dropnet/core/csr_view.h"
#include "dropnet/core/epilogue.h"
#include "dropnet/core/loss_kind.h"
#include "dropnet/core/optimizer_element.h"
#include "dropnet/core/pooling_element.h"

namespace dropnet {

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu", "cuda:0", ... as the user names the device.
  virtual const std::string& name() const = 0;
  // Whether the host may dereference this backend's pointers (the CPU only).
  virtual bool host_memory() const = 0;

  // ---- memory: 64-byte aligned blocks, uninitialised; bytes == 0 gives nullptr
  virtual void* alloc(size_t bytes) const = 0;
  virtual void free(void* p) const noexcept = 0;
  virtual void to_device(void* dst, const void* host_src, size_t bytes) const = 0;
  virtual void to_host(void* host_dst, const void* src, size_t bytes) const = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) const = 0;
  virtual void zero(void* dst, size_t bytes) const = 0;

  // ---- products (kernels/cpu/gemm.h): C (M × N) = op(A) · op(B), A M × K (K × M with trans_a),
  // B K × N (N × K with trans_b), then the epilogue (optional; not with trans_a). C overwritten.
  // skip_zeros_density: the CPU twin skips A's zeros when A's nonzero fraction is at most this
  // (kernels/cpu/gemm_skip_zeros.h; the same product); other twins ignore it.
  virtual void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float* C, int64_t ldc, const GemmEpilogue* epilogue,
                    double skip_zeros_density) const = 0;

  // ---- dropout (kernels/cpu/dropout.h)
  virtual void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                               uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) const = 0;
  virtual void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n,
                                     float scale) const = 0;
  virtual void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float a, float b,
                                     float dropped_value, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                                     uint64_t index_offset) const = 0;
  // Spatial dropout of n_channels rows of channel_size floats; mask_bits (ceil(n_channels / 64)
  // words) required: the channel keeps, which the backward reads.
  virtual void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size,
                                       uint32_t threshold, float scale, uint64_t seed, uint64_t stream,
                                       uint64_t* mask_bits, uint64_t index_offset) const = 0;
  virtual void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                                        const uint64_t* mask_bits, float scale) const = 0;

  // ---- activations (kernels/cpu/activation.h); softmax rows: the CPU twin only
  virtual void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope) const = 0;
  virtual void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                                   const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope,
                                   float* d_pre, float* d_bias) const = 0;
  virtual void softmax_rows_forward(const float* x, float* y, int64_t rows, int64_t cols) const = 0;
  virtual void softmax_rows_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) const = 0;

  // ---- batch norm over (N, C, HW) (kernels/cpu/batchnorm.h, without the fused pooling)
  virtual void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                          const float* beta, float eps, float momentum, float* running_mean,
                                          float* running_var, bool relu, float* y, float* saved_mean,
                                          float* saved_invstd) const = 0;
  virtual void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                           const float* beta, const float* running_mean, const float* running_var,
                                           float eps, bool relu, float* y, float* saved_invstd) const = 0;
  virtual void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C,
                                  int64_t HW, const float* gamma, const float* mean, const float* invstd,
                                  bool training, float* dx, float* dgamma, float* dbeta) const = 0;

  // ---- 2-D convolution (kernels/cpu/conv2d.h): y = act(conv(x, w) + bias); backward: dx (optional)
  // overwritten, dw and db (optional) ACCUMULATED. workspace: this backend's memory, at least the
  // *_workspace floats (the CPU's for the current thread count).
  virtual int64_t conv2d_forward_workspace(const ConvGeometry& g, int64_t F, bool has_bias) const = 0;
  virtual void conv2d_forward(const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F,
                              const float* bias, Activation activation, float leaky_slope, float* y, float* workspace,
                              int64_t workspace_floats) const = 0;
  virtual int64_t conv2d_backward_workspace(const ConvGeometry& g, int64_t N, int64_t F) const = 0;
  virtual void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvGeometry& g, const float* w,
                               int64_t F, float* dx, float* dw, float* db, float* workspace,
                               int64_t workspace_floats) const = 0;

  // ---- pooling over `planes` H × W planes (kernels/cpu/pooling.h); dx overwritten
  virtual void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y,
                                  int32_t* indices) const = 0;
  virtual void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g,
                                   float* dx) const = 0;
  virtual void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                                  float* y) const = 0;
  virtual void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                                   float* dx) const = 0;
  virtual void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y) const = 0;
  virtual void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx) const = 0;

  // ---- softmax cross-entropy (kernels/cpu/softmax_xent.h); labels int64 in [0, classes)
  virtual void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                                   float grad_scale, float* loss, float* d_logits) const = 0;
  virtual void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes,
                                  float grad_scale, float* loss, float* d_logits) const = 0;

  // ---- elementwise losses: mse (kernels/cpu/mse_loss.h), the others (kernels/cpu/elementwise_loss.h;
  // delta: huber's); d_y may be null
  virtual void elementwise_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols,
                                float grad_scale, float delta, float* loss, float* d_y) const = 0;
  // Sample weights after any loss: loss[r] *= weights[r], row r of d (rows × cols, may be null) too.
  virtual void weight_loss_rows(const float* weights, int64_t rows, int64_t cols, float* loss, float* d) const = 0;

  // ---- weight penalties (kernels/cpu/weight_penalty.h): the gradient finished in place; the
  // penalty's value to *penalty (this backend's memory, so a chunk of steps fetches it with its
  // losses; null: not wanted). block_sums: this backend's memory, penalty_blocks(n) + 1 doubles.
  // mask may be null.
  virtual void weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                                   double* block_sums, double* penalty) const = 0;
  // ---- max-norm over rows × cols weights, in place (kernels/cpu/max_norm.h)
  virtual void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm) const = 0;

  // ---- a pruned dense weight run compressed (kernels/cpu/spmm.h, sparse_sddmm.h, sparse_csr.h). S's
  // arrays are this backend's memory (nnz: its stored entries, which a device cannot read from
  // indptr); a transposed copy reads its values through value_index.
  // Y (M × S.rows) = X (M × S.cols) · Sᵀ + bias, then act (identity or relu). Y overwritten.
  virtual void spmm_xt(int64_t M, const float* X, int64_t ldx, const cpu::CsrView& S, int64_t nnz, const float* bias,
                       Activation act, float* Y, int64_t ldy) const = 0;
  // dW[p] = Σ_m dY[m, n] · X[m, k] at S's stored entries p = (n, k), overwritten (S.values unread).
  virtual void sddmm(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const cpu::CsrView& S,
                     int64_t nnz, float* dW) const = 0;
  // values[p] = dense[n·S.cols + k] at S's stored entries; scatter: the reverse, other entries kept.
  virtual void csr_gather(const float* dense, const cpu::CsrView& S, float* values) const = 0;
  virtual void csr_scatter(const float* values, const cpu::CsrView& S, float* dense) const = 0;

  // ---- a training step's batch (nn/network.cpp: Network::train_steps), so that a chunk of steps
  // over a dataset kept in this backend's memory crosses to the host once, for its statistics.
  // dst row r = src row index[r] (index: this backend's memory), or src row first + r when index
  // is null; rows of row_bytes bytes, a multiple of 4.
  virtual void gather_rows(const void* src, int64_t row_bytes, const int64_t* index, int64_t first, int64_t rows,
                           void* dst) const = 0;
  // *loss_sum = Σ_r loss[r] in double in row order; *correct = the correct predictions of out
  // (rows × n_out) as `kind` says (core/batch_metrics_element.h; -1 for none). Both: this
  // backend's memory.
  virtual void batch_metrics(const float* loss, int64_t rows, const float* out, int64_t n_out, const int64_t* labels,
                             const float* dense, CorrectKind kind, double* loss_sum, int64_t* correct) const = 0;

  // ---- optimizers (kernels/cpu/optimizer.h): one call updates a list of `count` parameters (a
  // host array of descriptors over this backend's memory; slot0 / slot1 and mask may be null), so
  // a device steps every parameter in one launch, not one per tensor. Each element is updated
  // exactly as the one-tensor CPU kernels do (core/optimizer_element.h).
  virtual void sgd_update(const SgdArgs& a, const OptimizerSegment* params, int64_t count) const = 0;
  virtual void adam_update(const AdamArgs& a, const OptimizerSegment* params, int64_t count) const = 0;
};

// The CPU twin (kernels/cpu/backend.cpp); one for the process, never destroyed.
const Backend& cpu_backend();

}  // namespace dropnet

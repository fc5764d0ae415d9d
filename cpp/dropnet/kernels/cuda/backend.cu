// The CUDA twin of the kernel interface: DeviceBackend (device_backend.h) over the cuda:: launchers
// of this directory, each call made with the backend's device current (ScopedDevice) and queued
// on the legacy default stream, which orders the launches and the synchronous copies.
//
// Never run on a GPU yet (docs/design.md, "Devices: one network, two backends").
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "dropnet/kernels/cuda/activation.h"
#include "dropnet/kernels/cuda/backend.h"
#include "dropnet/kernels/cuda/batchnorm.h"
#include "dropnet/kernels/cuda/conv2d.h"
#include "dropnet/kernels/cuda/device.h"
#include "dropnet/kernels/cuda/device_backend.h"
#include "dropnet/kernels/cuda/dropout.h"
#include "dropnet/kernels/cuda/elementwise_loss.h"
#include "dropnet/kernels/cuda/max_norm.h"
#include "dropnet/kernels/cuda/optimizer.h"
#include "dropnet/kernels/cuda/pooling.h"
#include "dropnet/kernels/cuda/softmax_xent.h"
#include "dropnet/kernels/cuda/training_batch.h"
#include "dropnet/kernels/cuda/weight_penalty.h"
#if __has_include("dropnet/kernels/cuda/gemm.h")
#include "dropnet/kernels/cuda/gemm.h"
#define DROPNET_CUDA_GEMM 1
#endif

namespace dropnet {
namespace cuda {
namespace {

struct CudaKernels {
  int device = 0;

  void* alloc(size_t bytes) const { return device_alloc(bytes, device); }
  void free(void* p) const noexcept { device_free(p, device); }
  void to_device(void* dst, const void* src, size_t bytes) const { copy_to_device(dst, src, bytes, device); }
  void to_host(void* dst, const void* src, size_t bytes) const { copy_to_host(dst, src, bytes, device); }
  void copy(void* dst, const void* src, size_t bytes) const { copy_device(dst, src, bytes, device); }
  void zero(void* dst, size_t bytes) const {
    if (!bytes) return;
    ScopedDevice on(device);
    const cudaError_t e = cudaMemsetAsync(dst, 0, bytes, cudaStreamLegacy);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error(std::string("CUDA error in cudaMemsetAsync: ") + cudaGetErrorString(e));
    }
  }

  int64_t sgemm_workspace(int64_t M, int64_t N, int64_t K) const {
#ifdef DROPNET_CUDA_GEMM
    return cuda::sgemm_workspace(M, N, K);
#else
    (void)M, (void)N, (void)K;
    return 0;
#endif
  }
  void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue* ep, float* workspace,
             int64_t workspace_floats) const {
#ifdef DROPNET_CUDA_GEMM
    ScopedDevice on(device);
    cuda::sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep, nullptr, workspace,
                workspace_floats);
#else
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb;
    (void)beta, (void)C, (void)ldc, (void)ep, (void)workspace, (void)workspace_floats;
    throw std::runtime_error("dense layer on cuda:" + std::to_string(device) +
                             ": this build has no CUDA GEMM (kernels/cuda/gemm.h)");
#endif
  }

  void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                       uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) const {
    ScopedDevice on(device);
    cuda::dropout_forward(x, y, n, threshold, scale, seed, stream, mask_bits, index_offset);
  }
  void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale) const {
    ScopedDevice on(device);
    cuda::dropout_backward_bits(dy, mask_bits, dx, n, scale);
  }
  void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float a, float b,
                             float dropped_value, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset) const {
    ScopedDevice on(device);
    cuda::alpha_dropout_forward(x, y, n, threshold, a, b, dropped_value, seed, stream, mask_bits, index_offset);
  }

  void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                               float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                               uint64_t index_offset) const {
    ScopedDevice on(device);
    cuda::spatial_dropout_forward(x, y, n_channels, channel_size, threshold, scale, seed, stream, mask_bits,
                                  index_offset);
  }
  void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                                const uint64_t* mask_bits, float scale) const {
    ScopedDevice on(device);
    cuda::spatial_dropout_backward(dy, dx, n_channels, channel_size, mask_bits, scale);
  }

  void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope) const {
    ScopedDevice on(device);
    cuda::activation_forward(kind, x, y, n, slope);
  }
  void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                           const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope, float* d_pre,
                           float* d_bias) const {
    ScopedDevice on(device);
    cuda::activation_backward(kind, rows, cols, dy, y, pre, keep_bits, dropout_scale, slope, d_pre, d_bias);
  }

  void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                  const float* beta, float eps, float momentum, float* running_mean, float* running_var,
                                  bool relu, float* y, float* saved_mean, float* saved_invstd) const {
    ScopedDevice on(device);
    cuda::batchnorm_forward_training(x, N, C, HW, gamma, beta, eps, momentum, running_mean, running_var, relu, y,
                                     saved_mean, saved_invstd);
  }
  void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                   const float* beta, const float* running_mean, const float* running_var, float eps,
                                   bool relu, float* y, float* saved_invstd) const {
    ScopedDevice on(device);
    cuda::batchnorm_forward_inference(x, N, C, HW, gamma, beta, running_mean, running_var, eps, relu, y,
                                      saved_invstd);
  }
  void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                          const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                          float* dgamma, float* dbeta) const {
    ScopedDevice on(device);
    cuda::batchnorm_backward(dy, x, y_relu, N, C, HW, gamma, mean, invstd, training, dx, dgamma, dbeta);
  }

  void conv2d_forward(const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F, const float* bias,
                      Activation activation, float leaky_slope, float* y) const {
    ScopedDevice on(device);
    cuda::conv2d_forward(x, N, g, w, F, bias, activation, leaky_slope, y);
  }
  int64_t conv2d_backward_workspace(const ConvShape& g, int64_t N, int64_t F) const {
    return cuda::conv2d_backward_workspace(g, N, F);
  }
  void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F,
                       float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats) const {
    ScopedDevice on(device);
    cuda::conv2d_backward(dy, x, N, g, w, F, dx, dw, db, workspace, workspace_floats);
  }

  void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y, int32_t* indices) const {
    ScopedDevice on(device);
    cuda::max_pool2d_forward(x, planes, g, y, indices);
  }
  void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g,
                           float* dx) const {
    ScopedDevice on(device);
    cuda::max_pool2d_backward(dy, indices, planes, g, dx);
  }
  void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                          float* y) const {
    ScopedDevice on(device);
    cuda::avg_pool2d_forward(x, planes, g, count_include_pad, y);
  }
  void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                           float* dx) const {
    ScopedDevice on(device);
    cuda::avg_pool2d_backward(dy, planes, g, count_include_pad, dx);
  }
  void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y) const {
    ScopedDevice on(device);
    cuda::global_avg_pool2d_forward(x, planes, hw, y);
  }
  void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx) const {
    ScopedDevice on(device);
    cuda::global_avg_pool2d_backward(dy, planes, hw, dx);
  }

  void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           float grad_scale, float* loss, float* d_logits) const {
    ScopedDevice on(device);
    cuda::softmax_xent_sparse(logits, labels, rows, classes, grad_scale, loss, d_logits);
  }
  void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                          float* loss, float* d_logits) const {
    ScopedDevice on(device);
    cuda::softmax_xent_dense(logits, targets, rows, classes, grad_scale, loss, d_logits);
  }

  void elementwise_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols,
                        float grad_scale, float delta, float* loss, float* d_y) const {
    ScopedDevice on(device);
    cuda::elementwise_loss(kind, y, t, rows, cols, grad_scale, delta, loss, d_y);
  }
  void weight_loss_rows(const float* weights, int64_t rows, int64_t cols, float* loss, float* d) const {
    ScopedDevice on(device);
    cuda::weight_loss_rows(weights, rows, cols, loss, d);
  }
  void weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                           double* block_sums) const {
    ScopedDevice on(device);
    cuda::weight_penalty_grad(n, w, g, mask, l1, l2, block_sums);
  }
  void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm) const {
    ScopedDevice on(device);
    cuda::max_norm_rows(w, rows, cols, max_norm);
  }

  void apply_epilogue(const GemmEpilogue& ep, int64_t rows, int64_t N, float* C, int64_t ldc) const {
    ScopedDevice on(device);
    cuda::apply_epilogue(ep, 0, rows, N, C, ldc);
  }

  void csr_indptr_to_int32(const int64_t* indptr, int64_t n, int32_t* out) const {
    ScopedDevice on(device);
    cuda::csr_indptr_to_int32(indptr, n, out);
  }
  void csr_gather_values(const float* values, const int64_t* value_index, int64_t nnz, float* out) const {
    ScopedDevice on(device);
    cuda::csr_gather_values(values, value_index, nnz, out);
  }
  void csr_gather_dense(const float* dense, int64_t rows, int64_t cols, const int64_t* indptr, const int32_t* indices,
                        float* values) const {
    ScopedDevice on(device);
    cuda::csr_gather_dense(dense, rows, cols, indptr, indices, values);
  }
  void csr_scatter_dense(const float* values, int64_t rows, int64_t cols, const int64_t* indptr,
                         const int32_t* indices, float* dense) const {
    ScopedDevice on(device);
    cuda::csr_scatter_dense(values, rows, cols, indptr, indices, dense);
  }
  void spmm_xt_cusparse(int64_t M, const float* X, int64_t ldx, const CsrMatrix32& S, float* Y, int64_t ldy) const {
    ScopedDevice on(device);
    cuda::spmm_xt_cusparse(M, X, ldx, S, Y, ldy);
  }
  void sddmm_cusparse(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrMatrix32& S,
                      float* dW, bool accumulate) const {
    ScopedDevice on(device);
    cuda::sddmm_cusparse(M, dY, lddy, X, ldx, S, dW, accumulate);
  }

  void gather_rows(const void* src, int64_t row_bytes, const int64_t* index, int64_t first, int64_t rows,
                   void* dst) const {
    ScopedDevice on(device);
    cuda::gather_rows(src, row_bytes, index, first, rows, dst);
  }
  void batch_metrics(const float* loss, int64_t rows, const float* out, int64_t n_out, const int64_t* labels,
                     const float* dense, CorrectKind kind, double* loss_sum, int64_t* correct) const {
    ScopedDevice on(device);
    cuda::batch_metrics(loss, rows, out, n_out, labels, dense, kind, loss_sum, correct);
  }

  void sgd_update_multi(const SgdArgs& a, const OptimizerSegment* segments, int64_t count) const {
    ScopedDevice on(device);
    cuda::sgd_update_multi(a, segments, count);
  }
  void adam_update_multi(const AdamArgs& a, const OptimizerSegment* segments, int64_t count) const {
    ScopedDevice on(device);
    cuda::adam_update_multi(a, segments, count);
  }
};

}  // namespace

std::shared_ptr<const Backend> cuda_backend(int device) {
  const std::string reason = unavailable_reason();
  if (!reason.empty()) throw std::runtime_error("device 'cuda:" + std::to_string(device) + "': " + reason);
  const int count = device_count();
  if (device < 0 || device >= count)
    throw std::runtime_error("device 'cuda:" + std::to_string(device) + "': expected an index in [0, " +
                             std::to_string(count) + "), this machine has " + std::to_string(count) +
                             " CUDA device(s)");
  return std::make_shared<const DeviceBackend<CudaKernels>>("cuda:" + std::to_string(device), CudaKernels{device});
}

}  // namespace cuda
}  // namespace dropnet

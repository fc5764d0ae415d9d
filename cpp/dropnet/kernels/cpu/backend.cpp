// The CPU twin of the kernel interface (kernels/backend.h): each entry is the cpu:: kernel that
// nn/ called before the interface existed, with the same arguments, so the bits and the speed of
// a CPU network are what they were (the ISA is chosen inside each kernel).
#include <cstdlib>
#include <cstring>
#include <new>

#include "dropnet/core/parallel.h"
#include "dropnet/kernels/backend.h"
#include "dropnet/kernels/cpu/activation.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/kernels/cpu/elementwise_loss.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/gemm_skip_zeros.h"
#include "dropnet/kernels/cpu/max_norm.h"
#include "dropnet/kernels/cpu/mse_loss.h"
#include "dropnet/kernels/cpu/optimizer.h"
#include "dropnet/kernels/cpu/pooling.h"
#include "dropnet/kernels/cpu/softmax_xent.h"
#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/spmm.h"
#include "dropnet/kernels/cpu/weight_penalty.h"

namespace dropnet {
namespace {

class CpuBackend final : public Backend {
 public:
  const std::string& name() const override { return name_; }
  bool host_memory() const override { return true; }

  void* alloc(size_t bytes) const override {
    if (bytes == 0) return nullptr;
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void free(void* p) const noexcept override { std::free(p); }
  void to_device(void* dst, const void* src, size_t bytes) const override { copy(dst, src, bytes); }
  void to_host(void* dst, const void* src, size_t bytes) const override { copy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) const override {
    if (bytes && dst != src) std::memcpy(dst, src, bytes);
  }
  void zero(void* dst, size_t bytes) const override {
    if (bytes) std::memset(dst, 0, bytes);
  }

  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
            int64_t ldb, float* C, int64_t ldc, const GemmEpilogue* epilogue,
            double skip_zeros_density) const override {
    // gemm_skip_zeros.h names the products by their own letters: A · op(B) is (M, inner, N) and
    // Aᵀ · B is (inner, M, N).
    if (!trans_a) {
      cpu::sgemm_a_b_skip_zeros(trans_b, M, K, N, A, lda, B, ldb, C, ldc, epilogue, skip_zeros_density);
    } else if (!trans_b && !epilogue) {
      cpu::sgemm_at_b_skip_zeros(K, M, N, A, lda, B, ldb, C, ldc, skip_zeros_density);
    } else {
      cpu::sgemm(trans_a, trans_b, M, N, K, 1.f, A, lda, B, ldb, 0.f, C, ldc, epilogue);
    }
  }

  void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                       uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) const override {
    cpu::dropout_forward(x, y, n, threshold, scale, seed, stream, mask_bits, index_offset);
  }
  void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n,
                             float scale) const override {
    cpu::dropout_backward_bits(dy, mask_bits, dx, n, scale);
  }
  void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float a, float b,
                             float dropped_value, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset) const override {
    cpu::alpha_dropout_forward(x, y, n, threshold, cpu::AlphaDropoutCoeffs{a, b, dropped_value}, seed, stream,
                               mask_bits, index_offset);
  }

  void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                               float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                               uint64_t index_offset) const override {
    cpu::spatial_dropout_forward(x, y, n_channels, channel_size, threshold, scale, seed, stream, mask_bits,
                                 index_offset);
  }
  void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                                const uint64_t* mask_bits, float scale) const override {
    cpu::spatial_dropout_backward(dy, dx, n_channels, channel_size, mask_bits, 0, scale, 0, 0);
  }

  void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope) const override {
    cpu::activation_forward(kind, x, y, n, slope);
  }
  void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                           const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope, float* d_pre,
                           float* d_bias) const override {
    cpu::activation_backward(kind, rows, cols, dy, y, pre, keep_bits, dropout_scale, slope, d_pre, d_bias);
  }
  void softmax_rows_forward(const float* x, float* y, int64_t rows, int64_t cols) const override {
    cpu::softmax_rows_forward(x, y, rows, cols);
  }
  void softmax_rows_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) const override {
    cpu::softmax_rows_backward(y, dy, dx, rows, cols);
  }

  void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                  const float* beta, float eps, float momentum, float* running_mean, float* running_var,
                                  bool relu, float* y, float* saved_mean, float* saved_invstd) const override {
    cpu::batchnorm_forward_training(x, N, C, HW, gamma, beta, eps, momentum, running_mean, running_var, relu, y,
                                    saved_mean, saved_invstd);
  }
  void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                   const float* beta, const float* running_mean, const float* running_var, float eps,
                                   bool relu, float* y, float* saved_invstd) const override {
    cpu::batchnorm_forward_inference(x, N, C, HW, gamma, beta, running_mean, running_var, eps, relu, y, saved_invstd);
  }
  void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                          const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                          float* dgamma, float* dbeta) const override {
    cpu::batchnorm_backward(dy, x, y_relu, N, C, HW, gamma, mean, invstd, training, dx, dgamma, dbeta);
  }

  int64_t conv2d_forward_workspace(const ConvGeometry& g, int64_t F, bool has_bias) const override {
    return cpu::conv2d_forward_workspace(g, F, has_bias, get_num_threads());
  }
  void conv2d_forward(const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F, const float* bias,
                      Activation activation, float leaky_slope, float* y, float* workspace,
                      int64_t workspace_floats) const override {
    cpu::conv2d_forward(x, N, g, w, F, bias, activation, leaky_slope, y, workspace, workspace_floats);
  }
  int64_t conv2d_backward_workspace(const ConvGeometry& g, int64_t N, int64_t F) const override {
    return cpu::conv2d_backward_workspace(g, N, F, get_num_threads());
  }
  void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F,
                       float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats) const override {
    cpu::conv2d_backward(dy, x, N, g, w, F, dx, dw, db, workspace, workspace_floats);
  }

  void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y,
                          int32_t* indices) const override {
    cpu::max_pool2d_forward(x, planes, g, y, indices);
  }
  void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g,
                           float* dx) const override {
    cpu::max_pool2d_backward(dy, indices, planes, g, dx);
  }
  void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                          float* y) const override {
    cpu::avg_pool2d_forward(x, planes, g, count_include_pad, y);
  }
  void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                           float* dx) const override {
    cpu::avg_pool2d_backward(dy, planes, g, count_include_pad, dx);
  }
  void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y) const override {
    cpu::global_avg_pool2d_forward(x, planes, hw, y);
  }
  void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx) const override {
    cpu::global_avg_pool2d_backward(dy, planes, hw, dx);
  }

  void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           float grad_scale, float* loss, float* d_logits) const override {
    cpu::softmax_xent_sparse(logits, labels, rows, classes, grad_scale, loss, d_logits);
  }
  void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                          float* loss, float* d_logits) const override {
    cpu::softmax_xent_dense(logits, targets, rows, classes, grad_scale, loss, d_logits);
  }

  void elementwise_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols,
                        float grad_scale, float delta, float* loss, float* d_y) const override {
    if (kind == ElementwiseLossKind::mse) return cpu::mse_loss(y, t, rows, cols, grad_scale, loss, d_y);
    const cpu::ElementwiseLoss k = kind == ElementwiseLossKind::mae     ? cpu::ElementwiseLoss::mae
                                   : kind == ElementwiseLossKind::huber ? cpu::ElementwiseLoss::huber
                                                                        : cpu::ElementwiseLoss::binary_crossentropy_logits;
    cpu::elementwise_loss(k, y, t, rows, cols, grad_scale, delta, loss, d_y);
  }
  // The loop nn/network.cpp ran before the interface had this entry (its bits).
  void weight_loss_rows(const float* weights, int64_t rows, int64_t cols, float* loss, float* d) const override {
    for (int64_t r = 0; r < rows; ++r) {
      const float w = weights[r];
      loss[r] *= w;
      if (d)
        for (int64_t j = 0; j < cols; ++j) d[r * cols + j] *= w;
    }
  }
  void weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                           double* block_sums, double* penalty) const override {
    const double value = cpu::weight_penalty_grad(n, w, g, mask, l1, l2, block_sums);
    if (penalty) *penalty = value;
  }
  void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm) const override {
    cpu::max_norm_rows(w, rows, cols, max_norm);
  }

  void spmm_xt(int64_t M, const float* X, int64_t ldx, const cpu::CsrView& S, int64_t, const float* bias,
               Activation act, float* Y, int64_t ldy) const override {
    cpu::spmm_xt(M, S.rows, S.cols, X, ldx, S, bias, act, 0.01f, Y, ldy);  // slope unused: identity or relu
  }
  void sddmm(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const cpu::CsrView& S, int64_t,
             float* dW) const override {
    cpu::sddmm(M, dY, lddy, X, ldx, S, dW, false);
  }
  void csr_gather(const float* dense, const cpu::CsrView& S, float* values) const override {
    cpu::csr_gather_values(dense, S.rows, S.cols, S.indptr, S.indices, values);
  }
  void csr_scatter(const float* values, const cpu::CsrView& S, float* dense) const override {
    parallel_ranges(S.rows, 64, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t p = S.indptr[n]; p < S.indptr[n + 1]; ++p) dense[n * S.cols + S.indices[p]] = values[p];
    });
  }

  void gather_rows(const void* src, int64_t row_bytes, const int64_t* index, int64_t first, int64_t rows,
                   void* dst) const override {
    // Rows scattered over a dataset of hundreds of MB come from DRAM: copy them with the team.
    const char* s = static_cast<const char*>(src);
    char* d = static_cast<char*>(dst);
    parallel_ranges(rows, 32, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        std::memcpy(d + r * row_bytes, s + (index ? index[r] : first + r) * row_bytes, static_cast<size_t>(row_bytes));
    });
  }
  void batch_metrics(const float* loss, int64_t rows, const float* out, int64_t n_out, const int64_t* labels,
                     const float* dense, CorrectKind kind, double* loss_sum, int64_t* correct) const override {
    *loss_sum = sum_in_row_order(loss, rows);
    int64_t c = 0;
    if (kind != CorrectKind::none)
      for (int64_t r = 0; r < rows; ++r) c += correct_in_row(kind, out, n_out, labels, dense, r);
    *correct = kind == CorrectKind::none ? -1 : c;
  }

  void sgd_update(const SgdArgs& a, const OptimizerSegment* params, int64_t count) const override {
    for (int64_t i = 0; i < count; ++i)
      cpu::sgd_update(a, params[i].n, params[i].w, params[i].g, params[i].slot0, params[i].mask);
  }
  void adam_update(const AdamArgs& a, const OptimizerSegment* params, int64_t count) const override {
    for (int64_t i = 0; i < count; ++i)
      cpu::adam_update(a, params[i].n, params[i].w, params[i].g, params[i].slot0, params[i].slot1, params[i].mask);
  }

 private:
  std::string name_ = "cpu";
};

}  // namespace

const Backend& cpu_backend() {
  static const CpuBackend* const backend = new CpuBackend();  // never destroyed: outlives every network
  return *backend;
}

}  // namespace dropnet

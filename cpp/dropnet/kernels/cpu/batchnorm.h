// Batch normalisation over (N) for N × C inputs and over (N, H, W) for NCHW, PyTorch semantics:
//   training:  mean, var = batch mean and biased variance per channel; y = (x - mean) / sqrt(var + eps)
//              · gamma + beta; running = (1 - momentum) · running + momentum · batch, with the
//              UNBIASED variance var · M / (M - 1) (M = N·H·W) for running_var.
//   inference: the running statistics in place of the batch ones.
// Layout: x is N × C × HW (HW = 1 for N × C). Optional fused ReLU: y = max(bn(x), 0).
// Per-channel sums run in a fixed order with double totals (threads split channels, or columns
// for HW = 1), so results are bit-identical for any thread count. Forward reads x twice per
// channel (moments, then normalise), the second read hits L2 when a channel fits; backward
// likewise (sums of dy and dy·(x - mean), then dx).
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

// Batch norm + ReLU + 2×2 max pooling with stride 2 (floor mode, no padding) as one layer, for
// N × C × H × W inputs with H, W >= 2. The forward writes the pooled output and its argmax
// (max_pool2d_forward's indices) instead of the full output; the backward takes the pooled
// output's gradient and rebuilds each channel's full gradient (max_pool2d_backward's, masked by
// the pooled output > 0) in a compact scratch plane that stays in L2, instead of reading a full
// gradient and the full output from memory. Forward and backward give the bits of batch norm
// (relu) followed by max_pool2d.
struct BatchNormMaxPool {
  int64_t H = 0, W = 0;
  float* y = nullptr;          // N × C × (H / 2) × (W / 2): written forward, the ReLU mask backward
  int32_t* indices = nullptr;  // same shape
  float* scratch = nullptr;    // backward: scratch_planes × N·H·W floats (one per thread at most)
  int scratch_planes = 0;
  int64_t pooled_plane() const { return (H / 2) * (W / 2); }  // floats of one pooled plane
};

// gamma, beta: C floats or null (1 and 0). running_mean/var: C floats, updated in place, or null.
// saved_mean, saved_invstd: C floats written (for backward). Throws ValueError if N·HW < 2.
void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                const float* beta, float eps, float momentum, float* running_mean,
                                float* running_var, bool relu, float* y, float* saved_mean, float* saved_invstd,
                                const BatchNormMaxPool* pool = nullptr);

// y = (x - running_mean) · invstd · gamma + beta (ReLU optional); saved_invstd (C, optional) gets
// 1 / sqrt(running_var + eps) for backward.
void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, float eps,
                                 bool relu, float* y, float* saved_invstd, const BatchNormMaxPool* pool = nullptr);

// dy: gradient w.r.t. the output. y_relu: the forward output when it was fused with ReLU (dy is
// masked by y > 0), else null. With pool (the forward's), dy is the pooled output's gradient
// (N × C × H/2 × W/2) and y_relu is not read. mean, invstd: what forward saved (running mean and its invstd in
// inference). training: whether forward used batch statistics (then dx has the terms through them).
// dx overwritten (may not alias dy or x); dgamma, dbeta (C, optional) ACCUMULATED (+=).
void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                        const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                        float* dgamma, float* dbeta, const BatchNormMaxPool* pool = nullptr);

// Synchronised batch norm across processes (data-parallel training, docs/distributed.md): the
// statistics are those of the union of every process's batch. sum(ctx, data, n) replaces n
// doubles by their sum over the processes (every process makes the same calls in the same order).
struct SumAcrossProcesses {
  void (*sum)(void* ctx, double* data, int64_t n) = nullptr;
  void* ctx = nullptr;
};
// As batchnorm_forward_training over the processes' batches together: two sums across processes
// (Σx with the value count, then the moments about the global mean). *M_total gets the values per
// channel over all processes (for backward).
void batchnorm_forward_training_sync(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                     const float* beta, float eps, float momentum, float* running_mean,
                                     float* running_var, bool relu, float* y, float* saved_mean, float* saved_invstd,
                                     const SumAcrossProcesses& across, int64_t* M_total,
                                     const BatchNormMaxPool* pool = nullptr);
// Training backward with the gradient sums taken over the processes (one sum across processes);
// dgamma, dbeta get this process's share only (the gradient allreduce adds the others').
void batchnorm_backward_sync(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                             const float* gamma, const float* mean, const float* invstd, int64_t M_total, float* dx,
                             float* dgamma, float* dbeta, const SumAcrossProcesses& across,
                             const BatchNormMaxPool* pool = nullptr);

// Per-ISA bodies (batchnorm_impl.h compiled three times). A channel is `n` blocks of `len`
// contiguous floats, `stride` floats apart (HW > 1); the column bodies work on columns [0, cols)
// of an n × ld matrix (HW = 1), vectorised across columns so each column's sum stays in row order.
constexpr int64_t kBatchNormWrap = 16;  // >= the widest vector in floats
struct BatchNormKernels {
  void (*plane_moments)(const float* x, int64_t n, int64_t stride, int64_t len, float shift, double* s1, double* s2);
  // stream: non-temporal stores for the output (the caller fences).
  void (*plane_affine)(const float* x, float* y, int64_t n, int64_t stride, int64_t len, float scale, float shift,
                       bool relu, bool stream);
  // dy's rows are dy_stride floats apart (stride for a full gradient, len for a compact plane).
  void (*plane_grad_sums)(const float* dy, const float* x, const float* y_relu, int64_t n, int64_t stride,
                          int64_t dy_stride, int64_t len, float mean, double* sum_dy, double* sum_dy_xc);
  void (*plane_grad_input)(const float* dy, const float* x, const float* y_relu, float* dx, int64_t n, int64_t stride,
                           int64_t dy_stride, int64_t len, float k_dy, float k_xc, float mean, float k0, bool stream);
  void (*column_moments)(const float* x, int64_t n, int64_t ld, int64_t cols, const float* shift, double* s1,
                         double* s2);
  void (*column_grad_sums)(const float* dy, const float* x, const float* y_relu, int64_t n, int64_t ld, int64_t cols,
                           const float* mean, double* sum_dy, double* sum_dy_xc);
  // Elementwise passes of the n × C layout over the flat range [begin, end) (rows contiguous);
  // coefficient arrays hold C + kBatchNormWrap floats, entry j being column j mod C's value.
  void (*flat_affine)(const float* x, float* y, int64_t begin, int64_t end, int64_t C, const float* scale,
                      const float* shift, bool relu);
  void (*flat_grad_input)(const float* dy, const float* x, const float* y_relu, float* dx, int64_t begin,
                          int64_t end, int64_t C, const float* k_dy, const float* k_xc, const float* mean,
                          const float* k0);
  // Batch norm + ReLU + 2×2 max pooling of one channel (BatchNormMaxPool): n planes of H × W
  // floats, stride apart, as ReLU(x·scale + shift) pooled into y and idx (out_stride apart).
  void (*plane_relu_max_pool)(const float* x, int64_t n, int64_t stride, int64_t H, int64_t W, float scale,
                              float shift, float* y, int32_t* idx, int64_t out_stride);
  // Its backward: the channel's gradient w.r.t. the batch norm output, rebuilt from the pooled
  // gradient dy (masked by the pooled output y > 0) into n compact planes of H·W floats.
  void (*plane_max_unpool)(const float* dy, const int32_t* idx, const float* y, int64_t n, int64_t out_stride,
                           int64_t H, int64_t W, float* plane);
};
const BatchNormKernels& batchnorm_kernels_scalar();
const BatchNormKernels& batchnorm_kernels_avx2();
const BatchNormKernels& batchnorm_kernels_avx512();

}  // namespace cpu
}  // namespace dropnet

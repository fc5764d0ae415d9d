// The simulated device: kernels/cuda/device_backend.h over launchers that run the CUDA kernels'
// per-thread bodies and block programs on the host, over the grids the .cu launchers use
// (cuda_sim.h), in memory kept apart from the host. Every block is mmap'ed PROT_NONE and opened
// (read/write) only while a backend call runs, so a network that dereferenced device memory on
// the host outside the interface would crash the test with SIGSEGV instead of passing.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>

#include "conv_sim.h"
#include "cuda_sim.h"
#include "gemm_sim.h"
#include "dropnet/kernels/cuda/activation_body.h"
#include "dropnet/kernels/cuda/batchnorm_body.h"
#include "dropnet/kernels/cuda/device_backend.h"
#include "dropnet/kernels/cuda/dropout_body.h"
#include "dropnet/kernels/cuda/elementwise_loss_body.h"
#include "dropnet/kernels/cuda/gemm_body.h"
#include "dropnet/kernels/cuda/max_norm_body.h"
#include "dropnet/kernels/cuda/optimizer_body.h"
#include "dropnet/kernels/cuda/pooling_body.h"
#include "dropnet/kernels/cuda/softmax_xent_body.h"
#include "dropnet/kernels/cuda/sparse_body.h"
#include "dropnet/kernels/cuda/training_batch_body.h"
#include "dropnet/kernels/cuda/weight_penalty_body.h"

namespace dropnet {
namespace testing {

// The device's memory: page-aligned mappings, inaccessible except inside an Open scope.
class SimMemory {
 public:
  ~SimMemory() {
    for (auto& b : blocks_) munmap(b.first, b.second);
  }
  void* alloc(size_t bytes) {
    if (bytes == 0) return nullptr;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t mapped = (bytes + page - 1) / page * page;
    void* p = mmap(nullptr, mapped, depth_ ? PROT_READ | PROT_WRITE : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    blocks_[p] = mapped;
    return p;
  }
  void free(void* p) noexcept {
    auto it = blocks_.find(p);
    if (it == blocks_.end()) return;
    munmap(it->first, it->second);
    blocks_.erase(it);
  }
  bool owns(const void* p) const {
    auto it = blocks_.upper_bound(const_cast<void*>(p));
    if (it == blocks_.begin()) return false;
    --it;
    const char* base = static_cast<const char*>(it->first);
    return static_cast<const char*>(p) >= base && static_cast<const char*>(p) < base + it->second;
  }
  size_t n_blocks() const { return blocks_.size(); }
  // Bytes copied host -> device and device -> host so far (what would cross PCIe), and the
  // optimizer's multi-tensor calls.
  size_t bytes_in = 0, bytes_out = 0, optimizer_calls = 0;
  // Open while alive (nested scopes are fine).
  class Open {
   public:
    explicit Open(SimMemory& m) : m_(m) {
      if (m_.depth_++ == 0) m_.protect(PROT_READ | PROT_WRITE);
    }
    ~Open() {
      if (--m_.depth_ == 0) m_.protect(PROT_NONE);
    }
    Open(const Open&) = delete;
    Open& operator=(const Open&) = delete;

   private:
    SimMemory& m_;
  };

 private:
  void protect(int prot) {
    for (auto& b : blocks_)
      if (mprotect(b.first, b.second, prot) != 0) throw std::runtime_error("sim device: mprotect failed");
  }
  std::map<void*, size_t> blocks_;
  int depth_ = 0;
};

// The launchers of kernels/cuda/*.h, each the .cu file's launch with its grid simulated.
class SimKernels {
 public:
  SimKernels() : mem_(std::make_shared<SimMemory>()) {}
  SimMemory& memory() const { return *mem_; }

  void* alloc(size_t bytes) const { return mem_->alloc(bytes); }
  void free(void* p) const noexcept { mem_->free(p); }
  void to_device(void* dst, const void* src, size_t bytes) const {
    require_device(dst, "to_device: dst");
    SimMemory::Open open(*mem_);
    std::memcpy(dst, src, bytes);
    mem_->bytes_in += bytes;
  }
  void to_host(void* dst, const void* src, size_t bytes) const {
    require_device(src, "to_host: src");
    SimMemory::Open open(*mem_);
    std::memcpy(dst, src, bytes);
    mem_->bytes_out += bytes;
  }
  void copy(void* dst, const void* src, size_t bytes) const {
    require_device(dst, "copy: dst");
    require_device(src, "copy: src");
    SimMemory::Open open(*mem_);
    std::memmove(dst, src, bytes);
  }
  void zero(void* dst, size_t bytes) const {
    if (!bytes) return;
    require_device(dst, "zero: dst");
    SimMemory::Open open(*mem_);
    std::memset(dst, 0, bytes);
  }

  // What cuda::sgemm (kernels/cuda/gemm.cu, its default backend) launches for this call, each
  // launch simulated: the beta·C pass or the tiles of gemm_plan's shape (split over the K blocks
  // into the workspace, then added in block order, when the workspace allows), then the epilogue.
  int64_t sgemm_workspace(int64_t M, int64_t N, int64_t K) const { return cuda::gemm_workspace_floats(M, N, K); }
  void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue* ep, float* workspace,
             int64_t workspace_floats) const {
    args_on_device("sgemm", A, B, C, workspace);
    if (ep) args_on_device("sgemm epilogue", ep->bias, ep->pre_activation, ep->mask_bits);
    SimMemory::Open open(*mem_);
    const cuda::GemmPlan p =
        cuda::gemm_plan(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep, workspace, workspace_floats);
    simulate_sgemm(p, trans_a, trans_b, M, N, K, beta, C, ldc, ep);
  }

  void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                       uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) const {
    args_on_device("dropout_forward", x, y, mask_bits);
    run_pass(cuda::forward_pass(x, y, threshold, scale, seed, stream, mask_bits, index_offset), n);
  }
  void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale) const {
    args_on_device("dropout_backward_bits", dy, mask_bits, dx);
    run_pass(cuda::backward_bits_pass(dy, mask_bits, dx, scale), n);
  }
  void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float a, float b,
                             float dropped_value, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset) const {
    args_on_device("alpha_dropout_forward", x, y, mask_bits);
    run_pass(cuda::alpha_pass(x, y, threshold, a, b, dropped_value, seed, stream, mask_bits, index_offset), n);
  }

  // cuda::spatial_dropout_forward: the channels' keep bits (an element pass over n_channels), then
  // the apply step that the backward runs too.
  void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                               float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                               uint64_t index_offset) const {
    if (n_channels <= 0) return;
    args_on_device("spatial_dropout_forward", x, y, mask_bits);
    run_pass(cuda::forward_pass(nullptr, nullptr, threshold, 1.f, seed, stream, mask_bits, index_offset), n_channels);
    spatial_dropout_backward(x, y, n_channels, channel_size, mask_bits, scale);
  }
  void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                                const uint64_t* mask_bits, float scale) const {
    if (n_channels <= 0 || channel_size <= 0) return;
    args_on_device("spatial_dropout apply", dy, dx, mask_bits);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(n_channels * channel_size);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) {
      cuda::spatial_apply_thread(dy, dx, n_channels, channel_size, mask_bits, scale, g, b, t);
    });
  }

  void activation_forward(ActivationKind kind, const float* x, float* y, int64_t n, float slope) const {
    if (n <= 0) return;
    args_on_device("activation_forward", x, y);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(n);
    simulate_threads(g, false,
                     [&](uint32_t b, uint32_t t) { cuda::activation_forward_thread(kind, x, y, n, slope, g, b, t); });
  }
  void activation_backward(ActivationKind kind, int64_t rows, int64_t cols, const float* dy, const float* y,
                           const float* pre, const uint64_t* keep_bits, float dropout_scale, float slope, float* d_pre,
                           float* d_bias) const {
    args_on_device("activation_backward", dy, y, pre, keep_bits, d_pre, d_bias);
    SimMemory::Open open(*mem_);
    if (rows > 0 && cols > 0) {
      const cuda::ActivationBackwardArgs a{kind,      rows,          cols,  dy,    y,     pre,
                                           keep_bits, dropout_scale, slope, d_pre, d_bias};
      const cuda::Grid g = cuda::grid_for(rows * cols);
      simulate_threads(g, false, [&](uint32_t b, uint32_t t) { cuda::activation_backward_thread(a, g, b, t); });
    }
    if (d_bias && cols > 0) {
      const cuda::Grid g = cuda::grid_for(cols);
      simulate_threads(g, false, [&](uint32_t b, uint32_t t) {
        cuda::bias_grad_thread(d_pre, rows > 0 ? rows : 0, cols, d_bias, g, b, t);
      });
    }
  }

  void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                  const float* beta, float eps, float momentum, float* running_mean, float* running_var,
                                  bool relu, float* y, float* saved_mean, float* saved_invstd) const {
    if (C <= 0) return;
    args_on_device("batchnorm_forward_training", x, gamma, beta, running_mean, running_var, y, saved_mean,
                   saved_invstd);
    SimMemory::Open open(*mem_);
    const cuda::BatchNormForwardArgs a{x, {N, C, HW}, gamma, beta, eps, momentum, running_mean, running_var, relu, y,
                                       saved_mean, saved_invstd};
    simulate_blocks(cuda::batchnorm_grid(C), false, [&](HostBlock& blk, double* a1, double* a2) {
      cuda::batchnorm_forward_training_block(blk, a, a1, a2);
    });
  }
  void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                   const float* beta, const float* running_mean, const float* running_var, float eps,
                                   bool relu, float* y, float* saved_invstd) const {
    if (C <= 0) return;
    args_on_device("batchnorm_forward_inference", x, gamma, beta, running_mean, running_var, y, saved_invstd);
    SimMemory::Open open(*mem_);
    const cuda::BatchNormInferenceArgs a{x, {N, C, HW}, gamma, beta, running_mean, running_var, eps, relu, y,
                                         saved_invstd};
    simulate_blocks(cuda::batchnorm_grid(C), false,
                    [&](HostBlock& blk, double*, double*) { cuda::batchnorm_forward_inference_block(blk, a); });
  }
  void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                          const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                          float* dgamma, float* dbeta) const {
    if (N * HW * C <= 0) return;
    args_on_device("batchnorm_backward", dy, x, y_relu, gamma, mean, invstd, dx, dgamma, dbeta);
    SimMemory::Open open(*mem_);
    const cuda::BatchNormBackwardArgs a{dy, x, y_relu, {N, C, HW}, gamma, mean, invstd, training, dx, dgamma, dbeta};
    simulate_blocks(cuda::batchnorm_grid(C), false, [&](HostBlock& blk, double* a1, double* a2) {
      cuda::batchnorm_backward_block(blk, a, a1, a2);
    });
  }

  // The convolution's passes as conv_sim.h runs them (the launch's grids); the backward's weight
  // gradient chunks live in conv_sim.h's own scratch, so the device workspace is only checked.
  void conv2d_forward(const float* x, int64_t N, const cuda::ConvShape& g, const float* w, int64_t F,
                      const float* bias, Activation activation, float leaky_slope, float* y) const {
    args_on_device("conv2d_forward", x, w, bias, y);
    SimMemory::Open open(*mem_);
    simulate_conv2d_forward(cuda::ConvForwardArgs{x, w, bias, y, g, N, F, activation, leaky_slope}, false, false);
  }
  int64_t conv2d_backward_workspace(const cuda::ConvShape& g, int64_t N, int64_t F) const {
    return cuda::conv_weight_grad_scratch(g, N, F);
  }
  void conv2d_backward(const float* dy, const float* x, int64_t N, const cuda::ConvShape& g, const float* w, int64_t F,
                       float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats) const {
    args_on_device("conv2d_backward", dy, x, w, dx, dw, db, workspace);
    if (workspace_floats < cuda::conv_weight_grad_scratch(g, N, F))
      throw std::logic_error("sim device: conv2d_backward: workspace too small");
    SimMemory::Open open(*mem_);
    simulate_conv2d_backward(dy, x, N, g, w, F, dx, dw, db, false, false);
  }

  void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y, int32_t* indices) const {
    run_pool(cuda::PoolArgs{cuda::PoolKind::max, g, planes, true, x, nullptr, y, indices}, true);
  }
  void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g,
                           float* dx) const {
    run_pool(cuda::PoolArgs{cuda::PoolKind::max, g, planes, true, dy, indices, dx, nullptr}, false);
  }
  void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                          float* y) const {
    run_pool(cuda::PoolArgs{cuda::PoolKind::avg, g, planes, count_include_pad, x, nullptr, y, nullptr}, true);
  }
  void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad,
                           float* dx) const {
    run_pool(cuda::PoolArgs{cuda::PoolKind::avg, g, planes, count_include_pad, dy, nullptr, dx, nullptr}, false);
  }
  void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y) const {
    if (planes <= 0) return;
    args_on_device("global_avg_pool2d_forward", x, y);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(planes);
    simulate_threads(g, false,
                     [&](uint32_t b, uint32_t t) { cuda::global_avg_forward_thread(x, planes, hw, y, g, b, t); });
  }
  void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx) const {
    if (planes * hw <= 0) return;
    args_on_device("global_avg_pool2d_backward", dy, dx);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(planes * hw);
    simulate_threads(g, false,
                     [&](uint32_t b, uint32_t t) { cuda::global_avg_backward_thread(dy, planes, hw, dx, g, b, t); });
  }

  void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           float grad_scale, float* loss, float* d_logits) const {
    run_xent(cuda::SoftmaxXentArgs{logits, labels, nullptr, rows, classes, grad_scale, loss, d_logits});
  }
  void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                          float* loss, float* d_logits) const {
    run_xent(cuda::SoftmaxXentArgs{logits, nullptr, targets, rows, classes, grad_scale, loss, d_logits});
  }

  void elementwise_loss(ElementwiseLossKind kind, const float* y, const float* t, int64_t rows, int64_t cols,
                        float grad_scale, float delta, float* loss, float* d_y) const {
    if (rows <= 0) return;
    args_on_device("elementwise_loss", y, t, loss, d_y);
    SimMemory::Open open(*mem_);
    const cuda::ElementwiseLossArgs a{kind, y, t, rows, cols, grad_scale, delta, loss, d_y};
    const cuda::Grid g = cuda::grid_for(rows);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) { cuda::elementwise_loss_thread(a, g, b, t); });
  }
  void weight_loss_rows(const float* weights, int64_t rows, int64_t cols, float* loss, float* d) const {
    if (rows <= 0) return;
    args_on_device("weight_loss_rows", weights, loss, d);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(rows);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) {
      cuda::weight_loss_rows_thread(weights, rows, cols, loss, d, g, b, t);
    });
  }
  // cuda/weight_penalty.cu: the chunks' block program, then the one-thread total.
  void weight_penalty_grad(int64_t n, const float* w, float* g, const float* mask, float l1, float l2,
                           double* block_sums) const {
    args_on_device("weight_penalty_grad", w, g, mask);
    args_on_device("weight_penalty_grad block_sums", block_sums);
    SimMemory::Open open(*mem_);
    const cuda::WeightPenaltyArgs a = cuda::weight_penalty_args(n, w, g, mask, l1, l2, block_sums);
    const int64_t chunks = penalty_blocks(n);
    if (chunks > 0)
      simulate_blocks(cuda::weight_penalty_grid(n), false,
                      [&](HostBlock& blk, double* a1, double* a2) { cuda::weight_penalty_block(blk, a, a1, a2); });
    simulate_threads(cuda::Grid{1, 1}, false,
                     [&](uint32_t b, uint32_t t) { cuda::penalty_total_thread(block_sums, chunks, b, t); });
  }
  void max_norm_rows(float* w, int64_t rows, int64_t cols, float max_norm) const {
    if (rows <= 0 || cols <= 0) return;
    args_on_device("max_norm_rows", w);
    SimMemory::Open open(*mem_);
    const cuda::MaxNormArgs a{w, rows, cols, max_norm};
    simulate_blocks(cuda::max_norm_grid(rows), false,
                    [&](HostBlock& blk, double* a1, double*) { cuda::max_norm_block(blk, a, a1); });
  }

  // cuda::apply_epilogue from row 0: one thread per mask word of the output (activation_body.h).
  void apply_epilogue(const GemmEpilogue& ep, int64_t rows, int64_t N, float* C, int64_t ldc) const {
    if (rows <= 0 || N <= 0) return;
    args_on_device("apply_epilogue", C, ep.bias, ep.pre_activation, ep.mask_bits);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(cuda::epilogue_words(0, rows, N).count);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) { cuda::epilogue_thread(ep, 0, rows, N, C, ldc, g, b, t); });
  }

  // The layout conversions of kernels/cuda/sparse.cu, their bodies over the launch's grid.
  void csr_indptr_to_int32(const int64_t* indptr, int64_t n, int32_t* out) const {
    if (n <= 0) return;
    args_on_device("csr_indptr_to_int32", indptr, out);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(n);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) { cuda::csr_indptr_to_int32_thread(indptr, n, out, g, b, t); });
  }
  void csr_gather_values(const float* values, const int64_t* value_index, int64_t nnz, float* out) const {
    if (nnz <= 0) return;
    args_on_device("csr_gather_values", values, value_index, out);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(nnz);
    simulate_threads(g, false,
                     [&](uint32_t b, uint32_t t) { cuda::csr_gather_values_thread(values, value_index, nnz, out, g, b, t); });
  }
  void csr_gather_dense(const float* dense, int64_t rows, int64_t cols, const int64_t* indptr, const int32_t* indices,
                        float* values) const {
    if (rows <= 0) return;
    args_on_device("csr_gather_dense", dense, indptr, indices, values);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(rows);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) {
      cuda::csr_gather_dense_thread(dense, rows, cols, indptr, indices, values, g, b, t);
    });
  }
  void csr_scatter_dense(const float* values, int64_t rows, int64_t cols, const int64_t* indptr,
                         const int32_t* indices, float* dense) const {
    if (rows <= 0) return;
    args_on_device("csr_scatter_dense", values, indptr, indices, dense);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(rows);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) {
      cuda::csr_scatter_dense_thread(values, rows, cols, indptr, indices, dense, g, b, t);
    });
  }
  // cuSPARSE's SpMM and SDDMM are library calls with no body of ours: a plain reference in their
  // contract (kernels/cuda/sparse.h), each sum in float in ascending index order (cuSPARSE's own
  // order is another, within the same float32 bound).
  void spmm_xt_cusparse(int64_t M, const float* X, int64_t ldx, const cuda::CsrMatrix32& S, float* Y,
                        int64_t ldy) const {
    args_on_device("spmm_xt_cusparse", X, Y, S.indptr, S.indices, S.values);
    SimMemory::Open open(*mem_);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < S.rows; ++n) {
        float acc = 0.f;
        for (int32_t p = S.indptr[n]; p < S.indptr[n + 1]; ++p) acc += S.values[p] * X[m * ldx + S.indices[p]];
        Y[m * ldy + n] = acc;
      }
  }
  void sddmm_cusparse(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx,
                      const cuda::CsrMatrix32& S, float* dW, bool accumulate) const {
    args_on_device("sddmm_cusparse", dY, X, dW, S.indptr, S.indices);
    SimMemory::Open open(*mem_);
    for (int64_t n = 0; n < S.rows; ++n)
      for (int32_t p = S.indptr[n]; p < S.indptr[n + 1]; ++p) {
        float acc = 0.f;
        for (int64_t m = 0; m < M; ++m) acc += dY[m * lddy + n] * X[m * ldx + S.indices[p]];
        dW[p] = accumulate ? dW[p] + acc : acc;
      }
  }

  // cuda/training_batch.cu's launches: the gather over the batch's words, the metrics one block.
  void gather_rows(const void* src, int64_t row_bytes, const int64_t* index, int64_t first, int64_t rows,
                   void* dst) const {
    if (rows <= 0 || row_bytes <= 0) return;
    args_on_device("gather_rows", src, dst);
    args_on_device("gather_rows index", index);
    SimMemory::Open open(*mem_);
    const cuda::GatherRowsArgs a{static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), index, first, rows,
                                 row_bytes / 4};
    const cuda::Grid g = cuda::grid_for(rows * a.row_words);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) { cuda::gather_rows_thread(a, g, b, t); });
  }
  void batch_metrics(const float* loss, int64_t rows, const float* out, int64_t n_out, const int64_t* labels,
                     const float* dense, CorrectKind kind, double* loss_sum, int64_t* correct) const {
    args_on_device("batch_metrics", loss, out, dense);
    args_on_device("batch_metrics labels", labels, correct);
    args_on_device("batch_metrics loss_sum", loss_sum);
    SimMemory::Open open(*mem_);
    const cuda::BatchMetricsArgs a{loss, rows, out, n_out, labels, dense, kind, loss_sum, correct};
    simulate_blocks(cuda::Grid{1, cuda::kThreadsPerBlock}, false,
                    [&](HostBlock& blk, double* a1, double*) { cuda::batch_metrics_block(blk, a, a1); });
  }

  void sgd_update_multi(const SgdArgs& a, const cuda::OptimizerSegment* segments, int64_t count) const {
    ++mem_->optimizer_calls;
    run_multi(cuda::SegmentUpdate::sgd, a, AdamArgs{}, segments, count);
  }
  void adam_update_multi(const AdamArgs& a, const cuda::OptimizerSegment* segments, int64_t count) const {
    ++mem_->optimizer_calls;
    run_multi(cuda::SegmentUpdate::adam, SgdArgs{}, a, segments, count);
  }

 private:
  void require_device(const void* p, const char* what) const {
    if (!mem_->owns(p)) throw std::logic_error(std::string("sim device: ") + what + " is not device memory");
  }
  // Every non-null pointer argument of a launch must be device memory: a host pointer handed to a
  // kernel would fail on the GPU.
  template <class... P>
  void args_on_device(const char* op, const P*... ptrs) const {
    for (const void* p : {static_cast<const void*>(ptrs)...})
      if (p) require_device(p, op);
  }
  // cuda/pooling.cu's run_pool: items are the output cells (forward) or the input cells (backward).
  void run_pool(const cuda::PoolArgs& a, bool forward) const {
    args_on_device("pooling", a.in, a.out);
    args_on_device("pooling indices", a.indices_in, a.indices_out);
    const int64_t items = a.planes * (forward ? a.g.OH * a.g.OW : a.g.H * a.g.W);
    if (items <= 0) return;
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(items);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) {
      if (forward) cuda::pool_forward_thread(a, g, b, t);
      else cuda::pool_backward_thread(a, g, b, t);
    });
  }
  void run_pass(const DropoutPass& p, int64_t n) const {
    if (n <= 0) return;
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for((n + 63) / 64);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) { cuda::dropout_pass_thread(p, n, g, b, t); });
  }
  void run_xent(const cuda::SoftmaxXentArgs& a) const {
    if (a.rows <= 0) return;
    args_on_device("softmax_xent", a.logits, a.targets, a.loss, a.d_logits);
    args_on_device("softmax_xent labels", a.labels);
    SimMemory::Open open(*mem_);
    const cuda::Grid g = cuda::grid_for(a.rows);
    simulate_threads(g, false, [&](uint32_t b, uint32_t t) { cuda::softmax_xent_thread(a, g, b, t); });
  }
  void run_multi(cuda::SegmentUpdate kind, const SgdArgs& sgd, const AdamArgs& adam,
                 const cuda::OptimizerSegment* segments, int64_t count) const {
    for (int64_t i = 0; i < count; ++i)
      args_on_device("optimizer update", segments[i].w, segments[i].g, segments[i].slot0, segments[i].slot1,
                     segments[i].mask);
    SimMemory::Open open(*mem_);
    cuda::for_each_segment_list(segments, count, [&](const cuda::SegmentList& list) {
      const cuda::Grid g = cuda::grid_for(list.start[list.count]);
      simulate_threads(g, false,
                       [&](uint32_t b, uint32_t t) { cuda::multi_tensor_thread(kind, sgd, adam, list, g, b, t); });
    });
  }
  std::shared_ptr<SimMemory> mem_;
};

using SimBackend = cuda::DeviceBackend<SimKernels>;

inline std::shared_ptr<const SimBackend> make_sim_backend() {
  return std::make_shared<const SimBackend>("_sim", SimKernels());
}

}  // namespace testing
}  // namespace dropnet

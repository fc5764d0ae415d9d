// Batch-norm drivers (threads, per-channel scalar maths, ISA choice); the units: batchnorm_scalar.cpp,
// batchnorm_avx2.cpp, batchnorm_avx512.cpp.
#include "dropnet/kernels/cpu/batchnorm.h"

#include <algorithm>
#include <vector>

#include "dropnet/core/batchnorm_element.h"
#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/error.h"
#include "dropnet/core/parallel.h"

#include <xmmintrin.h>

namespace dropnet {
namespace cpu {

namespace {

const BatchNormKernels& active_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return batchnorm_kernels_avx512();
    case Isa::avx2: return batchnorm_kernels_avx2();
    case Isa::scalar: break;
  }
  return batchnorm_kernels_scalar();
}

// Channels (or columns) per thread piece: enough that a piece holds >= 16k elements.
int64_t channel_grain(int64_t elems_per_channel) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, elems_per_channel));
}

// Outputs of at least this many bytes are written with streaming stores: far larger than the
// L2s, they would leave the cache anyway, and going around it keeps the channel the second pass
// re-reads in L2 and saves the read-for-ownership (measured 1.5x on (128, 32, 28, 28), 1 thread).
constexpr int64_t kStreamBytes = int64_t{4} << 20;

inline float at_or(const float* a, int64_t i, float fallback) { return a ? a[i] : fallback; }

// ---- batch norm + ReLU + 2×2 max pooling (BatchNormMaxPool)
void check_pool(const BatchNormMaxPool* pool, int64_t HW, bool relu) {
  if (!pool) return;
  DROPNET_CHECK(relu && pool->H >= 2 && pool->W >= 2 && pool->H * pool->W == HW,
                "batch_norm: pooling is fused only after ReLU, on planes of at least 2 × 2 with H·W = ", HW,
                ", got relu=", relu, ", H=", pool->H, ", W=", pool->W);
}

// Channel c's output pass: y = x·scale + shift (ReLU optional), or with pool its 2×2 max pooling.
void channel_output(const BatchNormKernels& k, const float* x, float* y, int64_t c, int64_t N, int64_t C, int64_t HW,
                    float scale, float shift, bool relu, bool stream, const BatchNormMaxPool* pool) {
  if (!pool) {
    k.plane_affine(x + c * HW, y + c * HW, N, C * HW, HW, scale, shift, relu, stream);
    return;
  }
  const int64_t out = pool->pooled_plane();
  k.plane_relu_max_pool(x + c * HW, N, C * HW, pool->H, pool->W, scale, shift, pool->y + c * out,
                        pool->indices + c * out, C * out);
}

// fn(c, g, g_stride) for every channel c, threads splitting the channels, with g channel c's
// gradient w.r.t. the batch norm output: dy's rows (C·HW apart), or with pool a scratch plane
// rebuilt from the pooled gradient (one per thread, HW apart).
template <class Fn>
void for_channel_grads(const BatchNormKernels& k, const float* dy, int64_t N, int64_t C, int64_t HW, const BatchNormMaxPool* pool, bool stream,
                       Fn&& fn) {
  const int64_t grain = channel_grain(N * HW);
  if (!pool) {
    for_each_piece(C, grain, INT32_MAX, [&](int, int64_t c0, int64_t c1) {
      DenormalsFlushed flush;
      for (int64_t c = c0; c < c1; ++c) fn(c, dy + c * HW, C * HW);
      if (stream) _mm_sfence();
    });
    return;
  }
  DROPNET_CHECK(pool->scratch && pool->scratch_planes >= 1, "batch_norm: the fused pooling's backward needs scratch");
  for_each_piece(C, grain, pool->scratch_planes, [&](int part, int64_t c0, int64_t c1) {
    DenormalsFlushed flush;
    float* plane = pool->scratch + part * N * HW;
    const int64_t out = pool->pooled_plane();
    for (int64_t c = c0; c < c1; ++c) {
      k.plane_max_unpool(dy + c * out, pool->indices + c * out, pool->y + c * out, N, C * out, pool->H, pool->W,
                         plane);
      fn(c, plane, HW);
    }
    if (stream) _mm_sfence();
  });
}

// Coefficient array of the N × C layout made wrap-around: kBatchNormWrap more entries, entry j
// being column j mod C's (BatchNormKernels::flat_*).
void extend_wrapped(std::vector<float>& v, int64_t C) {
  v.resize(static_cast<size_t>(C + kBatchNormWrap));
  for (int64_t j = C; j < C + kBatchNormWrap; ++j) v[j] = v[j % C];
}

// The elementwise pass of the N × C layout: threads split rows (any split: elements are independent).
template <class Fn>
void parallel_rows(int64_t N, int64_t C, Fn&& fn) {
  parallel_ranges(N, channel_grain(C), [&](int64_t r0, int64_t r1) {
    DenormalsFlushed flush;
    fn(r0 * C, r1 * C);
  });
}

// Column ranges for the N × C layout, split at multiples of 16 columns so that only the last
// range has a partial vector (each range pays its tail in scalar code on every row).
template <class Fn>
void parallel_columns(int64_t C, int64_t N, Fn&& fn) {
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
  parallel_ranges(blocks, channel_grain(N * kBlock), [&](int64_t b0, int64_t b1) {
    fn(b0 * kBlock, b1 * kBlock < C ? b1 * kBlock : C);
  });
}

// y = x·scale[c] + shift[c] (ReLU optional) over every channel, or with pool its pooling.
void channel_affine(const BatchNormKernels& k, const float* x, float* y, int64_t N, int64_t C, int64_t HW,
                    std::vector<float>& scale, std::vector<float>& shift, bool relu, const BatchNormMaxPool* pool) {
  if (HW > 1) {
    const bool stream = !pool && N * C * HW * int64_t{sizeof(float)} >= kStreamBytes;
    for_each_piece(C, channel_grain(N * HW), INT32_MAX, [&](int, int64_t c0, int64_t c1) {
      DenormalsFlushed flush;
      for (int64_t c = c0; c < c1; ++c) channel_output(k, x, y, c, N, C, HW, scale[c], shift[c], relu, stream, pool);
      if (stream) _mm_sfence();
    });
    return;
  }
  extend_wrapped(scale, C);
  extend_wrapped(shift, C);
  parallel_rows(N, C, [&](int64_t b, int64_t e) { k.flat_affine(x, y, b, e, C, scale.data(), shift.data(), relu); });
}

}  // namespace

void batchnorm_forward_training(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                const float* beta, float eps, float momentum, float* running_mean,
                                float* running_var, bool relu, float* y, float* saved_mean, float* saved_invstd,
                                const BatchNormMaxPool* pool) {
  const int64_t M = N * HW;
  DROPNET_CHECK(M >= 2, "batch_norm: training needs more than 1 value per channel, got N*H*W = ", M);
  check_pool(pool, HW, relu);
  if (C == 0) return;
  const BatchNormKernels& k = active_kernels();
  if (HW > 1) {
    const bool stream = !pool && N * C * HW * int64_t{sizeof(float)} >= kStreamBytes;
    for_each_piece(C, channel_grain(M), INT32_MAX, [&](int, int64_t c0, int64_t c1) {
      DenormalsFlushed flush;
      for (int64_t c = c0; c < c1; ++c) {
        const float* xc = x + c * HW;
        double s1, s2;
        k.plane_moments(xc, N, C * HW, HW, xc[0], &s1, &s2);
        const ChannelStats st = finish_moments(s1, s2, xc[0], M, at_or(gamma, c, 1.f), at_or(beta, c, 0.f), eps,
                                               momentum, running_mean ? running_mean + c : nullptr,
                                               running_var ? running_var + c : nullptr);
        saved_mean[c] = st.mean;
        saved_invstd[c] = st.invstd;
        channel_output(k, x, y, c, N, C, HW, st.scale, st.shift, relu, stream, pool);
      }
      if (stream) _mm_sfence();
    });
    return;
  }
  // Per-column scratch allocated here, not inside the threads (an exception there cannot escape).
  std::vector<double> s1(C), s2(C);
  std::vector<float> scale(C), shift(C);
  parallel_columns(C, N, [&](int64_t j0, int64_t j1) {
    DenormalsFlushed flush;
    k.column_moments(x + j0, N, C, j1 - j0, x + j0, s1.data() + j0, s2.data() + j0);
    for (int64_t c = j0; c < j1; ++c) {
      const ChannelStats st = finish_moments(s1[c], s2[c], x[c], M, at_or(gamma, c, 1.f), at_or(beta, c, 0.f), eps,
                                             momentum, running_mean ? running_mean + c : nullptr,
                                             running_var ? running_var + c : nullptr);
      saved_mean[c] = st.mean;
      saved_invstd[c] = st.invstd;
      scale[c] = st.scale;
      shift[c] = st.shift;
    }
  });
  extend_wrapped(scale, C);
  extend_wrapped(shift, C);
  parallel_rows(N, C, [&](int64_t b, int64_t e) { k.flat_affine(x, y, b, e, C, scale.data(), shift.data(), relu); });
}

void batchnorm_forward_inference(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, float eps,
                                 bool relu, float* y, float* saved_invstd, const BatchNormMaxPool* pool) {
  check_pool(pool, HW, relu);
  const BatchNormKernels& k = active_kernels();
  std::vector<float> scale(C), shift(C);
  const bool empty = N * HW * C == 0;  // still fills saved_invstd below
  for (int64_t c = 0; c < C; ++c) {
    const ChannelStats st = inference_stats(running_mean[c], running_var[c], at_or(gamma, c, 1.f), at_or(beta, c, 0.f), eps);
    scale[c] = st.scale;
    shift[c] = st.shift;
    if (saved_invstd) saved_invstd[c] = st.invstd;
  }
  if (empty) return;
  channel_affine(k, x, y, N, C, HW, scale, shift, relu, pool);
}


void batchnorm_backward(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                        const float* gamma, const float* mean, const float* invstd, bool training, float* dx,
                        float* dgamma, float* dbeta, const BatchNormMaxPool* pool) {
  const int64_t M = N * HW;
  check_pool(pool, HW, true);
  if (M * C == 0) return;  // no element: dx is empty, nothing adds to dgamma / dbeta
  const BatchNormKernels& k = active_kernels();
  if (HW > 1) {
    const bool stream = N * C * HW * int64_t{sizeof(float)} >= kStreamBytes;
    for_channel_grads(k, dy, N, C, HW, pool, stream, [&](int64_t c, const float* g, int64_t g_stride) {
      const int64_t off = c * HW;
      const float* yc = y_relu && !pool ? y_relu + off : nullptr;
      double sum_dy, sum_dy_xc;
      k.plane_grad_sums(g, x + off, yc, N, C * HW, g_stride, HW, mean[c], &sum_dy, &sum_dy_xc);
      const GradCoefficients q = grad_coefficients(sum_dy, sum_dy_xc, M, at_or(gamma, c, 1.f), invstd[c], training,
                                                   dgamma ? dgamma + c : nullptr, dbeta ? dbeta + c : nullptr);
      k.plane_grad_input(g, x + off, yc, dx + off, N, C * HW, g_stride, HW, q.k_dy, q.k_xc, mean[c], q.k0, stream);
    });
    return;
  }
  std::vector<double> sum_dy(C), sum_dy_xc(C);  // scratch allocated outside the threads
  std::vector<float> k_dy(C), k_xc(C), k0(C), mean_w(mean, mean + C);
  parallel_columns(C, N, [&](int64_t j0, int64_t j1) {
    DenormalsFlushed flush;
    const float* yc = y_relu ? y_relu + j0 : nullptr;
    k.column_grad_sums(dy + j0, x + j0, yc, N, C, j1 - j0, mean + j0, sum_dy.data() + j0, sum_dy_xc.data() + j0);
    for (int64_t c = j0; c < j1; ++c) {
      const GradCoefficients q = grad_coefficients(sum_dy[c], sum_dy_xc[c], M, at_or(gamma, c, 1.f), invstd[c],
                                                   training, dgamma ? dgamma + c : nullptr, dbeta ? dbeta + c : nullptr);
      k_dy[c] = q.k_dy;
      k_xc[c] = q.k_xc;
      k0[c] = q.k0;
    }
  });
  for (std::vector<float>* v : {&k_dy, &k_xc, &k0, &mean_w}) extend_wrapped(*v, C);
  parallel_rows(N, C, [&](int64_t b, int64_t e) {
    k.flat_grad_input(dy, x, y_relu, dx, b, e, C, k_dy.data(), k_xc.data(), mean_w.data(), k0.data());
  });
}

// ------------------------------------------------------------------ synchronised (docs/distributed.md)

namespace {
// Per-channel Σ(x - shift[c]) and Σ(x - shift[c])² of this process's batch into s1, s2 (C each).
void channel_moments(const BatchNormKernels& k, const float* x, int64_t N, int64_t C, int64_t HW, const float* shift,
                     double* s1, double* s2) {
  if (HW > 1) {
    for_each_piece(C, channel_grain(N * HW), INT32_MAX, [&](int, int64_t c0, int64_t c1) {
      DenormalsFlushed flush;
      for (int64_t c = c0; c < c1; ++c) k.plane_moments(x + c * HW, N, C * HW, HW, shift[c], s1 + c, s2 + c);
    });
    return;
  }
  parallel_columns(C, N, [&](int64_t j0, int64_t j1) {
    DenormalsFlushed flush;
    k.column_moments(x + j0, N, C, j1 - j0, shift + j0, s1 + j0, s2 + j0);
  });
}

}  // namespace

void batchnorm_forward_training_sync(const float* x, int64_t N, int64_t C, int64_t HW, const float* gamma,
                                     const float* beta, float eps, float momentum, float* running_mean,
                                     float* running_var, bool relu, float* y, float* saved_mean, float* saved_invstd,
                                     const SumAcrossProcesses& across, int64_t* M_total,
                                     const BatchNormMaxPool* pool) {
  check_pool(pool, HW, relu);
  const BatchNormKernels& k = active_kernels();
  // Pass 1: Σx per channel and the count, summed over the processes → the global mean.
  std::vector<double> s1(static_cast<size_t>(C) + 1), s2(static_cast<size_t>(C));
  std::vector<float> shift(static_cast<size_t>(C), 0.f), scale(static_cast<size_t>(C));
  channel_moments(k, x, N, C, HW, shift.data(), s1.data(), s2.data());
  s1[static_cast<size_t>(C)] = static_cast<double>(N * HW);
  across.sum(across.ctx, s1.data(), C + 1);
  const int64_t M = static_cast<int64_t>(s1[static_cast<size_t>(C)]);
  DROPNET_CHECK(M >= 2, "batch_norm: training needs more than 1 value per channel over all processes, got ", M);
  *M_total = M;
  for (int64_t c = 0; c < C; ++c) shift[c] = static_cast<float>(s1[c] / static_cast<double>(M));
  // Pass 2: moments about the global mean (no cancellation), summed over the processes.
  std::vector<double> moments(static_cast<size_t>(2 * C));
  channel_moments(k, x, N, C, HW, shift.data(), moments.data(), moments.data() + C);
  across.sum(across.ctx, moments.data(), 2 * C);
  for (int64_t c = 0; c < C; ++c) {
    const ChannelStats st = finish_moments(moments[c], moments[C + c], shift[c], M, at_or(gamma, c, 1.f),
                                           at_or(beta, c, 0.f), eps, momentum,
                                           running_mean ? running_mean + c : nullptr,
                                           running_var ? running_var + c : nullptr);
    saved_mean[c] = st.mean;
    saved_invstd[c] = st.invstd;
    scale[c] = st.scale;
    shift[c] = st.shift;
  }
  if (N * HW * C == 0) return;
  channel_affine(k, x, y, N, C, HW, scale, shift, relu, pool);
}

void batchnorm_backward_sync(const float* dy, const float* x, const float* y_relu, int64_t N, int64_t C, int64_t HW,
                             const float* gamma, const float* mean, const float* invstd, int64_t M_total, float* dx,
                             float* dgamma, float* dbeta, const SumAcrossProcesses& across,
                             const BatchNormMaxPool* pool) {
  check_pool(pool, HW, true);
  const BatchNormKernels& k = active_kernels();
  std::vector<double> sums(static_cast<size_t>(2 * C), 0.0);  // Σdy, then Σdy·(x - mean), per channel
  double* sum_dy = sums.data();
  double* sum_dy_xc = sums.data() + C;
  const float* y_mask = pool ? nullptr : y_relu;
  if (N * HW > 0) {
    if (HW > 1) {
      for_channel_grads(k, dy, N, C, HW, pool, false, [&](int64_t c, const float* g, int64_t g_stride) {
        k.plane_grad_sums(g, x + c * HW, y_mask ? y_mask + c * HW : nullptr, N, C * HW, g_stride, HW, mean[c],
                          sum_dy + c, sum_dy_xc + c);
      });
    } else {
      parallel_columns(C, N, [&](int64_t j0, int64_t j1) {
        DenormalsFlushed flush;
        k.column_grad_sums(dy + j0, x + j0, y_relu ? y_relu + j0 : nullptr, N, C, j1 - j0, mean + j0, sum_dy + j0,
                           sum_dy_xc + j0);
      });
    }
  }
  // This process's parameter gradients from its own sums: the gradient allreduce adds the rest.
  for (int64_t c = 0; c < C; ++c) {
    if (dgamma) dgamma[c] += static_cast<float>(sum_dy_xc[c] * static_cast<double>(invstd[c]));
    if (dbeta) dbeta[c] += static_cast<float>(sum_dy[c]);
  }
  across.sum(across.ctx, sums.data(), 2 * C);
  std::vector<float> k_dy(C), k_xc(C), k0(C), mean_w(mean, mean + C);
  for (int64_t c = 0; c < C; ++c) {
    const GradCoefficients q =
        grad_coefficients(sum_dy[c], sum_dy_xc[c], M_total, at_or(gamma, c, 1.f), invstd[c], true, nullptr, nullptr);
    k_dy[c] = q.k_dy;
    k_xc[c] = q.k_xc;
    k0[c] = q.k0;
  }
  if (N * HW == 0) return;
  if (HW > 1) {
    const bool stream = N * C * HW * int64_t{sizeof(float)} >= kStreamBytes;
    // With pool the scratch planes are rebuilt: the pooled gradient is a quarter of the full one.
    for_channel_grads(k, dy, N, C, HW, pool, stream, [&](int64_t c, const float* g, int64_t g_stride) {
      k.plane_grad_input(g, x + c * HW, y_mask ? y_mask + c * HW : nullptr, dx + c * HW, N, C * HW, g_stride, HW,
                         k_dy[c], k_xc[c], mean[c], k0[c], stream);
    });
    return;
  }
  for (std::vector<float>* v : {&k_dy, &k_xc, &k0, &mean_w}) extend_wrapped(*v, C);
  parallel_rows(N, C, [&](int64_t b, int64_t e) {
    k.flat_grad_input(dy, x, y_relu, dx, b, e, C, k_dy.data(), k_xc.data(), mean_w.data(), k0.data());
  });
}

}  // namespace cpu
}  // namespace dropnet

// Per-thread bodies of the CUDA batch-norm kernels (kernels/cuda/batchnorm.cu) as block programs
// (kernels/cuda/block_body.h), `__host__ __device__` and free of CUDA headers, so the C++ tests
// run them on the host block by block, thread by thread, and compare with the CPU kernels.
//
// Launch geometry: one block of kThreadsPerBlock threads per channel, blocks = min(C, kMaxBlocks),
// block b taking channels b, b + blocks, ... Within a channel the M = N·HW values are numbered
// m = n·HW + hw (image-major, the CPU's row order); thread t owns the values m ≡ t (mod threads).
// Its two partial sums (double) run over its values in ascending m, then block_tree_sum adds the
// partials pairwise (t += t + 128, + 64, ..., + 1). Every thread then derives the channel's
// statistics from the total with the CPU's own functions (core/batchnorm_element.h); thread 0
// alone writes the per-channel outputs (saved statistics, running statistics, dgamma, dbeta), and
// each output element is written by the thread that owns its m: no atomics.
#pragma once
#include <cstdint>

#include "dropnet/core/batchnorm_element.h"
#include "dropnet/kernels/cuda/block_body.h"
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, kThreadsPerBlock, kMaxBlocks

namespace dropnet {
namespace cuda {

struct BatchNormShape {
  int64_t N = 0, C = 0, HW = 1;
};

// Offset of value m of channel c in the N × C × HW tensor.
DROPNET_HD int64_t batchnorm_offset(const BatchNormShape& s, int64_t c, int64_t m) {
  const int64_t n = m / s.HW;
  return (n * s.C + c) * s.HW + (m - n * s.HW);
}

inline Grid batchnorm_grid(int64_t C) {
  const int64_t blocks = C < 1 ? 1 : (C > kMaxBlocks ? kMaxBlocks : C);
  return Grid{static_cast<uint32_t>(blocks), kThreadsPerBlock};
}

struct BatchNormForwardArgs {
  const float* x = nullptr;
  BatchNormShape shape;
  const float *gamma = nullptr, *beta = nullptr;
  float eps = 1e-5f, momentum = 0.1f;
  float *running_mean = nullptr, *running_var = nullptr;  // updated in place, or null
  bool relu = false;
  float* y = nullptr;
  float *saved_mean = nullptr, *saved_invstd = nullptr;
};

struct BatchNormInferenceArgs {
  const float* x = nullptr;
  BatchNormShape shape;
  const float *gamma = nullptr, *beta = nullptr, *running_mean = nullptr, *running_var = nullptr;
  float eps = 1e-5f;
  bool relu = false;
  float* y = nullptr;
  float* saved_invstd = nullptr;  // or null
};

struct BatchNormBackwardArgs {
  const float *dy = nullptr, *x = nullptr, *y_relu = nullptr;
  BatchNormShape shape;
  const float *gamma = nullptr, *mean = nullptr, *invstd = nullptr;
  bool training = true;
  float *dx = nullptr, *dgamma = nullptr, *dbeta = nullptr;
};

DROPNET_HD float value_or(const float* a, int64_t i, float fallback) { return a ? a[i] : fallback; }

// Thread t's partial sums over its values of channel c: Σd and Σd² with d = x - shift (moments),
// or Σg and Σg·d with g = dy masked by y_relu > 0 (gradients), each term as the CPU's plane sums
// form it (double(x) - shift in double).
template <bool kGrad>
DROPNET_HD void channel_partial_sums(const float* dy, const float* x, const float* y_relu, const BatchNormShape& s,
                                     int64_t c, double shift, uint32_t t, uint32_t threads, double* a1, double* a2) {
  double p1 = 0.0, p2 = 0.0;
  const int64_t M = s.N * s.HW;
  for (int64_t m = t; m < M; m += threads) {
    const int64_t o = batchnorm_offset(s, c, m);
    const double d = static_cast<double>(x[o]) - shift;
    if (kGrad) {
      const float g = y_relu ? (y_relu[o] > 0.f ? dy[o] : 0.f) : dy[o];
      p1 += g;
      p2 += g * d;
    } else {
      p1 += d;
      p2 += d * d;
    }
  }
  a1[t] = p1;
  a2[t] = p2;
}

// Training forward. a1, a2: `threads` doubles of the block's shared memory.
template <class Block>
DROPNET_HD void batchnorm_forward_training_block(Block& blk, const BatchNormForwardArgs& a, double* a1, double* a2) {
  const BatchNormShape& s = a.shape;
  const int64_t M = s.N * s.HW;
  for (int64_t c = blk.index; c < s.C; c += blk.count) {
    const float first = a.x[c * s.HW];  // the CPU's shift: the channel's first value
    blk.phase([&](uint32_t t) { channel_partial_sums<false>(a.x, a.x, nullptr, s, c, first, t, blk.threads, a1, a2); });
    block_tree_sum(blk, a1, a2);
    ChannelStats st{};
    blk.phase([&](uint32_t t) {
      const bool writer = t == 0;
      st = finish_moments(a1[0], a2[0], first, M, value_or(a.gamma, c, 1.f), value_or(a.beta, c, 0.f), a.eps,
                          a.momentum, writer && a.running_mean ? a.running_mean + c : nullptr,
                          writer && a.running_var ? a.running_var + c : nullptr);
      if (writer) {
        a.saved_mean[c] = st.mean;
        a.saved_invstd[c] = st.invstd;
      }
    });
    blk.phase([&](uint32_t t) {
      for (int64_t m = t; m < M; m += blk.threads) {
        const int64_t o = batchnorm_offset(s, c, m);
        a.y[o] = batchnorm_affine(a.x[o], st.scale, st.shift, a.relu);
      }
    });
  }
}

// Inference forward: no reduction; every thread derives the channel's map from the running
// statistics (the CPU's inference_stats), so the bits are the CPU's.
template <class Block>
DROPNET_HD void batchnorm_forward_inference_block(Block& blk, const BatchNormInferenceArgs& a) {
  const BatchNormShape& s = a.shape;
  const int64_t M = s.N * s.HW;
  for (int64_t c = blk.index; c < s.C; c += blk.count)
    blk.phase([&](uint32_t t) {
      const ChannelStats st = inference_stats(a.running_mean[c], a.running_var[c], value_or(a.gamma, c, 1.f),
                                              value_or(a.beta, c, 0.f), a.eps);
      if (t == 0 && a.saved_invstd) a.saved_invstd[c] = st.invstd;
      for (int64_t m = t; m < M; m += blk.threads) {
        const int64_t o = batchnorm_offset(s, c, m);
        a.y[o] = batchnorm_affine(a.x[o], st.scale, st.shift, a.relu);
      }
    });
}

// Backward: Σg and Σg·(x - mean) per channel, then dx; dgamma, dbeta accumulated by thread 0.
template <class Block>
DROPNET_HD void batchnorm_backward_block(Block& blk, const BatchNormBackwardArgs& a, double* a1, double* a2) {
  const BatchNormShape& s = a.shape;
  const int64_t M = s.N * s.HW;
  for (int64_t c = blk.index; c < s.C; c += blk.count) {
    const float mean = a.mean[c];
    blk.phase([&](uint32_t t) { channel_partial_sums<true>(a.dy, a.x, a.y_relu, s, c, mean, t, blk.threads, a1, a2); });
    block_tree_sum(blk, a1, a2);
    GradCoefficients q{};
    blk.phase([&](uint32_t t) {
      const bool writer = t == 0;
      q = grad_coefficients(a1[0], a2[0], M, value_or(a.gamma, c, 1.f), a.invstd[c], a.training,
                            writer && a.dgamma ? a.dgamma + c : nullptr, writer && a.dbeta ? a.dbeta + c : nullptr);
    });
    blk.phase([&](uint32_t t) {
      for (int64_t m = t; m < M; m += blk.threads) {
        const int64_t o = batchnorm_offset(s, c, m);
        a.dx[o] = batchnorm_grad_input(a.dy[o], a.x[o], a.y_relu ? a.y_relu + o : nullptr, q, mean);
      }
    });
  }
}

}  // namespace cuda
}  // namespace dropnet

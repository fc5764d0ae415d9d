// Block programs of the CUDA convolution (kernels/cuda/conv2d.cu), `__host__ __device__` and free
// of CUDA headers, so the C++ tests run them on the host block by block, thread by thread
// (cpp/tests/cuda_sim.h) and compare them with a float64 direct convolution and the CPU kernels.
//
// All three passes are one implicit GEMM per group, out[m, n] = Σ_r A[m, r]·B[r, n], whose
// operands are read from the tensors on the fly (no im2col buffer):
//   forward        m = filter f, n = output pixel p = (img·OH + oh)·OW + ow, r = (c·kh + i)·kw + j
//                  (im2col's row order), A = w, B = the patch value of x (0 in the padding);
//   input grad     m = channel c, n = input pixel q = (img·H + ih)·W + iw, r = (f·kh + i)·kw + j,
//                  A = w transposed, B = dy at the output pixel whose window puts tap (i, j) on
//                  (ih, iw) (0 where there is none: a gather, each dx element has one owner);
//   weight grad    m = filter f, n = r of the forward (plus column K = the bias, B = 1 there),
//                  the reduction over output pixels p, split into fixed chunks of
//                  kConvSplitPixels; each chunk's sums go to a scratch buffer, and a second kernel
//                  adds the chunks in order into dw and db (no atomics).
//
// Launch layout and order: the tile program of kernels/cuda/tile_gemm_body.h (256-thread blocks,
// 64 × 64 output tiles, 16 accumulators per thread), each tile's reduction one block: every output
// is one fmaf chain from +0 over its r in ascending order, so its bits depend on the problem
// alone: every grid, every thread order and every GPU give the same bytes. The forward then adds
// the bias (+0 without one) and applies the GEMM epilogue's activation
// (core/activation_element.h, the CPU's ScalarLane polynomials).
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/activation_element.h"
#include "dropnet/core/epilogue.h"
#include "dropnet/core/philox.h"  // DROPNET_HD
#include "dropnet/kernels/cuda/dropout_body.h"  // Grid, grid_for, grid_first_item, grid_stride
#include "dropnet/kernels/cuda/tile_gemm_body.h"

namespace dropnet {
namespace cuda {

// The convolution's geometry (the fields and rules of cpu::ConvGeometry, kernels/cpu/im2col.h),
// mirrored here so the CUDA side includes no CPU header; conv_shape() converts.
struct ConvShape {
  int64_t C = 0, H = 0, W = 0;
  int64_t groups = 1;
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t OH = 0, OW = 0;
};

template <class Geometry>
ConvShape conv_shape(const Geometry& g) {
  return ConvShape{g.C,        g.H,        g.W,       g.groups,   g.kh,    g.kw,  g.stride_h,
                   g.stride_w, g.pad_top,  g.pad_left, g.dil_h,   g.dil_w, g.OH,  g.OW};
}

constexpr uint32_t kConvThreads = kTileThreads;
constexpr int kConvSharedFloats = kTileSharedFloats;
constexpr int kConvAccumulators = kTileAccumulators;
// Output pixels per chunk of the weight gradient's reduction: a constant, so the chunks (and the
// bits) depend on the problem size alone. 2048 keeps each chunk's fmaf chain short and the scratch
// at ceil(N·OH·OW / 2048) copies of [dw | db].
constexpr int64_t kConvSplitPixels = 2048;

// The product of one pass (TileGemmLayout): per group an M × Ncols output, reduction [0, R) cut
// into `splits` chunks of `split_len` (one chunk but for the weight gradient), each chunk one block.
using ConvGemmLayout = TileGemmLayout;
using ConvTile = GemmTile;

inline ConvGemmLayout conv_gemm_layout(int64_t groups, int64_t M, int64_t Ncols, int64_t R, int64_t split_len) {
  return tile_gemm_layout(groups, M, Ncols, R, split_len, split_len);
}

DROPNET_HD int64_t conv_reduction(const ConvShape& g) { return g.C / g.groups * g.kh * g.kw; }  // K

inline ConvGemmLayout conv_forward_layout(const ConvShape& g, int64_t N, int64_t F) {
  const int64_t K = conv_reduction(g);
  return conv_gemm_layout(g.groups, F / g.groups, N * g.OH * g.OW, K, K);
}
inline ConvGemmLayout conv_input_grad_layout(const ConvShape& g, int64_t N, int64_t F) {
  const int64_t R = F / g.groups * g.kh * g.kw;
  return conv_gemm_layout(g.groups, g.C / g.groups, N * g.H * g.W, R, R);
}
// Columns: the K weights of a filter, then its bias when has_bias.
inline ConvGemmLayout conv_weight_grad_layout(const ConvShape& g, int64_t N, int64_t F, bool has_bias) {
  return conv_gemm_layout(g.groups, F / g.groups, conv_reduction(g) + (has_bias ? 1 : 0), N * g.OH * g.OW,
                          kConvSplitPixels);
}

inline Grid conv_grid(const ConvGemmLayout& L) { return tile_grid(L); }

// Floats of scratch the weight gradient needs: splits × F × (K + 1) (the bias column always counted).
inline int64_t conv_weight_grad_scratch(const ConvShape& g, int64_t N, int64_t F) {
  return conv_weight_grad_layout(g, N, F, true).splits * F * (conv_reduction(g) + 1);
}

// x[img, group·Cg + c, oh·sh − pt + i·dh, ow·sw − pl + j·dw] for r = (c·kh + i)·kw + j and output
// pixel p = (img·OH + oh)·OW + ow; 0 in the padding.
DROPNET_HD float conv_patch_value(const float* x, const ConvShape& g, int64_t group, int64_t r, int64_t p) {
  const int64_t khw = g.kh * g.kw, c = r / khw, ij = r - c * khw, i = ij / g.kw, j = ij - i * g.kw;
  const int64_t ohw = g.OH * g.OW, img = p / ohw, o = p - img * ohw, oh = o / g.OW, ow = o - oh * g.OW;
  const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dil_h, iw = ow * g.stride_w - g.pad_left + j * g.dil_w;
  if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return 0.f;
  const int64_t Cg = g.C / g.groups;
  return x[((img * g.C + group * Cg + c) * g.H + ih) * g.W + iw];
}

// The forward's element after the product: + bias (+0 without one, as the CPU's scalar epilogue),
// then the activation with the CPU's ScalarLane polynomials.
DROPNET_HD float conv_epilogue_value(float acc, const float* bias, int64_t f, Activation act, float slope) {
  const float z = acc + (bias ? bias[f] : 0.f);
  return activate_v<ScalarLane>(act, z, slope);
}

// An aggregate: the launcher and the tests' simulated device fill it in this member order.
struct ConvForwardArgs {
  const float *x = nullptr, *w = nullptr, *bias = nullptr;
  float* y = nullptr;
  ConvShape g;
  int64_t N = 0, F = 0;
  Activation activation = Activation::identity;
  float leaky_slope = 0.01f;
};

// The three passes' operands. kAAlongR / kBAlongR: whether consecutive threads load consecutive r
// (the operand is contiguous along r in memory) or consecutive m / n, so a warp's loads coalesce.
struct ConvForwardOp {
  ConvForwardArgs a;
  static constexpr bool kAAlongR = true, kBAlongR = false;
  DROPNET_HD float load_a(int64_t group, int64_t m, int64_t r) const {
    return a.w[(group * (a.F / a.g.groups) + m) * conv_reduction(a.g) + r];
  }
  DROPNET_HD float load_b(int64_t group, int64_t r, int64_t n) const { return conv_patch_value(a.x, a.g, group, r, n); }
  DROPNET_HD void store(const ConvTile& tile, int64_t m, int64_t n, float acc, const KBlock&) const {
    const int64_t f = tile.group * (a.F / a.g.groups) + m, ohw = a.g.OH * a.g.OW, img = n / ohw;
    a.y[(img * a.F + f) * ohw + (n - img * ohw)] = conv_epilogue_value(acc, a.bias, f, a.activation, a.leaky_slope);
  }
};

struct ConvInputGradOp {
  const float *dy = nullptr, *w = nullptr;
  float* dx = nullptr;
  ConvShape g;
  int64_t N = 0, F = 0;
  static constexpr bool kAAlongR = true, kBAlongR = false;
  DROPNET_HD float load_a(int64_t group, int64_t m, int64_t r) const {
    const int64_t khw = g.kh * g.kw, f = r / khw, ij = r - f * khw, Cg = g.C / g.groups;
    return w[((group * (F / g.groups) + f) * Cg + m) * khw + ij];
  }
  // dy[img, f, oh, ow] where oh·sh − pt + i·dh = ih and ow·sw − pl + j·dw = iw, if such an output exists.
  DROPNET_HD float load_b(int64_t group, int64_t r, int64_t n) const {
    const int64_t khw = g.kh * g.kw, f = r / khw, ij = r - f * khw, i = ij / g.kw, j = ij - i * g.kw;
    const int64_t hw = g.H * g.W, img = n / hw, q = n - img * hw, ih = q / g.W, iw = q - ih * g.W;
    const int64_t th = ih + g.pad_top - i * g.dil_h, tw = iw + g.pad_left - j * g.dil_w;
    if (th < 0 || tw < 0) return 0.f;
    const int64_t oh = th / g.stride_h, ow = tw / g.stride_w;
    if (oh * g.stride_h != th || ow * g.stride_w != tw || oh >= g.OH || ow >= g.OW) return 0.f;
    return dy[((img * F + group * (F / g.groups) + f) * g.OH + oh) * g.OW + ow];
  }
  DROPNET_HD void store(const ConvTile& tile, int64_t m, int64_t n, float acc, const KBlock&) const {
    const int64_t hw = g.H * g.W, img = n / hw;
    dx[(img * g.C + tile.group * (g.C / g.groups) + m) * hw + (n - img * hw)] = acc;
  }
};

// Per chunk s: scratch[(s·F + f)·(K + 1) + k] = Σ over the chunk's pixels of dy[img, f, o] · B[p, k].
struct ConvWeightGradOp {
  const float *dy = nullptr, *x = nullptr;
  float* scratch = nullptr;
  ConvShape g;
  int64_t N = 0, F = 0;
  static constexpr bool kAAlongR = true, kBAlongR = true;
  DROPNET_HD float load_a(int64_t group, int64_t m, int64_t r) const {
    const int64_t ohw = g.OH * g.OW, img = r / ohw;
    return dy[(img * F + group * (F / g.groups) + m) * ohw + (r - img * ohw)];
  }
  DROPNET_HD float load_b(int64_t group, int64_t r, int64_t n) const {
    return n == conv_reduction(g) ? 1.f : conv_patch_value(x, g, group, n, r);
  }
  DROPNET_HD void store(const ConvTile& tile, int64_t m, int64_t n, float acc, const KBlock&) const {
    const int64_t f = tile.group * (F / g.groups) + m;
    scratch[(tile.split * F + f) * (conv_reduction(g) + 1) + n] = acc;
  }
};

// The three passes' block program: tile_gemm_block (kernels/cuda/tile_gemm_body.h).
template <class Op, class Block, class Regs>
DROPNET_HD void conv_gemm_block(Block& blk, const Op& op, const ConvGemmLayout& L, float* shared, Regs& regs) {
  tile_gemm_block(blk, op, L, shared, regs);
}

// The weight gradient's second kernel, items = the F·(K + 1) elements of [dw | db] (grid-stride):
// total = ((chunk 0 + chunk 1) + chunk 2) + ..., then dw (or db, column K) += total.
struct ConvWeightGradReduceArgs {
  const float* scratch = nullptr;
  int64_t splits = 0, F = 0, K = 0;
  float *dw = nullptr, *db = nullptr;
};

DROPNET_HD void conv_weight_grad_reduce_thread(const ConvWeightGradReduceArgs& a, const Grid& g, uint32_t block,
                                               uint32_t thread) {
  const int64_t K1 = a.K + 1, items = a.F * K1;
  for (int64_t e = grid_first_item(g, block, thread); e < items; e += grid_stride(g)) {
    const int64_t f = e / K1, k = e - f * K1;
    if (k == a.K && !a.db) continue;
    float total = a.scratch[e];
    for (int64_t s = 1; s < a.splits; ++s) total += a.scratch[s * items + e];
    if (k < a.K)
      a.dw[f * a.K + k] += total;
    else
      a.db[f] += total;
  }
}

}  // namespace cuda
}  // namespace dropnet

// 2-D convolution (cross-correlation, as PyTorch) on NCHW float32 images, built on im2col +
// cpu::sgemm so it speeds up with the GEMM; 3×3 stride-1 layers that winograd_applies() take the
// Winograd path instead (conv2d_winograd.h; docs/design.md, "Convolution paths"). With G = g.groups, Cg = C / G, Fg = F / G:
//   x: N × C × H × W, w: F × Cg × kh × kw, bias: F (optional), y: N × F × OH × OW;
//   filters [i·Fg, (i+1)·Fg) read channels [i·Cg, (i+1)·Cg), one GEMM per image and group.
// Threads split images (independent outputs); the GEMM called inside a thread runs on that thread
// (OpenMP nesting is off), so every thread count computes every value the same way. This needs
// cpu::sgemm to be re-entrant (no shared static scratch) and to run single-threaded inside an
// active OpenMP region; with one image range (small N) it is called from the caller's thread and
// may use all threads itself.
#pragma once
#include <cstdint>

#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/im2col.h"

namespace dropnet {
namespace cpu {

// Images whose weight-gradient contributions are summed into one partial (in image order) before
// the partials are summed (in chunk order). A constant, not the thread count: the sum's order and
// so its bits do not depend on how many threads ran.
constexpr int64_t kConvImagesPerChunk = 8;

// Threads for `items` (images or chunks of them) when each needs `per_part` floats of a
// workspace of `workspace_floats` past `fixed` shared ones: at most get_num_threads(), at least 1.
int conv_parts_for_workspace(int64_t items, int64_t fixed, int64_t per_part, int64_t workspace_floats);

// Floats of workspace conv2d_forward uses with `threads` threads (more is fine).
int64_t conv2d_forward_workspace(const ConvGeometry& g, int64_t F, bool has_bias, int threads);

// y = act(conv(x, w) + bias). Columns are (K + 1) × P with a row of ones when there is a bias and
// the weight gets the bias as column K, so the GEMM adds the per-filter bias (a per-ROW bias of
// the F × P product, which GemmEpilogue's per-column bias cannot express) and its epilogue applies
// the activation while the tile is in registers: no extra pass over y.
// workspace: workspace_floats floats; fewer threads run if it is smaller than asked for.
void conv2d_forward(const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F,
                    const float* bias, Activation activation, float leaky_slope, float* y, float* workspace,
                    int64_t workspace_floats);

// Floats of workspace conv2d_backward uses with `threads` threads.
int64_t conv2d_backward_workspace(const ConvGeometry& g, int64_t N, int64_t F, int threads);

// Gradients of y = conv(x, w) + bias, given dy = dL/dy (N × F × OH × OW, before any activation):
//   dx (N × C × H × W, optional): overwritten with dL/dx.
//   dw (F × C × kh × kw) and db (F, optional): ACCUMULATED (+=), parameter-gradient style.
// Per image: im2col(x[n]) -> cols (+ a row of ones); partial [dw | db] += dy[n] · colsᵀ;
// cols = wᵀ · dy[n]; col2im -> dx[n].
void conv2d_backward(const float* dy, const float* x, int64_t N, const ConvGeometry& g, const float* w,
                     int64_t F, float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats);

}  // namespace cpu
}  // namespace dropnet

// 2-D pooling on NCHW float32 planes. Every function works on `planes` = N·C independent H × W
// planes (input) and OH × OW planes (output); threads split planes, so results do not depend on
// the thread count. Output size as PyTorch (floor mode):
//   OH = (H + 2·pad_h - kh) / stride_h + 1   (same for W); padding <= kernel / 2.
#pragma once
#include <cstdint>

#include "dropnet/core/pooling_element.h"

namespace dropnet {
namespace cpu {

// The geometry (H, W, kh, kw, stride_h, stride_w, pad_h, pad_w, OH, OW) is shared with the CUDA
// twins (core/pooling_element.h).
using dropnet::PoolGeometry;

// y[p, oh, ow] = max of the window; indices (optional) = ih·W + iw of the maximum within the plane
// (PyTorch's convention), first maximum in row-major window order; NaN wins (propagates).
// Padding never wins (it is -inf, not 0).
void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y, int32_t* indices);

// dx overwritten: 0, then dx[p, indices[p, o]] += dy[p, o] for o in ascending order.
void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g, float* dx);

// y = mean of the window; the divisor counts padded cells when count_include_pad (PyTorch's
// default) and only the cells inside the image otherwise.
void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* y);

// dx overwritten: each window spreads dy / divisor over its cells inside the image, windows in
// ascending output order.
void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* dx);

// y[p] = mean of plane p (hw floats), summed in double in index order.
void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y);
// dx[p, i] = dy[p] / hw.
void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx);

}  // namespace cpu
}  // namespace dropnet

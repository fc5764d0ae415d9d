#include "dropnet/kernels/cpu/pooling.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "dropnet/core/parallel.h"

namespace dropnet {
namespace cpu {

namespace pool2x2 {
// The baseline unit's copy of the 2×2 pooling: SSE2, 4 windows a step.
#define DROPNET_POOL_VEC_BYTES 16
#include "dropnet/kernels/cpu/max_pool_2x2.h"
#undef DROPNET_POOL_VEC_BYTES
}  // namespace pool2x2

namespace {

// Planes per thread piece: at least ~16k elements so small inputs stay on one thread.
int64_t plane_grain(int64_t plane_elems) { return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, plane_elems)); }

// The geometry of 2×2 windows with stride 2 and no padding: the path of max_pool_2x2.h.
bool is_2x2(const PoolGeometry& g) {
  return g.kh == 2 && g.kw == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0;
}

// The general path, window by window with the device-shared function (the 2×2 path,
// kernels/cpu/max_pool_2x2.h, takes the same cells in the same order).
void max_pool_plane(const float* x, const PoolGeometry& g, float* y, int32_t* idx) {
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t arg;
      y[oh * g.OW + ow] = max_pool_window(x, g, oh, ow, &arg);
      if (idx) idx[oh * g.OW + ow] = static_cast<int32_t>(arg);
    }
}

}  // namespace

void max_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, float* y, int32_t* indices) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  const bool windows_2x2 = is_2x2(g);
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      int32_t* idx = indices ? indices + p * out : nullptr;
      if (windows_2x2) pool2x2::max_pool_2x2(x + p * in, g.H, g.W, y + p * out, idx, pool2x2::Unchanged{});
      else max_pool_plane(x + p * in, g, y + p * out, idx);
    }
  });
}

void max_pool2d_backward(const float* dy, const int32_t* indices, int64_t planes, const PoolGeometry& g, float* dx) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  const bool windows_2x2 = is_2x2(g);
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* d = dx + p * in;
      const float* gp = dy + p * out;
      const int32_t* ip = indices + p * out;
      if (windows_2x2) pool2x2::max_unpool_2x2(gp, ip, nullptr, g.H, g.W, d);
      else pool2x2::max_unpool_scatter(gp, ip, nullptr, in, out, d);
    }
  });
}

void avg_pool2d_forward(const float* x, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* y) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* xp = x + p * in;
      float* yp = y + p * out;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) yp[oh * g.OW + ow] = avg_pool_window(xp, g, oh, ow, count_include_pad);
    }
  });
}

void avg_pool2d_backward(const float* dy, int64_t planes, const PoolGeometry& g, bool count_include_pad, float* dx) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  parallel_ranges(planes, plane_grain(in), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* d = dx + p * in;
      std::memset(d, 0, sizeof(float) * in);
      const float* gp = dy + p * out;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const PoolWindow win = pool_window(g, oh, ow);
          const float v = gp[oh * g.OW + ow] / avg_pool_divisor(g, oh, ow, count_include_pad);
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) d[ih * g.W + iw] += v;
        }
    }
  });
}

void global_avg_pool2d_forward(const float* x, int64_t planes, int64_t hw, float* y) {
  parallel_ranges(planes, plane_grain(hw), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      y[p] = global_avg_plane(x + p * hw, hw);
    }
  });
}

void global_avg_pool2d_backward(const float* dy, int64_t planes, int64_t hw, float* dx) {
  const float inv = 1.f / static_cast<float>(hw);
  parallel_ranges(planes, plane_grain(hw), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float v = dy[p] * inv;
      float* d = dx + p * hw;
      for (int64_t i = 0; i < hw; ++i) d[i] = v;
    }
  });
}

}  // namespace cpu
}  // namespace dropnet

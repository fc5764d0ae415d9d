// Spatial dropout (whole channels): the keep bits of the N*C channels come from the element
// dropout pass over n_channels elements (channel i = n*C + c draws word i), then each thread
// scales or zeroes whole channels. Channels are contiguous rows, so the apply loop is a plain
// scaled copy the compiler vectorises; it is bound by memory, not by the (tiny) mask.
#include <algorithm>
#include <vector>

#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/kernels/cpu/dropout.h"

namespace dropnet {
namespace cpu {

namespace {

// y[i, :] = keep_i ? x[i, :] * scale : 0 for the n_channels rows of channel_size floats.
void apply_channel_keeps(const float* x, float* y, int64_t n_channels, int64_t channel_size, const uint64_t* bits,
                         float scale) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, channel_size));
  parallel_ranges(n_channels, grain, [&](int64_t cb, int64_t ce) {
    DenormalsFlushed ftz;
    for (int64_t i = cb; i < ce; ++i) {
      const float* xi = x + i * channel_size;
      float* yi = y + i * channel_size;
      if ((bits[i >> 6] >> (i & 63)) & 1) {
        for (int64_t j = 0; j < channel_size; ++j) yi[j] = xi[j] * scale;
      } else {
        std::fill(yi, yi + channel_size, 0.f);
      }
    }
  });
}

}  // namespace

void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                             float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset) {
  if (n_channels <= 0) return;
  std::vector<uint64_t> own;
  if (!mask_bits) {
    own.resize(static_cast<size_t>((n_channels + 63) / 64));
    mask_bits = own.data();
  }
  dropout_mask_bits(n_channels, threshold, seed, stream, mask_bits, index_offset);
  apply_channel_keeps(x, y, n_channels, channel_size, mask_bits, scale);
}

void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                              const uint64_t* mask_bits, uint32_t threshold, float scale, uint64_t seed,
                              uint64_t stream) {
  if (n_channels <= 0) return;
  std::vector<uint64_t> own;
  if (!mask_bits) {
    own.resize(static_cast<size_t>((n_channels + 63) / 64));
    dropout_mask_bits(n_channels, threshold, seed, stream, own.data());
    mask_bits = own.data();
  }
  apply_channel_keeps(dy, dx, n_channels, channel_size, mask_bits, scale);
}

}  // namespace cpu
}  // namespace dropnet

#include "dropnet/kernels/cpu/dropout.h"

#include "dropnet/core/philox.h"

namespace dropnet {
namespace cpu {

// Scalar twin: one Philox block per 4 elements, in element order.
void dropout_forward_scalar(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                            uint64_t stream, uint64_t* mask_bits) {
  for (int64_t e = 0; e < n; ++e) {
    const bool keep = philox::stream_word(seed, stream, static_cast<uint64_t>(e)) < threshold;
    y[e] = keep ? x[e] * scale : 0.f;
    if (mask_bits) {
      const uint64_t bit = uint64_t{1} << (e & 63);
      if (keep) mask_bits[e >> 6] |= bit;
      else mask_bits[e >> 6] &= ~bit;
    }
  }
}

// Placeholder entries until the vectorised kernels land (the dropout work replaces these).
void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                     uint64_t stream, uint64_t* mask_bits) {
  dropout_forward_scalar(x, y, n, threshold, scale, seed, stream, mask_bits);
}

void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale) {
  for (int64_t e = 0; e < n; ++e) dx[e] = ((mask_bits[e >> 6] >> (e & 63)) & 1) ? dy[e] * scale : 0.f;
}

void dropout_backward_regen(const float* dy, float* dx, int64_t n, uint32_t threshold, float scale,
                            uint64_t seed, uint64_t stream) {
  for (int64_t e = 0; e < n; ++e)
    dx[e] = philox::stream_word(seed, stream, static_cast<uint64_t>(e)) < threshold ? dy[e] * scale : 0.f;
}

}  // namespace cpu
}  // namespace dropnet

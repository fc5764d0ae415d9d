#include "dropnet/kernels/cpu/alpha_dropout.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/activation.h"

namespace dropnet {
namespace cpu {

AlphaDropoutCoefficients alpha_dropout_coefficients(double p) {
  const double alpha_p = -static_cast<double>(kSeluLambda) * static_cast<double>(kSeluAlpha);
  const double q = 1.0 - p;
  const double a = 1.0 / std::sqrt(q + alpha_p * alpha_p * q * p);
  const double b = -a * alpha_p * p;
  return {static_cast<float>(a), static_cast<float>(b), static_cast<float>(a * alpha_p + b)};
}

// Scalar: one Philox block per 4 elements. Threads split whole 64-element mask words, so no two
// threads write the same word.
void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, const AlphaDropoutCoefficients& c,
                           uint64_t seed, uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) {
  const int64_t words = (n + 63) / 64;
  parallel_ranges(words, 64, [&](int64_t w0, int64_t w1) {
    DenormalsFlushed ftz;
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t e0 = w * 64, e1 = std::min(n, e0 + 64);
      uint64_t bits = 0;
      uint64_t block_index = ~uint64_t{0};
      philox::Words r{};
      for (int64_t e = e0; e < e1; ++e) {
        const uint64_t word = index_offset + static_cast<uint64_t>(e);  // any offset, aligned or not
        if ((word >> 2) != block_index) {
          block_index = word >> 2;
          r = philox::stream_block(seed, stream, block_index);
        }
        const bool keep = r.v[word & 3] < threshold;
        y[e] = keep ? c.a * x[e] + c.b : c.dropped_value;
        bits |= static_cast<uint64_t>(keep) << (e - e0);
      }
      if (mask_bits) mask_bits[w] = bits;
    }
  });
}

}  // namespace cpu
}  // namespace dropnet

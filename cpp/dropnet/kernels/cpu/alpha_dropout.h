// Alpha dropout (Klambauer et al. 2017, as Keras' AlphaDropout): keeps SELU's mean and variance.
// Element e (flat C order) is kept iff its Philox word of (seed, stream) < threshold (the dropout
// contract of docs/design.md). With q = 1 − p and α' = −λ_selu·α_selu:
//   y = a · (keep ? x : α') + b,   a = (q + α'²·q·p)^(-1/2),  b = −a·α'·p
// Backward is dx = dy · keep · a: cpu::dropout_backward_bits with scale a.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

struct AlphaDropoutCoefficients {
  float a, b, dropped_value;  // dropped_value = a·α' + b
};
AlphaDropoutCoefficients alpha_dropout_coefficients(double p);

// x, y: n floats (may alias). mask_bits: ceil(n / 64) words, whole words written (bit e = keep).
// index_offset: the Philox element index of x[0] (dropout.h: dropout_forward).
void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, const AlphaDropoutCoefficients& c,
                           uint64_t seed, uint64_t stream, uint64_t* mask_bits, uint64_t index_offset = 0);

}  // namespace cpu
}  // namespace dropnet

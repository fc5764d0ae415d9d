// Inverted dropout on raw float buffers, following the Philox contract of DESIGN.md exactly:
// element e (flat C-order index) of stream (seed, stream) is kept iff its word < threshold;
// kept values are scaled by `scale` = 1 / (1 - p). threshold = keep_threshold(p) (core/philox.h).
// Callers take the identity path for p == 0. Bit masks: bit e of word e / 64 is the keep of e.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

// x, y: n floats (may alias). mask_bits: ceil(n / 64) words or null.
void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                     uint64_t stream, uint64_t* mask_bits);
// dx = dy * keep * scale with keep read from mask_bits (ceil(n / 64) words). dy, dx may alias.
void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale);
// Same, keep regenerated from (seed, stream): no mask stored at all.
void dropout_backward_regen(const float* dy, float* dx, int64_t n, uint32_t threshold, float scale,
                            uint64_t seed, uint64_t stream);

// Scalar reference of dropout_forward (the twin the vector paths are tested against).
void dropout_forward_scalar(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                            uint64_t stream, uint64_t* mask_bits);

}  // namespace cpu
}  // namespace dropnet

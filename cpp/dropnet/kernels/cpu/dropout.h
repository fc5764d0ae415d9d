// Inverted dropout on raw float buffers, following the Philox contract of docs/design.md exactly:
// element e (flat C-order index) of stream (seed, stream) is kept iff its word < threshold;
// kept values are scaled by `scale` = 1 / (1 - p). threshold = keep_threshold(p) (core/philox.h).
// Callers take the identity path for p == 0. Bit masks: bit e of word e / 64 is the keep of e;
// bits past n in the last word are written as zero.
//
// Every function here is one pass over memory: the keep bits are generated in registers, 64
// elements at a time, and applied while the data streams through. Threads split the element
// range at multiples of 64, so each mask word has one writer and results never depend on the split.
#pragma once
#include <cstdint>

#include "dropnet/core/dropout_word.h"

namespace dropnet {
namespace cpu {

// x, y: n floats (may alias). mask_bits: ceil(n / 64) words or null.
// index_offset: the Philox element index of x[0] (element e draws word index_offset + e; mask bit
// e stays local). A data-parallel rank passes the global position of its first row times the row
// width, so its masks are the rows' masks in the whole batch (docs/distributed.md).
void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                     uint64_t stream, uint64_t* mask_bits, uint64_t index_offset = 0);
// dx = dy * keep * scale with keep read from mask_bits (ceil(n / 64) words). dy, dx may alias.
void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale);
// Same, keep regenerated from (seed, stream): no mask stored at all.
void dropout_backward_regen(const float* dy, float* dx, int64_t n, uint32_t threshold, float scale,
                            uint64_t seed, uint64_t stream);

// Scalar reference of dropout_forward (the twin the vector paths are tested against).
void dropout_forward_scalar(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                            uint64_t stream, uint64_t* mask_bits);

// Keep bits only: mask_bits gets ceil(n / 64) words.
void dropout_mask_bits(int64_t n, uint32_t threshold, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                       uint64_t index_offset = 0);

// Monte Carlo dropout: y is samples x n; row k = dropout of x with stream stream0 + k.
// Small inputs run one sample per thread, large ones one sample at a time over all threads.
void mc_dropout_forward(const float* x, float* y, int64_t n, int64_t samples, uint32_t threshold, float scale,
                        uint64_t seed, uint64_t stream0);

// AlphaDropout (Klambauer et al. 2017, for SELU nets): dropped units take alpha' =
// -scale_selu * alpha_selu, then y = a * (kept ? x : alpha') + b with a, b below, so a standard
// normal input keeps mean 0 and variance 1. Kept: y = fma(a, x, b) (one rounding); dropped:
// y = dropped_value. The backward pass is dropout_backward_* with scale = a.
constexpr double kAlphaDropoutAlpha = -1.7580993408473766;
struct AlphaDropoutCoeffs {
  float a, b, dropped_value;
};
// a = ((1 - p)(1 + p alpha'^2))^(-1/2), b = -a alpha' p, dropped_value = a alpha' + b; in double.
AlphaDropoutCoeffs alpha_dropout_coeffs(double p);
// x, y: n floats (may alias). mask_bits: ceil(n / 64) words or null. index_offset as in
// dropout_forward. The AlphaDropout layer (nn/layers.cpp) and ops.alpha_dropout both run this.
void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, AlphaDropoutCoeffs c,
                           uint64_t seed, uint64_t stream, uint64_t* mask_bits, uint64_t index_offset = 0);

// Spatial dropout over x: n_channels x channel_size floats (N*C channels of an NCHW / NCL
// tensor, row-major). Channel i = n*C + c draws element word i of the stream; a dropped channel
// is all zeros, a kept one is scaled. mask_bits: ceil(n_channels / 64) words or null.
// index_offset: the global channel index of channel 0 (as in dropout_forward).
void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                             float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset = 0);
// dx from dy with channel keeps from mask_bits (if not null) or regenerated from (seed, stream).
void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                              const uint64_t* mask_bits, uint32_t threshold, float scale, uint64_t seed,
                              uint64_t stream);

// ---- the single pass every entry above runs, and its per-ISA bodies -------------------------
// DropoutPass (core/dropout_word.h) describes the pass: for e in [begin, end), keep_e from bits_in
// or the generator, y[e] = keep_e ? (affine ? fma(a, x[e], b) : a * x[e]) : dropped, keep bits to
// bits_out. The CUDA twins run the same per-word function (kernels/cuda/dropout.h).
using DropoutPass = ::dropnet::DropoutPass;

// Threaded entry: splits [0, n) at multiples of 64 and runs the body of active_isa().
void dropout_pass(const DropoutPass& p, int64_t n);
// Bodies: one thread, elements [begin, end) with begin a multiple of 64.
void dropout_pass_scalar(const DropoutPass& p, int64_t begin, int64_t end);
void dropout_pass_avx2(const DropoutPass& p, int64_t begin, int64_t end);
void dropout_pass_avx512(const DropoutPass& p, int64_t begin, int64_t end);

// Outputs at least this large (bytes) get non-temporal stores when y does not alias x.
constexpr int64_t kDropoutStreamStoreBytes = int64_t{48} << 20;

}  // namespace cpu
}  // namespace dropnet

// CUDA twins of the dropout family (kernels/cpu/dropout.h), same names and the same bits: every
// thread runs the device-neutral word function of core/dropout_word.h (per-thread bodies and
// launch geometry: kernels/cuda/dropout_body.h). Every pointer here is a *device* pointer; the
// calls are asynchronous on the default stream and throw std::runtime_error (naming the call and
// the CUDA error) when a launch fails. Masks are 1 bit per element, bit e of 64-bit word e / 64,
// the bits past n in the last word zero (docs/design.md, "The Philox stream contract").
//
// Never run on a GPU yet: these kernels are compiled by CI and their per-thread bodies are run by
// the C++ tests over the simulated grid on the host (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>

namespace dropnet {
namespace cuda {

// y = keep ? x * scale : 0; mask_bits: ceil(n / 64) words or null. index_offset as on the CPU.
void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                     uint64_t stream, uint64_t* mask_bits, uint64_t index_offset = 0);
// dx = dy * keep * scale with keep from mask_bits. dy and dx may alias.
void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale);
// Same, keep regenerated from (seed, stream).
void dropout_backward_regen(const float* dy, float* dx, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                            uint64_t stream, uint64_t index_offset = 0);
// Keep bits only.
void dropout_mask_bits(int64_t n, uint32_t threshold, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                       uint64_t index_offset = 0);
// AlphaDropout: kept y = fma(a, x, b), dropped y = dropped_value (a, b, dropped_value from
// cpu::alpha_dropout_coeffs on the host). Backward: dropout_backward_bits with scale a.
void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float a, float b,
                           float dropped_value, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                           uint64_t index_offset = 0);
// Spatial dropout of n_channels rows of channel_size floats; mask_bits (ceil(n_channels / 64)
// words, device memory) is required: the channel keeps are written there, then applied.
void spatial_dropout_forward(const float* x, float* y, int64_t n_channels, int64_t channel_size, uint32_t threshold,
                             float scale, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                             uint64_t index_offset = 0);
void spatial_dropout_backward(const float* dy, float* dx, int64_t n_channels, int64_t channel_size,
                              const uint64_t* mask_bits, float scale);
// Monte Carlo dropout: y is samples x n, row k = dropout of x with stream stream0 + k.
void mc_dropout_forward(const float* x, float* y, int64_t n, int64_t samples, uint32_t threshold, float scale,
                        uint64_t seed, uint64_t stream0);
// DropConnect of a dense weight is dropout_forward over it. Of a CSR weight (rows x cols):
// out[j] = the stored value j kept or dropped by its dense index; keep: nnz bytes or null.
void drop_connect_csr(const int64_t* indptr, const int32_t* indices, const float* values, float* out, uint8_t* keep,
                      int64_t rows, int64_t cols, uint32_t threshold, float scale, uint64_t seed, uint64_t stream);

}  // namespace cuda
}  // namespace dropnet

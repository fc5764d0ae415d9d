// Loop body of activation_backward, compiled once per ISA unit (activation.cpp, activation_avx2.cpp,
// activation_avx512.cpp) with that unit's flags; the anonymous namespace gives each unit its own
// copy, so the differently-compiled twins never meet at link time.
// Shapes: dy, y, pre, d_pre rows × cols C-order; d_bias cols; keep_bits ceil(rows·cols / 64).
// Loop order: rows outer (so each d_bias[j] is summed over rows in order 0..rows-1), columns of
// [col0, col1) inner in chunks, so the inner loops are unit-stride and branch-free per activation.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "dropnet/core/activation_element.h"
#include "dropnet/kernels/cpu/activation.h"

namespace dropnet {
namespace cpu {
namespace {

// The 64 mask bits of elements [e, e + n), n <= 64, bit t = keep of element e + t. Reads the next
// word only when the run crosses into it (so never past the end of the mask).
inline uint64_t keep_bits_at(const uint64_t* keep_bits, uint64_t e, int64_t n) {
  const uint64_t w = e >> 6, s = e & 63;
  uint64_t v = keep_bits[w] >> s;
  if (s != 0 && static_cast<int64_t>(s) + n > 64) v |= keep_bits[w + 1] << (64 - s);
  return v;
}

template <ActivationKind K, bool Masked>
void activation_backward_cols(int64_t rows, int64_t cols, int64_t col0, int64_t col1, const float* dy,
                              const float* y, const float* pre, const uint64_t* keep_bits, float dropout_scale,
                              float slope, float* d_pre, float* d_bias) {
  constexpr int64_t kChunk = 64;  // one mask word's worth of elements
  float gain[kChunk];             // keep(e) · dropout_scale, expanded from the bits once per chunk
  const float keep_prob = Masked ? 1.f / dropout_scale : 1.f;
  if (d_bias) std::fill(d_bias + col0, d_bias + col1, 0.f);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j0 = col0; j0 < col1; j0 += kChunk) {
      const int64_t n = std::min(kChunk, col1 - j0);
      const int64_t e0 = i * cols + j0;
      if (Masked) {
        // Broadcast-and-shift expansion of 32-bit halves: vectorises without gathers.
        const uint64_t v = keep_bits_at(keep_bits, static_cast<uint64_t>(e0), n);
        const uint32_t lo = static_cast<uint32_t>(v), hi = static_cast<uint32_t>(v >> 32);
        for (uint32_t t = 0; t < 32; ++t) gain[t] = ((lo >> t) & 1u) ? dropout_scale : 0.f;
        for (uint32_t t = 0; t < 32; ++t) gain[32 + t] = ((hi >> t) & 1u) ? dropout_scale : 0.f;
      }
      const float* dyr = dy + e0;
      const float* yr = y + e0;
      float* dr = d_pre + e0;
      if (K == ActivationKind::gelu) {
        const float* zr = pre + e0;
        for (int64_t t = 0; t < n; ++t)
          dr[t] = dyr[t] * (Masked ? gain[t] : 1.f) * activation_derivative<K>(0.f, zr[t], slope);
      } else {
        for (int64_t t = 0; t < n; ++t)
          dr[t] = dyr[t] * (Masked ? gain[t] : 1.f) * activation_derivative<K>(yr[t] * keep_prob, 0.f, slope);
      }
      if (d_bias) {
        float* db = d_bias + j0;
        for (int64_t t = 0; t < n; ++t) db[t] += dr[t];
      }
    }
  }
}

template <ActivationKind K>
void activation_backward_kind(int64_t rows, int64_t cols, int64_t col0, int64_t col1, const float* dy,
                              const float* y, const float* pre, const uint64_t* keep_bits, float dropout_scale,
                              float slope, float* d_pre, float* d_bias) {
  if (keep_bits)
    activation_backward_cols<K, true>(rows, cols, col0, col1, dy, y, pre, keep_bits, dropout_scale, slope, d_pre,
                                      d_bias);
  else
    activation_backward_cols<K, false>(rows, cols, col0, col1, dy, y, pre, keep_bits, dropout_scale, slope, d_pre,
                                       d_bias);
}

inline void activation_backward_any(ActivationKind kind, int64_t rows, int64_t cols, int64_t col0, int64_t col1,
                                    const float* dy, const float* y, const float* pre, const uint64_t* keep_bits,
                                    float dropout_scale, float slope, float* d_pre, float* d_bias) {
#define DROPNET_ACT_CASE(K)                                                                                   \
  case ActivationKind::K:                                                                                     \
    return activation_backward_kind<ActivationKind::K>(rows, cols, col0, col1, dy, y, pre, keep_bits,         \
                                                       dropout_scale, slope, d_pre, d_bias);
  switch (kind) {
    DROPNET_ACT_CASE(relu)
    DROPNET_ACT_CASE(leaky_relu)
    DROPNET_ACT_CASE(tanh)
    DROPNET_ACT_CASE(sigmoid)
    DROPNET_ACT_CASE(gelu)
    DROPNET_ACT_CASE(selu)
    DROPNET_ACT_CASE(elu)
    default: DROPNET_ACT_CASE(identity)
  }
#undef DROPNET_ACT_CASE
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet

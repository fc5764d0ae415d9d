// One 64-bit mask word of the dropout family: the keep bits of elements [64 w, 64 w + 64) and the
// values they give, following docs/design.md, "The Philox stream contract". These functions are
// `__host__ __device__` (DROPNET_HD): the CPU's scalar twin (kernels/cpu/dropout.cpp) loops over
// words calling them, and every CUDA thread of kernels/cuda/dropout.cu runs them for the words it
// owns, so the two devices share one definition of every bit. The CPU's AVX2 / AVX-512 bodies are
// tested against the scalar twin.
//
// A word has exactly one writer (one CPU thread's range, one CUDA thread), so no atomics are needed.
#pragma once
#include <cmath>
#include <cstdint>

#include "dropnet/core/philox.h"

namespace dropnet {

// For e in [begin, end): keep_e = bits_in ? bit e of bits_in : word_e(seed, stream) < threshold;
// y[e] = keep_e ? (affine ? fma(a, x[e], b) : a * x[e]) : dropped; bits_out gets the keep bits
// (bits past `end` in its last word zero). x == nullptr: bits only. x and y may alias.
struct DropoutPass {
  const float* x = nullptr;
  float* y = nullptr;
  const uint64_t* bits_in = nullptr;
  uint64_t* bits_out = nullptr;
  uint32_t threshold = 0;
  uint64_t seed = 0, stream = 0;
  uint64_t index_offset = 0;  // element e draws Philox word index_offset + e
  float a = 1.f, b = 0.f, dropped = 0.f;
  bool affine = false;
  // CPU only: non-temporal stores of y, worth it when y is far larger than the caches.
  bool stream_stores = false;
};

// The plain scaling pass y = keep ? a * x : 0 of (seed, stream), which each device's dropout
// entry points start from (kernels/cpu/dropout.cpp, kernels/cuda/dropout_body.h).
DROPNET_HD DropoutPass dropout_scale_pass(const float* x, float* y, uint32_t threshold, float a, uint64_t seed,
                                          uint64_t stream, uint64_t index_offset = 0) {
  DropoutPass p;
  p.x = x;
  p.y = y;
  p.threshold = threshold;
  p.a = a;
  p.seed = seed;
  p.stream = stream;
  p.index_offset = index_offset;
  return p;
}

// The low m bits set (m in [0, 64]).
DROPNET_HD uint64_t dropout_low_bits(int64_t m) { return m >= 64 ? ~uint64_t{0} : (uint64_t{1} << m) - 1; }

// Keep bits of elements g .. g + m - 1 (m <= 64), bit j for element g + j, from the generator.
// Element g + j draws word index_offset + g + j; with an offset that is not a multiple of 4 a
// Philox block straddles two groups of 4 elements, so the words are walked one by one with the
// current block cached.
DROPNET_HD uint64_t dropout_generate_bits(const DropoutPass& p, int64_t g, int64_t m) {
  uint64_t bits = 0;
  uint64_t block_index = ~uint64_t{0};
  philox::Words w{};
  for (int64_t j = 0; j < m; ++j) {
    const uint64_t e = p.index_offset + static_cast<uint64_t>(g + j);
    if ((e >> 2) != block_index) {
      block_index = e >> 2;
      w = philox::stream_block(p.seed, p.stream, block_index);
    }
    bits |= static_cast<uint64_t>(w.v[e & 3] < p.threshold) << j;
  }
  return bits;
}

// y of one kept or dropped element. fmaf is one rounding on both devices (glibc's fmaf and the
// CUDA intrinsic are both exact); the product a * v is one rounding with contraction off (the
// CPU build's -ffp-contract=off, the CUDA build's --fmad=false).
DROPNET_HD float dropout_value(const DropoutPass& p, bool keep, float v) {
  return keep ? (p.affine ? fmaf(p.a, v, p.b) : p.a * v) : p.dropped;
}

// Mask word w of a pass over n elements: its keep bits (read or generated), bits_out[w] and the
// y values of its elements. Element order inside the word is ascending; it does not matter for
// the result (every element is independent) but keeps the CPU twin's memory access sequential.
DROPNET_HD void dropout_pass_word(const DropoutPass& p, int64_t w, int64_t n) {
  const int64_t g = w * 64;
  const int64_t m = n - g < 64 ? n - g : 64;
  const uint64_t bits = p.bits_in ? p.bits_in[w] & dropout_low_bits(m) : dropout_generate_bits(p, g, m);
  if (p.bits_out) p.bits_out[w] = bits;
  if (!p.x) return;
  for (int64_t j = 0; j < m; ++j) p.y[g + j] = dropout_value(p, (bits >> j) & 1, p.x[g + j]);
}

// Spatial dropout's apply step for one element e of an (n_channels, channel_size) array: channel
// e / channel_size is kept (bit of `channel_bits`) -> x * scale, else 0.
DROPNET_HD void spatial_apply_element(const float* x, float* y, int64_t channel_size, const uint64_t* channel_bits,
                                      float scale, int64_t e) {
  const int64_t c = e / channel_size;
  y[e] = ((channel_bits[c >> 6] >> (c & 63)) & 1) ? x[e] * scale : 0.f;
}

}  // namespace dropnet

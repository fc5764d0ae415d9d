// Dropout family: entries, dispatch and the scalar twin of the one-pass body.
#include "dropnet/kernels/cpu/dropout.h"

#include <algorithm>
#include <cmath>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/philox.h"

namespace dropnet {
namespace cpu {

namespace {
// Mask words per thread piece at least: 512 words = 32768 elements, ~10 µs of work, so waking
// the second thread (a few µs) pays for itself.
constexpr int64_t kGrainWords = 512;

}  // namespace

// Scalar twin: the words of [begin, end) in order, each through the device-neutral word function
// the CUDA kernels run too (core/dropout_word.h), so the CPU and GPU share one definition.
void dropout_pass_scalar(const DropoutPass& p, int64_t begin, int64_t end) {
  for (int64_t w = begin >> 6; w * 64 < end; ++w) dropout_pass_word(p, w, end);
}

namespace {
using PassBody = void (*)(const DropoutPass&, int64_t, int64_t);

PassBody active_body() {
  switch (active_isa()) {
    case Isa::avx512: return dropout_pass_avx512;
    case Isa::avx2: return dropout_pass_avx2;
    case Isa::scalar: break;
  }
  return dropout_pass_scalar;
}
}  // namespace

void dropout_pass(const DropoutPass& p, int64_t n) {
  if (n <= 0) return;
  // The vector bodies draw whole Philox blocks from a 4-aligned word: an offset that is not a
  // multiple of 4 (a shard of rows of odd width) takes the scalar twin, same bits.
  const PassBody body = (p.index_offset & 3) != 0 && !p.bits_in ? dropout_pass_scalar : active_body();
  // Pieces are whole mask words: thread t owns words [wb, we) and elements [64 wb, 64 we).
  const int64_t n_words = (n + 63) / 64;
  parallel_ranges(n_words, kGrainWords, [&](int64_t wb, int64_t we) {
    DenormalsFlushed ftz;  // MXCSR is per thread
    body(p, wb * 64, std::min(we * 64, n));
  });
}

namespace {
DropoutPass scale_pass(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                       uint64_t stream) {
  DropoutPass p = dropout_scale_pass(x, y, threshold, scale, seed, stream);
  // Non-temporal stores for outputs far larger than the caches: no read-for-ownership of y and
  // no eviction of others' data. Measured at 64 MB in the interleaved benchmark (1 thread): 0.74-0.97x
  // the torch copy with them, 0.53-0.58x without. (Back-to-back passes on the same buffers
  // alone favour regular stores at 1 thread; real programs do not run like that.)
  p.stream_stores = x != y && n * static_cast<int64_t>(sizeof(float)) >= kDropoutStreamStoreBytes;
  return p;
}
}  // namespace

void dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                     uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) {
  DropoutPass p = scale_pass(x, y, n, threshold, scale, seed, stream);
  p.bits_out = mask_bits;
  p.index_offset = index_offset;
  dropout_pass(p, n);
}

void dropout_forward_scalar(const float* x, float* y, int64_t n, uint32_t threshold, float scale, uint64_t seed,
                            uint64_t stream, uint64_t* mask_bits) {
  DropoutPass p = scale_pass(x, y, n, threshold, scale, seed, stream);
  p.bits_out = mask_bits;
  dropout_pass_scalar(p, 0, n);
}

void dropout_backward_bits(const float* dy, const uint64_t* mask_bits, float* dx, int64_t n, float scale) {
  DropoutPass p = scale_pass(dy, dx, n, 0, scale, 0, 0);
  p.bits_in = mask_bits;
  dropout_pass(p, n);
}

void dropout_backward_regen(const float* dy, float* dx, int64_t n, uint32_t threshold, float scale,
                            uint64_t seed, uint64_t stream) {
  dropout_pass(scale_pass(dy, dx, n, threshold, scale, seed, stream), n);
}

void mc_dropout_forward(const float* x, float* y, int64_t n, int64_t samples, uint32_t threshold, float scale,
                        uint64_t seed, uint64_t stream0) {
  if (n <= 0 || samples <= 0) return;
  if (n >= 64 * kGrainWords) {  // big enough to split one sample over the threads
    for (int64_t k = 0; k < samples; ++k)
      dropout_forward(x, y + k * n, n, threshold, scale, seed, stream0 + static_cast<uint64_t>(k), nullptr);
    return;
  }
  const PassBody body = active_body();
  const int64_t samples_per_piece = std::max<int64_t>(1, 64 * kGrainWords / n);
  parallel_ranges(samples, samples_per_piece, [&](int64_t kb, int64_t ke) {
    DenormalsFlushed ftz;
    for (int64_t k = kb; k < ke; ++k) {
      DropoutPass p = scale_pass(x, y + k * n, n, threshold, scale, seed, stream0 + static_cast<uint64_t>(k));
      body(p, 0, n);
    }
  });
}

void dropout_mask_bits(int64_t n, uint32_t threshold, uint64_t seed, uint64_t stream, uint64_t* mask_bits,
                       uint64_t index_offset) {
  DropoutPass p;
  p.bits_out = mask_bits;
  p.index_offset = index_offset;
  p.threshold = threshold;
  p.seed = seed;
  p.stream = stream;
  dropout_pass(p, n);
}

AlphaDropoutCoeffs alpha_dropout_coeffs(double p) {
  const double alpha = kAlphaDropoutAlpha;
  const double a = 1.0 / std::sqrt((1.0 - p) * (1.0 + p * alpha * alpha));
  const double b = -a * alpha * p;
  return {static_cast<float>(a), static_cast<float>(b), static_cast<float>(a * alpha + b)};
}

void alpha_dropout_forward(const float* x, float* y, int64_t n, uint32_t threshold, AlphaDropoutCoeffs c,
                           uint64_t seed, uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) {
  DropoutPass p = scale_pass(x, y, n, threshold, c.a, seed, stream);
  p.b = c.b;
  p.dropped = c.dropped_value;
  p.affine = true;
  p.bits_out = mask_bits;
  p.index_offset = index_offset;
  dropout_pass(p, n);
}

}  // namespace cpu
}  // namespace dropnet

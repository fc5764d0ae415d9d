// Dropout kernels: every ISA body against the scalar twin (itself checked against Philox words
// element by element), at awkward lengths, piece starts and counters near the 2^32-block wrap;
// 1 vs 3 threads; backward both ways; AlphaDropout coefficients; spatial dropout.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/philox.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/dropout.h"

using namespace dropnet;

namespace {

using Body = void (*)(const cpu::DropoutPass&, int64_t, int64_t);

std::vector<Body> bodies() {
  std::vector<Body> b = {cpu::dropout_pass_scalar};
  if (max_supported_isa() >= Isa::avx2) b.push_back(cpu::dropout_pass_avx2);
  if (max_supported_isa() >= Isa::avx512) b.push_back(cpu::dropout_pass_avx512);
  return b;
}

std::vector<float> ramp(int64_t n) {
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 97) * 0.37f - 11.f;
  return x;
}

uint32_t bits_word(const std::vector<uint64_t>& bits, int64_t e) { return (bits[e >> 6] >> (e & 63)) & 1; }

}  // namespace

TEST_CASE("scalar twin follows the Philox contract element by element") {
  const uint64_t seed = 0x1234567890abcdefULL, stream = 0xfffffffff0ULL;
  const uint32_t threshold = keep_threshold(0.3);
  const int64_t n = 1000;
  std::vector<float> x = ramp(n), y(n);
  std::vector<uint64_t> bits((n + 63) / 64, ~uint64_t{0});
  cpu::dropout_forward_scalar(x.data(), y.data(), n, threshold, 2.f, seed, stream, bits.data());
  for (int64_t e = 0; e < n; ++e) {
    const bool keep = philox::stream_word(seed, stream, static_cast<uint64_t>(e)) < threshold;
    CHECK(bits_word(bits, e) == keep);
    CHECK(y[e] == (keep ? x[e] * 2.f : 0.f));
  }
  CHECK((bits.back() >> (n & 63)) == 0);  // padding bits are zero
}

TEST_CASE("every ISA body equals the scalar twin, any start group and length") {
  const uint64_t seeds[] = {0, 0xffffffffffffffffULL, 0x0123456789abcdefULL};
  // Element starts (multiples of 64) including groups right before and across the 2^32-block wrap
  // (element 2^34) and in a later high word, where the fast path must rebase its constants.
  const int64_t starts[] = {0, 64, (int64_t{1} << 34) - 128, (int64_t{1} << 34) - 64, int64_t{1} << 34,
                            (int64_t{5} << 34) + 640};
  const int64_t lengths[] = {1, 3, 4, 17, 63, 64, 65, 127, 128, 200, 64 * 9 + 5};
  for (uint64_t seed : seeds)
    for (int64_t start : starts)
      for (int64_t len : lengths)
        for (int variant = 0; variant < 4; ++variant) {
          // variant 0: forward + bits, 1: bits in, 2: affine, 3: bits only
          const int64_t n_words = (len + 63) / 64 + 1;
          std::vector<float> x = ramp(len);
          std::vector<uint64_t> in_bits(n_words);
          for (int64_t w = 0; w < n_words; ++w) in_bits[w] = 0x9e3779b97f4a7c15ULL * (w + 1);
          std::vector<float> want_y, got_y;
          std::vector<uint64_t> want_bits, got_bits;
          for (Body body : bodies()) {
            std::vector<float> y(len + 1, -7.f);
            std::vector<uint64_t> bits(n_words, 0xdeadbeefULL);
            cpu::DropoutPass p;
            // Offset pointers so element `start` lands on the buffers' first slot.
            p.x = variant == 3 ? nullptr : x.data() - start;
            p.y = y.data() - start;
            p.threshold = keep_threshold(0.35);
            p.seed = seed;
            p.stream = 0x00000001ffffffffULL;
            p.a = 1.25f;
            if (variant == 1) p.bits_in = in_bits.data() - start / 64;
            else p.bits_out = bits.data() - start / 64;
            if (variant == 2) {
              p.affine = true;
              p.b = 0.5f;
              p.dropped = -0.75f;
            }
            body(p, start, start + len);
            if (body == cpu::dropout_pass_scalar) {
              want_y = y;
              want_bits = bits;
            } else {
              CAPTURE(seed);
              CAPTURE(start);
              CAPTURE(len);
              CAPTURE(variant);
              CHECK(y == want_y);
              CHECK(bits == want_bits);
            }
          }
        }
}

TEST_CASE("threaded entries equal one thread and the scalar twin, backward both ways") {
  const int saved_threads = get_num_threads();
  const Isa saved_isa = active_isa();
  const int64_t n = (1 << 17) + 77;
  const uint32_t threshold = keep_threshold(0.5);
  std::vector<float> x = ramp(n), want(n);
  std::vector<uint64_t> want_bits((n + 63) / 64);
  cpu::dropout_forward_scalar(x.data(), want.data(), n, threshold, 2.f, 3, 4, want_bits.data());
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    for (int threads : {1, 3}) {
      set_num_threads(threads);
      std::vector<float> y(n), dx(n), dx2(n);
      std::vector<uint64_t> bits((n + 63) / 64);
      cpu::dropout_forward(x.data(), y.data(), n, threshold, 2.f, 3, 4, bits.data());
      CHECK(y == want);
      CHECK(bits == want_bits);
      cpu::dropout_backward_bits(x.data(), bits.data(), dx.data(), n, 2.f);
      cpu::dropout_backward_regen(x.data(), dx2.data(), n, threshold, 2.f, 3, 4);
      CHECK(dx == want);
      CHECK(dx2 == want);
    }
  }
  set_isa(saved_isa);
  set_num_threads(saved_threads);
}

TEST_CASE("alpha dropout coefficients keep mean 0 and variance 1 in closed form") {
  for (double p : {0.05, 0.1, 0.5, 0.9}) {
    const cpu::AlphaDropoutCoeffs c = cpu::alpha_dropout_coeffs(p);
    const double alpha = cpu::kAlphaDropoutAlpha;
    // For x ~ N(0, 1): E[y] = a (p alpha') + b, Var[y] = a^2 ((1-p) + p(1-p) alpha'^2).
    const double mean = c.a * (p * alpha) + c.b;
    const double var = static_cast<double>(c.a) * c.a * ((1 - p) + p * (1 - p) * alpha * alpha);
    CHECK(std::fabs(mean) < 1e-6);
    CHECK(std::fabs(var - 1.0) < 1e-6);
    CHECK(c.dropped_value == doctest::Approx(c.a * alpha + c.b).epsilon(1e-6));
  }
}

TEST_CASE("spatial dropout zeroes or scales whole channels by element word i = n*C + c") {
  const int64_t n_channels = 150, channel_size = 37;
  const uint32_t threshold = keep_threshold(0.4);
  std::vector<float> x = ramp(n_channels * channel_size), y(x.size()), dx(x.size());
  std::vector<uint64_t> bits((n_channels + 63) / 64);
  cpu::spatial_dropout_forward(x.data(), y.data(), n_channels, channel_size, threshold, 1.5f, 11, 12, bits.data());
  for (int64_t i = 0; i < n_channels; ++i) {
    const bool keep = philox::stream_word(11, 12, static_cast<uint64_t>(i)) < threshold;
    CHECK(bits_word(bits, i) == keep);
    for (int64_t j = 0; j < channel_size; ++j)
      CHECK(y[i * channel_size + j] == (keep ? x[i * channel_size + j] * 1.5f : 0.f));
  }
  cpu::spatial_dropout_backward(x.data(), dx.data(), n_channels, channel_size, nullptr, threshold, 1.5f, 11, 12);
  CHECK(dx == y);
}

TEST_CASE("non-temporal store paths equal the scalar twin at every misalignment of y") {
  if (max_supported_isa() < Isa::avx512) return;
  const int64_t lengths[] = {256, 300, 64 * 9 + 5, 1000, 4096 + 17};
  for (int64_t len : lengths)
    for (int shift = 0; shift < 16; ++shift)
      for (int variant = 0; variant < 3; ++variant) {  // 0: regen + bits out, 1: bits in, 2: affine
        std::vector<float> x = ramp(len);
        // 64-byte aligned storage, y placed `shift` floats past a line, guards on both sides.
        std::vector<float> storage_want(len + 64, -3.f), storage_got(len + 64, -3.f);
        auto place = [&](std::vector<float>& s) {
          const uintptr_t a = reinterpret_cast<uintptr_t>(s.data());
          return s.data() + (((64 - (a & 63)) & 63) >> 2) + 16 + shift;
        };
        float* want_y = place(storage_want);
        float* got_y = place(storage_got);
        std::vector<uint64_t> in_bits((len + 63) / 64), want_bits(in_bits.size()), got_bits(in_bits.size());
        for (size_t w = 0; w < in_bits.size(); ++w) in_bits[w] = 0xc2b2ae3d27d4eb4fULL * (w + 3);
        cpu::DropoutPass p;
        p.x = x.data();
        p.threshold = keep_threshold(0.3);
        p.seed = 99;
        p.stream = 5;
        p.a = 3.f;
        if (variant == 1) p.bits_in = in_bits.data();
        if (variant == 2) {
          p.affine = true;
          p.b = -1.f;
          p.dropped = 0.25f;
        }
        p.y = want_y;
        p.bits_out = variant == 1 ? nullptr : want_bits.data();
        cpu::dropout_pass_scalar(p, 0, len);
        p.y = got_y;
        p.bits_out = variant == 1 ? nullptr : got_bits.data();
        p.stream_stores = true;
        cpu::dropout_pass_avx512(p, 0, len);
        CAPTURE(len);
        CAPTURE(shift);
        CAPTURE(variant);
        // 16 guard floats on each side: nothing is written outside y.
        CHECK(std::vector<float>(got_y - 16, got_y + len + 16) == std::vector<float>(want_y - 16, want_y + len + 16));
        CHECK(got_bits == want_bits);
      }
}

// A data-parallel rank's shard starts at a global row: its elements draw the words of the whole
// batch from index_offset on (docs/distributed.md). Offsets not a multiple of 4 take the scalar
// twin inside the threaded entry; multiples of 4 the vector bodies; both against the contract.
TEST_CASE("index_offset: element e draws word index_offset + e on every ISA, any alignment") {
  const Isa saved = active_isa();
  const uint64_t seed = 0x0123456789abcdefULL, stream = 7;
  const uint32_t threshold = keep_threshold(0.4);
  const uint64_t offsets[] = {0, 1, 2, 3, 4, 5, 63, 64, 68, 130, (uint64_t{1} << 34) - 3};
  const int64_t lengths[] = {1, 17, 64, 65, 200, 64 * 40 + 3};
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (isa > max_supported_isa()) continue;
    set_isa(isa);
    for (uint64_t off : offsets)
      for (int64_t n : lengths) {
        std::vector<float> x = ramp(n), y(n), alpha_y(n);
        std::vector<uint64_t> bits((n + 63) / 64), alpha_bits((n + 63) / 64), mask_only((n + 63) / 64);
        cpu::dropout_forward(x.data(), y.data(), n, threshold, 2.f, seed, stream, bits.data(), off);
        cpu::dropout_mask_bits(n, threshold, seed, stream, mask_only.data(), off);
        CAPTURE(static_cast<int>(isa));
        CAPTURE(off);
        CAPTURE(n);
        CHECK(mask_only == bits);
        for (int64_t e = 0; e < n; ++e) {
          const bool keep = philox::stream_word(seed, stream, off + static_cast<uint64_t>(e)) < threshold;
          if (bits_word(bits, e) != keep || y[e] != (keep ? x[e] * 2.f : 0.f)) {
            FAIL_CHECK("element " << e << " differs from the contract");
            break;
          }
        }
      }
  }
  set_isa(saved);
}

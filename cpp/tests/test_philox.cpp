// Philox4x32-10 against Random123's known-answer vectors, and every ISA body of the stream
// function against the scalar twin at awkward starts and lengths.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/philox.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/philox_stream.h"

using namespace dropnet;

TEST_CASE("philox4x32_10 matches Random123 known answers") {
  struct Kat {
    uint32_t c[4], k[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& t : kats) {
    const philox::Words w = philox::philox4x32_10(t.c[0], t.c[1], t.c[2], t.c[3], t.k[0], t.k[1]);
    for (int q = 0; q < 4; ++q) CHECK(w.v[q] == t.out[q]);
  }
}

TEST_CASE("stream words follow the counter layout of docs/design.md") {
  const uint64_t seed = 0x0123456789abcdefULL, stream = 0xfedcba9876543210ULL, i = 4ULL * 0x100000002ULL + 3;
  const philox::Words w = philox::philox4x32_10(2, 1, 0x76543210u, 0xfedcba98u, 0x89abcdefu, 0x01234567u);
  CHECK(philox::stream_word(seed, stream, i) == w.v[3]);
}

TEST_CASE("keep_threshold is floor((1-p) * 2^32) in double, clamped") {
  CHECK(keep_threshold(0.5) == 0x80000000u);
  CHECK(keep_threshold(0.0) == 0xFFFFFFFFu);
  CHECK(keep_threshold(0.75) == 0x40000000u);
  // 0.7 in double, not 0.7f: floor(0.3 * 2^32) = 1288490188
  CHECK(keep_threshold(0.7) == 1288490188u);
}

TEST_CASE("every ISA body equals the scalar twin") {
  const Isa saved = active_isa();
  const uint64_t seeds[] = {0, 1, 0xffffffffffffffffULL};
  const uint64_t starts[] = {0, 1, 3, 5, 63, 64, 65, 4ULL * 0xfffffffcULL + 1};  // the last crosses 2^32 blocks
  const int64_t lengths[] = {0, 1, 3, 4, 31, 32, 33, 64, 65, 127, 1000};
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    for (uint64_t seed : seeds)
      for (uint64_t start : starts)
        for (int64_t n : lengths) {
          std::vector<uint32_t> want(n + 1, 0xdeadbeef), got(n + 1, 0xdeadbeef);
          cpu::philox_stream_scalar(seed, 7, start, n, want.data());
          if (level == 1) cpu::philox_stream_avx2(seed, 7, start, n, got.data());
          else if (level == 2) cpu::philox_stream_avx512(seed, 7, start, n, got.data());
          else cpu::philox_stream_scalar(seed, 7, start, n, got.data());
          CAPTURE(level);
          CAPTURE(start);
          CAPTURE(n);
          CHECK(want == got);  // includes the guard word past the end
        }
  }
  set_isa(saved);
}

TEST_CASE("threaded stream equals one thread") {
  const int saved = get_num_threads();
  const int64_t n = (1 << 18) + 13;
  std::vector<uint32_t> one(n), many(n);
  set_num_threads(1);
  cpu::philox_stream(5, 9, 3, n, one.data());
  set_num_threads(3);
  cpu::philox_stream(5, 9, 3, n, many.data());
  set_num_threads(saved);
  CHECK(one == many);
}

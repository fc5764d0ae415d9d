// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), exactly as
// Random123 defines it, and dropnet's stream scheme (docs/design.md, "The Philox stream contract"):
//   element i of stream s under seed k draws word (i % 4) of
//   philox({lo32(i/4), hi32(i/4), lo32(s), hi32(s)}, {lo32(k), hi32(k)}).
// Usable from host and device code. Vectorised twins: core/philox_avx2.h, core/philox_avx512.h.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define DROPNET_HD __host__ __device__ __forceinline__
#else
#define DROPNET_HD inline
#endif

// Full unrolling of the short fixed-count loops over vector registers in the vectorised twins:
// without it an -O2 build keeps their state arrays in memory and runs at half speed.
#if defined(__clang__)
#define DROPNET_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define DROPNET_UNROLL _Pragma("GCC unroll 16")
#else
#define DROPNET_UNROLL
#endif

namespace dropnet {
namespace philox {

constexpr uint32_t kM0 = 0xD2511F53u;  // multiplier for counter word 0
constexpr uint32_t kM1 = 0xCD9E8D57u;  // multiplier for counter word 2
constexpr uint32_t kW0 = 0x9E3779B9u;  // key bump, golden ratio
constexpr uint32_t kW1 = 0xBB67AE85u;  // key bump, sqrt(3) - 1
constexpr int kRounds = 10;

struct Words {
  uint32_t v[4];
};

DROPNET_HD Words philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                              uint32_t k1) {
  for (int r = 0; r < kRounds; ++r) {
    if (r > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return Words{{c0, c1, c2, c3}};
}

// The four words of block b of stream `stream` under `seed`.
DROPNET_HD Words stream_block(uint64_t seed, uint64_t stream, uint64_t b) {
  return philox4x32_10(static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32),
                       static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The word element i draws.
DROPNET_HD uint32_t stream_word(uint64_t seed, uint64_t stream, uint64_t i) {
  return stream_block(seed, stream, i >> 2).v[i & 3];
}

}  // namespace philox

// Keep threshold of the dropout contract: keep element iff word < threshold, with
// threshold = min(floor((1 - p) * 2^32), 2^32 - 1) computed in double from the caller's p.
// p == 0 means keep everything and callers take an identity path (the threshold cannot say it).
inline uint32_t keep_threshold(double p) {
  const double keep = 1.0 - p;
  const double t = std::floor(keep * 4294967296.0);
  return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<uint32_t>(t);
}

// Inverted dropout's scale for the kept elements, 1 / (1 - p) rounded once to float.
inline float keep_scale(double p) { return static_cast<float>(1.0 / (1.0 - p)); }

}  // namespace dropnet

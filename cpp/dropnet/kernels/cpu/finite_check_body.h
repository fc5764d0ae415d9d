// Loop body of the finite check, compiled once per ISA unit with that unit's flags (the anonymous
// namespace keeps the copies apart). An exponent of all ones is NaN or ±inf.
#pragma once
#include <cstdint>
#include <cstring>

namespace dropnet {
namespace cpu {
namespace {

inline bool any_non_finite_body(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad != 0;
}

}  // namespace
}  // namespace cpu
}  // namespace dropnet

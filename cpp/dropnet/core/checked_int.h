// Overflow-checked int64 arithmetic for sizes computed from user arguments (window geometry,
// element counts, workspace sizes). A wrap-around there lets an impossible request through to a
// kernel, so each operation that can overflow throws ValueError naming the quantity instead.
#pragma once
#include <cstdint>

#include "dropnet/core/error.h"

namespace dropnet {

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  DROPNET_CHECK(!__builtin_add_overflow(a, b, &r), what, ": ", a, " + ", b, " does not fit a 64-bit integer");
  return r;
}

inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  DROPNET_CHECK(!__builtin_mul_overflow(a, b, &r), what, ": ", a, " * ", b, " does not fit a 64-bit integer");
  return r;
}

}  // namespace dropnet

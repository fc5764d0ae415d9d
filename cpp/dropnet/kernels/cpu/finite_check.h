// Input validation scan: is every float finite? Runs before a training step mutates anything, so
// it reads the whole batch once; integer-only exponent tests keep it vectorised and exact.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

// Index of the first NaN or ±inf in x[0, n), or -1.
int64_t first_non_finite(const float* x, int64_t n);

// Per-ISA bodies: true when x[0, n) holds a NaN or ±inf.
bool any_non_finite_scalar(const float* x, int64_t n);
bool any_non_finite_avx2(const float* x, int64_t n);
bool any_non_finite_avx512(const float* x, int64_t n);

}  // namespace cpu
}  // namespace dropnet

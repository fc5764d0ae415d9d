// Tolerance comparison for the tests of the CUDA kernels that sum in another order than the CPU or
// call another C library (test_cuda_layer_bodies.cpp on the host, gpu/test_cuda_layers.cpp on a
// GPU; tolerances: docs/design.md, "Device kernels").
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace dropnet {
namespace testing {

// n floats from N(0, 1), the same for a seed on every run (std::mt19937).
inline std::vector<float> normal_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// γ(terms + 2) of float32 (u = 2^-24): a sum of `terms` products in any order, rounded once more,
// differs from the exact one by at most this times Σ|products| (Higham, Accuracy and Stability).
inline double float32_sum_bound(int64_t terms) {
  const double nu = static_cast<double>(terms + 2) * std::ldexp(1.0, -24);
  return nu / (1.0 - nu);
}

// |a - b| <= atol + rtol·|b| element by element, NaN only against NaN; the worst element is reported.
inline void check_close(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  size_t at = 0;
  bool nan_matched = true;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {
      nan_matched = nan_matched && std::isnan(a[i]) && std::isnan(b[i]);
      continue;
    }
    const double err = std::fabs(static_cast<double>(a[i]) - b[i]) - (atol + rtol * std::fabs(b[i]));
    if (err > worst) {
      worst = err;
      at = i;
    }
  }
  INFO("worst element ", at, ": ", a.empty() ? 0.f : a[at], " vs ", b.empty() ? 0.f : b[at]);
  CHECK(nan_matched);
  CHECK(worst <= 0.0);
}

}  // namespace testing
}  // namespace dropnet

// Tolerance comparison for the tests of the CUDA kernels that sum in another order than the CPU or
// call another C library (test_cuda_layer_bodies.cpp on the host, gpu/test_cuda_layers.cpp on a
// GPU; tolerances: docs/design.md, "Device kernels").
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <vector>

namespace dropnet {
namespace testing {

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

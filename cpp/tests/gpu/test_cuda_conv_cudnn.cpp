// The convolution's cuDNN backend (conv2d_forward_cudnn / conv2d_backward_cudnn, and
// conv2d_forward / conv2d_backward with set_conv_backend(cudnn)) on a real GPU: forward (with and
// without bias, every epilogue activation: ReLU fused by cuDNN, the others the epilogue pass),
// dx, and dw, db accumulated, within the float32 error bound of a float64 direct convolution
// (conv_reference.h: γ(terms + 2)·Σ|terms|, the bound the implicit GEMM is held to), and the same
// bytes on a second run (deterministic algorithms only). Every geometry class the implicit GEMM's
// tests cover (conv_reference.h's kConvCases); those cuDNN cannot express (asymmetric padding that
// changes the output size) must throw from the cuDNN entries and run on the implicit GEMM through
// the dispatch. When cuDNN cannot be loaded the cases say why, and fail if
// DROPNET_REQUIRE_CUDNN=1 (tools/gpu_check.sh sets it). Part of dropnet_gpu_tests.
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "../conv_reference.h"
#include "device_vector.h"
#include "dropnet/core/error.h"
#include "dropnet/kernels/cuda/conv2d.h"
#include "dropnet/kernels/cuda/conv_backend.h"
#include "dropnet/kernels/cuda/cudnn_api.h"

using namespace dropnet;
using dropnet::gpu_testing::DeviceVector;
using dropnet::gpu_testing::same;

namespace {

using testing::ConvCase;
using testing::normal_floats;

// False (with the reason printed, or a failure where cuDNN is required) when cuDNN is missing.
bool cudnn_present() {
  const std::string missing = cuda::cudnn_unavailable_reason();
  if (missing.empty()) return true;
  const char* required = std::getenv("DROPNET_REQUIRE_CUDNN");
  if (required && std::string(required) == "1") FAIL("cuDNN required but unavailable: " << missing);
  MESSAGE("cuDNN backend not tested: " << missing);
  return false;
}

// Restores the backend a case changed.
struct ConvBackendGuard {
  cuda::ConvBackend saved = cuda::conv_backend();
  ~ConvBackendGuard() { cuda::set_conv_backend(saved); }
};

struct Outputs {
  std::vector<float> y, dx, dw, db;
};

// One run through cuDNN: the entries themselves, or the dispatch with the cuDNN backend.
Outputs run_cudnn(const ConvCase& k, const cuda::ConvShape& s, Activation act, bool with_bias, bool dispatch,
                  const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                  const std::vector<float>& dy, const std::vector<float>& dw0, const std::vector<float>& db0) {
  // y and dx start as NaN: an output cuDNN read before writing (y is the fused forward's z term,
  // scaled by 0; dx is written with beta = 0) would show.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  DeviceVector<float> d_x(x), d_w(w), d_b(b), d_dy(dy), d_y{std::vector<float>(dy.size(), nan)},
      d_dx{std::vector<float>(x.size(), nan)}, d_dw(dw0), d_db(db0),
      d_ws{std::vector<float>(static_cast<size_t>(cuda::conv2d_backward_workspace(s, k.N, k.F)))};
  const float* bias = with_bias ? d_b.p : nullptr;
  float* db = with_bias ? d_db.p : nullptr;
  if (dispatch) {
    cuda::conv2d_forward(d_x.p, k.N, s, d_w.p, k.F, bias, act, 0.03f, d_y.p);
    cuda::conv2d_backward(d_dy.p, d_x.p, k.N, s, d_w.p, k.F, d_dx.p, d_dw.p, db, d_ws.p,
                          static_cast<int64_t>(d_ws.n));
  } else {
    cuda::conv2d_forward_cudnn(d_x.p, k.N, s, d_w.p, k.F, bias, act, 0.03f, d_y.p);
    cuda::conv2d_backward_cudnn(d_dy.p, d_x.p, k.N, s, d_w.p, k.F, d_dx.p, d_dw.p, db);
  }
  return Outputs{d_y.get(), d_dx.get(), d_dw.get(), d_db.get()};
}

}  // namespace

TEST_CASE("GPU conv2d (cuDNN backend): within the float32 bound of float64, the same bytes twice, every geometry") {
  if (!cudnn_present()) return;
  ConvBackendGuard guard;
  cuda::set_conv_backend(cuda::ConvBackend::cudnn);
  for (const ConvCase& k : testing::kConvCases) {
    const cpu::ConvGeometry g = testing::conv_case_geometry(k);
    const cuda::ConvShape s = cuda::conv_shape(g);
    const int64_t ohw = g.OH * g.OW, P = k.N * ohw, K = k.C / k.groups * k.kh * k.kw;
    CAPTURE(k.N);
    CAPTURE(k.C);
    CAPTURE(k.F);
    CAPTURE(k.kh);
    CAPTURE(k.groups);
    const std::vector<float> x = normal_floats(k.N * k.C * k.H * k.W, 1), w = normal_floats(k.F * K, 2),
                             b = normal_floats(k.F, 3), dy = normal_floats(k.N * k.F * ohw, 4),
                             dw0 = normal_floats(k.F * K, 5), db0 = normal_floats(k.F, 6);
    const bool expressible = cuda::cudnn_conv_unsupported(s, k.N, k.F).empty();
    CAPTURE(expressible);
    if (!expressible) {
      // cuDNN's entries refuse it; the dispatch runs it on the implicit GEMM (its own tests hold it
      // to the bound; here it must run at all).
      std::vector<float> y(dy.size());
      CHECK_THROWS_WITH_AS(cuda::conv2d_forward_cudnn(nullptr, k.N, s, nullptr, k.F, nullptr, Activation::relu, 0.f,
                                                      nullptr),
                           doctest::Contains("cuDNN pads symmetrically"), ValueError);
      run_cudnn(k, s, Activation::relu, true, true, x, w, b, dy, dw0, db0);
      continue;
    }
    for (bool with_bias : {false, true}) {
      CAPTURE(with_bias);
      testing::Reference ref(k, g, x, w, with_bias ? b.data() : nullptr, dy);
      for (size_t e = 0; e < dw0.size(); ++e) ref.dw.add(e, dw0[e]);  // dw and db are accumulated into
      for (size_t e = 0; e < db0.size(); ++e) ref.db.add(e, db0[e]);
      for (Activation act : {Activation::identity, Activation::relu, Activation::gelu}) {
        CAPTURE(static_cast<int>(act));
        // The entries, then the dispatch: two runs that must give the same bytes.
        const Outputs first = run_cudnn(k, s, act, with_bias, false, x, w, b, dy, dw0, db0);
        const Outputs second = run_cudnn(k, s, act, with_bias, true, x, w, b, dy, dw0, db0);
        testing::check_within(first.y, ref.z, K + 1, true, 1.0, static_cast<ActivationKind>(act));
        testing::check_within(first.dx, ref.dx, k.F / k.groups * k.kh * k.kw, false, 1.0);
        testing::check_within(first.dw, ref.dw, P + 1, false, 1.0);
        if (with_bias)
          testing::check_within(first.db, ref.db, P + 1, false, 1.0);
        else
          CHECK(same(first.db, db0));
        CHECK(same(first.y, second.y));
        CHECK(same(first.dx, second.dx));
        CHECK(same(first.dw, second.dw));
        CHECK(same(first.db, second.db));
      }
    }
  }
}

TEST_CASE("GPU conv2d (cuDNN backend): the small CNN's layers at batch 8 within the bound, the same bytes twice") {
  if (!cudnn_present()) return;
  for (const ConvCase& k : {ConvCase{8, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
                            ConvCase{8, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}}) {
    CAPTURE(k.C);
    const cpu::ConvGeometry g = testing::conv_case_geometry(k);
    const cuda::ConvShape s = cuda::conv_shape(g);
    const int64_t ohw = g.OH * g.OW, P = k.N * ohw, K = k.C * 9;
    const std::vector<float> x = normal_floats(k.N * k.C * k.H * k.W, 7), w = normal_floats(k.F * K, 8),
                             b = normal_floats(k.F, 9), dy = normal_floats(k.N * k.F * ohw, 10),
                             dw0 = normal_floats(k.F * K, 11), db0 = normal_floats(k.F, 12);
    testing::Reference ref(k, g, x, w, b.data(), dy);
    for (size_t e = 0; e < dw0.size(); ++e) ref.dw.add(e, dw0[e]);
    for (size_t e = 0; e < db0.size(); ++e) ref.db.add(e, db0[e]);
    const Outputs first = run_cudnn(k, s, Activation::relu, true, false, x, w, b, dy, dw0, db0);
    const Outputs second = run_cudnn(k, s, Activation::relu, true, false, x, w, b, dy, dw0, db0);
    testing::check_within(first.y, ref.z, K + 1, true, 1.0, ActivationKind::relu);
    testing::check_within(first.dx, ref.dx, k.F * 9, false, 1.0);
    testing::check_within(first.dw, ref.dw, P + 1, false, 1.0);
    testing::check_within(first.db, ref.db, P + 1, false, 1.0);
    CHECK(same(first.y, second.y));
    CHECK(same(first.dx, second.dx));
    CHECK(same(first.dw, second.dw));
    CHECK(same(first.db, second.db));
  }
}

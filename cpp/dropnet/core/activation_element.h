// The activations of the dense layers as `__host__ __device__` functions (DROPNET_HD,
// core/philox.h), one definition for the CPU and the GPU:
//  - the GEMM epilogue's activations (identity, relu, leaky_relu, tanh, sigmoid, gelu) as
//    polynomials over a SIMD traits type V (the ops are listed in kernels/cpu/gemm_vec_math.h),
//    instantiated with AVX2 and AVX-512 vectors by the vector epilogues and with ScalarLane by the
//    scalar epilogue (kernels/cpu/gemm.cpp) and the CUDA bias + activation epilogue
//    (kernels/cuda/activation.cu): only +, -, ·, /, fmaf, rintf and ldexpf, all correctly
//    rounded on both devices, so the GPU gives the CPU's bits;
//  - the standalone layer's activations (activation_value: C-library tanh, exp, erf, expm1, each
//    device's own, so the GPU agrees within a tolerance) and every activation's derivative
//    (activation_derivative: arithmetic on the output, the CPU's bits; gelu's erf and exp within a
//    tolerance).
// Everything sits in an unnamed namespace: each ISA unit that includes this header (compiled with
// its own -m flags) keeps its own copy, so the linker can never hand one unit's code to another.
//
// Accuracy of the polynomials: exp, sigmoid and tanh within a few ulp (Cephes polynomials);
// GELU's erf is Abramowitz-Stegun 7.1.26 (absolute error <= 1.5e-7, the formula PyTorch
// vectorises), evaluated through erfc so that negative inputs do not cancel.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "dropnet/core/epilogue.h"  // Activation, ActivationKind, the SELU constants
#include "dropnet/core/philox.h"    // DROPNET_HD

namespace dropnet {
namespace {

// One-lane "vector" ops: the scalar epilogue (kernels/cpu/gemm.cpp) and the CUDA epilogue evaluate
// the very same activation polynomials as the AVX2 and AVX-512 epilogues, operation for operation
// (fmaf where they fuse, correctly rounded on every device; min/max/select with the x86 semantics
// for NaN; rintf and ldexpf exact), so every ISA and the GPU give the same bits.
struct ScalarLane {
  using F = float;
  DROPNET_HD static F set1(float x) { return x; }
  DROPNET_HD static F zero() { return 0.f; }
  DROPNET_HD static F add(F a, F b) { return a + b; }
  DROPNET_HD static F sub(F a, F b) { return a - b; }
  DROPNET_HD static F mul(F a, F b) { return a * b; }
  DROPNET_HD static F div(F a, F b) { return a / b; }
  DROPNET_HD static F fmadd(F a, F b, F c) { return fmaf(a, b, c); }
  DROPNET_HD static F fnmadd(F a, F b, F c) { return fmaf(-a, b, c); }
  DROPNET_HD static F min(F a, F b) { return a < b ? a : b; }  // minps: the second operand unless a < b
  DROPNET_HD static F max(F a, F b) { return a > b ? a : b; }
  DROPNET_HD static F abs(F a) { return fabsf(a); }
  DROPNET_HD static F round(F a) { return rintf(a); }  // to nearest even (the default mode), as _MM_FROUND_TO_NEAREST_INT
  DROPNET_HD static F pow2i(F n) { return ldexpf(1.f, static_cast<int>(n)); }  // n in [-126, 127]: exact
  DROPNET_HD static bool lt(F a, F b) { return a < b; }
  DROPNET_HD static bool le(F a, F b) { return a <= b; }
  DROPNET_HD static F select(bool m, F t, F f) { return m ? t : f; }
  DROPNET_HD static F or_sign(F x, F s) {  // x's bits OR s's sign bit, as the vector or
    uint32_t xb, sb;
    memcpy(&xb, &x, 4);
    memcpy(&sb, &s, 4);
    xb |= sb & 0x80000000u;
    memcpy(&x, &xb, 4);
    return x;
  }
};


template <class V>
DROPNET_HD typename V::F exp_v(typename V::F x) {
  using F = typename V::F;
  x = V::min(V::max(x, V::set1(-87.f)), V::set1(88.f));
  const F n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  F r = V::fnmadd(n, V::set1(0.693359375f), x);  // x - n*ln2 in two steps (Cody-Waite)
  r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
  F p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  const F y = V::add(V::fmadd(p, V::mul(r, r), r), V::set1(1.f));
  return V::mul(y, V::pow2i(n));
}

template <class V>
DROPNET_HD typename V::F sigmoid_v(typename V::F z) {
  const typename V::F one = V::set1(1.f);
  return V::div(one, V::add(one, exp_v<V>(V::sub(V::zero(), z))));
}

template <class V>
DROPNET_HD typename V::F tanh_v(typename V::F x) {
  using F = typename V::F;
  const F ax = V::abs(x);
  // |x| < 0.625: odd polynomial (Cephes tanhf); otherwise 1 - 2 / (exp(2|x|) + 1) with x's sign.
  const F z = V::mul(x, x);
  F p = V::set1(-5.70498872745e-3f);
  p = V::fmadd(p, z, V::set1(2.06390887954e-2f));
  p = V::fmadd(p, z, V::set1(-5.37397155531e-2f));
  p = V::fmadd(p, z, V::set1(1.33314422036e-1f));
  p = V::fmadd(p, z, V::set1(-3.33332819422e-1f));
  const F small = V::fmadd(V::mul(p, z), x, x);
  const F one = V::set1(1.f);
  const F e = exp_v<V>(V::add(ax, ax));
  const F big = V::sub(one, V::div(V::set1(2.f), V::add(e, one)));
  return V::select(V::lt(ax, V::set1(0.625f)), small, V::or_sign(big, x));
}

template <class V>
DROPNET_HD typename V::F gelu_v(typename V::F z) {
  using F = typename V::F;
  const F ax = V::abs(V::mul(z, V::set1(0.70710678118654752f)));
  const F one = V::set1(1.f);
  const F t = V::div(one, V::fmadd(V::set1(0.3275911f), ax, one));
  F p = V::set1(1.061405429f);
  p = V::fmadd(p, t, V::set1(-1.453152027f));
  p = V::fmadd(p, t, V::set1(1.421413741f));
  p = V::fmadd(p, t, V::set1(-0.284496736f));
  p = V::fmadd(p, t, V::set1(0.254829592f));
  const F half_erfc = V::mul(V::mul(V::set1(0.5f), V::mul(p, t)), exp_v<V>(V::mul(V::sub(V::zero(), ax), ax)));
  // z >= 0: z * (1 - erfc(|x|)/2); z < 0: z * erfc(|x|)/2.
  return V::mul(z, V::select(V::lt(z, V::zero()), half_erfc, V::sub(one, half_erfc)));
}

template <class V>
DROPNET_HD typename V::F activate_v(Activation act, typename V::F z, typename V::F slope) {
  switch (act) {
    case Activation::identity: return z;
    case Activation::relu: return V::max(z, V::zero());  // max(NaN, 0) = 0, as the scalar z > 0 ? z : 0
    case Activation::leaky_relu: return V::select(V::le(z, V::zero()), V::mul(z, slope), z);
    case Activation::tanh: return tanh_v<V>(z);
    case Activation::sigmoid: return sigmoid_v<V>(z);
    case Activation::gelu: return gelu_v<V>(z);
  }
  return z;
}

// The standalone Activation layer's y = f(x) (kernels/cpu/activation.h; not softmax).
DROPNET_HD float activation_value(ActivationKind kind, float x, float slope) {
  switch (kind) {
    case ActivationKind::relu: return x > 0.f ? x : 0.f;
    case ActivationKind::leaky_relu: return x > 0.f ? x : slope * x;
    case ActivationKind::tanh: return tanhf(x);
    case ActivationKind::sigmoid: return 1.f / (1.f + expf(-x));
    case ActivationKind::gelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case ActivationKind::selu: return x > 0.f ? kSeluLambda * x : kSeluLambda * kSeluAlpha * expm1f(x);
    case ActivationKind::elu: return x > 0.f ? x : slope * expm1f(x);
    default: return x;
  }
}

// f' from the activation output a (or, for gelu, the pre-activation z).
template <ActivationKind K>
DROPNET_HD float activation_derivative(float a, float z, float slope) {
  switch (K) {
    case ActivationKind::relu: return a > 0.f ? 1.f : 0.f;
    case ActivationKind::leaky_relu: return a > 0.f ? 1.f : slope;
    case ActivationKind::tanh: return 1.f - a * a;
    case ActivationKind::sigmoid: return a * (1.f - a);
    case ActivationKind::selu: return a > 0.f ? kSeluLambda : a + kSeluLambda * kSeluAlpha;
    case ActivationKind::elu: return a > 0.f ? 1.f : a + slope;
    case ActivationKind::gelu: {
      // d/dz [z Φ(z)] = Φ(z) + z φ(z)
      const float cdf = 0.5f * (1.f + erff(z * 0.70710678118654752f));
      const float pdf = 0.39894228040143268f * expf(-0.5f * z * z);
      return cdf + z * pdf;
    }
    default: return 1.f;
  }
}

}  // namespace
}  // namespace dropnet

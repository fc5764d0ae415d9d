// Vector activations of the GEMM epilogue, written once over a SIMD traits type V and
// instantiated by the AVX2 and AVX-512 units and, with one-lane ops, by the scalar epilogue in
// gemm.cpp, so all three evaluate the same operations and give the same bits (each unit
// instantiates its own V, so no instantiation is shared between units of different ISA flags).
//
// V provides: F (float vector), kWidth (lanes), set1, zero, add, sub, mul, div, fmadd (a*b+c),
// fnmadd (c-a*b), min, max, abs, round (to nearest), pow2i (2^n for integral n in [-126, 127]
// held in a float vector), lt / le (ordered compares), select(pred, if_true, if_false),
// or_sign(x, sign_source), load(p, n) / store(p, n, v) of the first n <= kWidth lanes,
// keep_scale(v, bits, scale) (lane j: bit j ? v*scale : 0), and for dropout Keys (Philox key
// schedule), kChunk (stream words per call) and keep_bits(keys, stream, block, threshold).
//
// Accuracy: exp, sigmoid and tanh within a few ulp (Cephes polynomials); GELU's erf is
// Abramowitz-Stegun 7.1.26 (absolute error <= 1.5e-7, the formula PyTorch vectorises), evaluated
// through erfc so that negative inputs do not cancel.
#pragma once
#include <algorithm>
#include <cstdint>

#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"

namespace dropnet {
namespace cpu {
namespace gemm_detail {

template <class V>
inline typename V::F exp_v(typename V::F x) {
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
inline typename V::F sigmoid_v(typename V::F z) {
  const typename V::F one = V::set1(1.f);
  return V::div(one, V::add(one, exp_v<V>(V::sub(V::zero(), z))));
}

template <class V>
inline typename V::F tanh_v(typename V::F x) {
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
inline typename V::F gelu_v(typename V::F z) {
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
inline typename V::F activate_v(Activation act, typename V::F z, typename V::F slope) {
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

// The epilogue (gemm.h) on C rows [row0, row0 + rows) x columns [col0, col0 + cols).
// Row by row in chunks that one Philox call covers: kChunk words from the 4-aligned Philox word at or
// before the chunk's first, so a chunk is kChunk - (word0 % 4) elements (all kChunk once aligned).
// The chunk's keep bits go to the mask in one atomic update per word (gemm_kernels.h).
template <class V>
void epilogue_v(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t N, float* C,
                int64_t ldc) {
  using F = typename V::F;
  constexpr int W = V::kWidth;
  const typename V::Keys keys(ep.dropout ? ep.seed : 0);
  const F slope = V::set1(ep.leaky_slope), scale = V::set1(ep.scale);
  for (int64_t i = row0; i < row0 + rows; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = col0, n = 0; j < col0 + cols; j += n) {
      const uint64_t e0 = static_cast<uint64_t>(i * N + j);
      const uint64_t word0 = ep.index_offset + e0;  // Philox word of the chunk's first element
      n = std::min<int64_t>(V::kChunk - static_cast<int64_t>(word0 & 3), col0 + cols - j);
      uint64_t keep = 0;
      if (ep.dropout) keep = V::keep_bits(keys, ep.stream, word0 >> 2, ep.threshold) >> (word0 & 3);
      for (int h = 0; h * W < n; ++h) {
        const int lanes = static_cast<int>(std::min<int64_t>(W, n - h * W));
        F z = V::load(c + j + h * W, lanes);
        if (ep.bias) z = V::add(z, V::load(ep.bias + j + h * W, lanes));
        if (ep.pre_activation) V::store(ep.pre_activation + e0 + h * W, lanes, z);
        F y = activate_v<V>(ep.activation, z, slope);
        if (ep.dropout) y = V::keep_scale(y, keep >> (h * W), scale);
        V::store(c + j + h * W, lanes, y);
      }
      if (ep.dropout && ep.mask_bits) mask_write_bits(ep.mask_bits, e0, keep, static_cast<int>(n));
    }
  }
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace dropnet

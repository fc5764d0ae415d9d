// The vector epilogue of the GEMM, written once over a SIMD traits type V and instantiated by the
// AVX2 and AVX-512 units; its activations (exp_v, sigmoid_v, tanh_v, gelu_v, activate_v) live in
// core/activation_element.h, where the scalar epilogue (gemm.cpp) and the CUDA epilogue
// instantiate them with one-lane ops (ScalarLane), so every path evaluates the same operations and
// gives the same bits (each unit instantiates its own V, so no instantiation is shared between
// units of different ISA flags).
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

#include "dropnet/core/activation_element.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"

namespace dropnet {
namespace cpu {
namespace gemm_detail {

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

// The canonical 16-lane dot product that every ISA path of the sparse weight-gradient kernels
// (sddmm, csr_sampled_dot) follows, so their bits do not depend on the vector width:
//   lane l (0..15) accumulates the products of the positions j ≡ l (mod 16), j ascending, one
//   fused multiply-add per product, starting from +0;
//   the lanes are then added by one fixed tree: h[i] = a[i] + a[i+8] (i < 8),
//   q[i] = h[i] + h[i+4] (i < 4), sum = (q[0] + q[2]) + (q[1] + q[3]).
// AVX-512 holds the 16 lanes in one register, AVX2 in two (lanes 0-7, 8-15), the scalar path in
// 16 floats (std::fma). See docs/design.md, "Canonical reduction orders".
#pragma once

namespace dropnet {
namespace cpu {

inline float reduce16_scalar(const float a[16]) {
  float h[8], q[4];
  for (int i = 0; i < 8; ++i) h[i] = a[i] + a[i + 8];
  for (int i = 0; i < 4; ++i) q[i] = h[i] + h[i + 4];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

}  // namespace cpu
}  // namespace dropnet

// The GEMM's reduction blocking, shared by the CPU kernels (kernels/cpu/gemm.cpp) and the CUDA
// twin (kernels/cuda/gemm_body.h), so both cut K at the same places: every element of C is
// accumulated in blocks of gemm_k_block(K) along k (the last one shorter), one fma chain from +0
// per block, and the blocks are added onto C in order (docs/design.md, "Canonical reduction orders").
// A function of K alone: the bits of a product depend on nothing else.
#pragma once
#include <cstdint>

#include "dropnet/core/philox.h"  // DROPNET_HD

// The largest K block (the CPU's KC: a KC x mr panel of A stays in L1). Overridable only to measure
// other blockings; a build that changes it computes other bits on every device alike.
#ifndef DROPNET_GEMM_KC
#define DROPNET_GEMM_KC 256
#endif

namespace dropnet {

constexpr int64_t kGemmKcMax = DROPNET_GEMM_KC;

// K blocks of near-equal size (no thin last block), a multiple of 8 (the CPU packs in 8s).
DROPNET_HD int64_t gemm_k_block(int64_t K) {
  const int64_t n_blocks = (K + kGemmKcMax - 1) / kGemmKcMax;
  const int64_t kc = n_blocks > 0 ? (K + n_blocks - 1) / n_blocks : 0;
  return (kc + 7) / 8 * 8;
}

}  // namespace dropnet

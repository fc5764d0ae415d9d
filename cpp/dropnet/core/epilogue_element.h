// One element of the GEMM epilogue (its order of operations: kernels/cpu/gemm.h), written once for
// the CPU's scalar epilogue (kernels/cpu/gemm.cpp), the CUDA epilogue pass
// (kernels/cuda/activation_body.h) and the CUDA GEMM's fused writeback (kernels/cuda/gemm_body.h),
// so all three give the same bits. In an unnamed namespace, as core/activation_element.h.
#pragma once
#include <cstdint>

#include "dropnet/core/activation_element.h"
#include "dropnet/core/epilogue.h"
#include "dropnet/core/philox.h"

namespace dropnet {
namespace {

// Element e = row·N + col of the output, holding the product c: z = c + bias[col] (+0 without a
// bias, as every path adds), pre_activation[e] = z when asked for, then the activation.
DROPNET_HD float epilogue_activate(const GemmEpilogue& ep, float c, int64_t col, int64_t e) {
  const float z = c + (ep.bias ? ep.bias[col] : 0.f);
  if (ep.pre_activation) ep.pre_activation[e] = z;
  return activate_v<ScalarLane>(ep.activation, z, ep.leaky_slope);
}

// Inverted dropout of an activated value.
DROPNET_HD float epilogue_drop(const GemmEpilogue& ep, float a, bool keep) { return keep ? a * ep.scale : 0.f; }

// Whether element e is kept: its word of the (seed, stream) Philox stream at index_offset + e.
// (The word passes take four elements from one Philox block instead; the word is the same.)
DROPNET_HD bool epilogue_keep(const GemmEpilogue& ep, int64_t e) {
  return philox::stream_word(ep.seed, ep.stream, ep.index_offset + static_cast<uint64_t>(e)) < ep.threshold;
}

}  // namespace
}  // namespace dropnet

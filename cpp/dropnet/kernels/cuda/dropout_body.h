// Per-thread bodies of the CUDA dropout kernels (kernels/cuda/dropout.cu) and their launch
// geometry. Everything here is `__host__ __device__` (DROPNET_HD) and free of CUDA headers, so the
// C++ tests (cpp/tests/test_cuda_bodies.cpp) compile it with g++ and run every (block, thread) of
// the launch the .cu file would make, one after the other on the host, and compare values and
// mask bits with the CPU kernels. A `__global__` kernel is only `body(args, blockIdx.x,
// threadIdx.x)`.
//
// Launch geometry (all kernels): 1-D grid-stride. `grid_for(items)` gives
// kThreadsPerBlock = 256 threads per block and ceil(items / 256) blocks, at most kMaxBlocks; thread
// (b, t) takes items b * 256 + t, then + blocks * 256, ... An item is one 64-bit mask word (64
// elements) for the element passes, one (sample, word) pair for MC dropout, one float for spatial
// dropout's apply step. A word has one owner, so mask words are written whole, without atomics.
#pragma once
#include <cstdint>

#include "dropnet/core/dropout_word.h"
#include "dropnet/core/philox.h"

namespace dropnet {
namespace cuda {

constexpr uint32_t kThreadsPerBlock = 256;
// 8192 blocks of 256 threads: 2M threads, enough to fill any current GPU many times over while
// keeping every grid dimension far below CUDA's limits.
constexpr uint32_t kMaxBlocks = 8192;

struct Grid {
  uint32_t blocks = 0, threads = 0;
};

inline Grid grid_for(int64_t items, uint32_t max_blocks = kMaxBlocks) {
  const int64_t wanted = (items + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int64_t blocks = wanted < 1 ? 1 : (wanted > max_blocks ? max_blocks : wanted);
  return Grid{static_cast<uint32_t>(blocks), kThreadsPerBlock};
}

// The items thread (block, thread) of grid g owns: first, first + stride, ... below `items`.
DROPNET_HD int64_t grid_first_item(const Grid& g, uint32_t block, uint32_t thread) {
  return static_cast<int64_t>(block) * g.threads + thread;
}
DROPNET_HD int64_t grid_stride(const Grid& g) { return static_cast<int64_t>(g.blocks) * g.threads; }

// The passes of the host API (kernels/cuda/dropout.h), built here so that the launch and the
// host-simulated tests describe the same pass.
inline DropoutPass forward_pass(const float* x, float* y, uint32_t threshold, float scale, uint64_t seed,
                                uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) {
  DropoutPass p = dropout_scale_pass(x, y, threshold, scale, seed, stream, index_offset);
  p.bits_out = mask_bits;
  return p;
}
inline DropoutPass backward_bits_pass(const float* dy, const uint64_t* mask_bits, float* dx, float scale) {
  DropoutPass p = dropout_scale_pass(dy, dx, 0, scale, 0, 0);
  p.bits_in = mask_bits;
  return p;
}
inline DropoutPass alpha_pass(const float* x, float* y, uint32_t threshold, float a, float b, float dropped_value,
                              uint64_t seed, uint64_t stream, uint64_t* mask_bits, uint64_t index_offset) {
  DropoutPass p = forward_pass(x, y, threshold, a, seed, stream, mask_bits, index_offset);
  p.b = b;
  p.dropped = dropped_value;
  p.affine = true;
  return p;
}

// Element passes (dropout forward / backward from bits or regenerated, alpha dropout, DropConnect
// on a dense weight, bits only for spatial dropout's channels): items are the mask words of n.
DROPNET_HD void dropout_pass_thread(const DropoutPass& p, int64_t n, const Grid& g, uint32_t block, uint32_t thread) {
  const int64_t words = (n + 63) / 64;
  for (int64_t w = grid_first_item(g, block, thread); w < words; w += grid_stride(g)) dropout_pass_word(p, w, n);
}

// Monte Carlo dropout: `samples` passes over the same x; sample k writes y + k n with stream
// p.stream + k. Items are (k, w) pairs, k-major, so small inputs still fill the GPU.
DROPNET_HD void mc_dropout_thread(const DropoutPass& p, int64_t n, int64_t samples, const Grid& g, uint32_t block,
                                  uint32_t thread) {
  const int64_t words = (n + 63) / 64;
  for (int64_t item = grid_first_item(g, block, thread); item < samples * words; item += grid_stride(g)) {
    const int64_t k = item / words;
    DropoutPass q = p;
    q.y = p.y + k * n;
    q.stream = p.stream + static_cast<uint64_t>(k);
    dropout_pass_word(q, item - k * words, n);
  }
}

// Spatial dropout's apply step over the n_channels * channel_size floats: items are elements.
DROPNET_HD void spatial_apply_thread(const float* x, float* y, int64_t n_channels, int64_t channel_size,
                                     const uint64_t* channel_bits, float scale, const Grid& g, uint32_t block,
                                     uint32_t thread) {
  const int64_t n = n_channels * channel_size;
  for (int64_t e = grid_first_item(g, block, thread); e < n; e += grid_stride(g))
    spatial_apply_element(x, y, channel_size, channel_bits, scale, e);
}

// DropConnect of a CSR weight (N x K, `indptr` N + 1 entries, column `indices`): stored entry
// (r, col) is the dense element r K + col, so the bits are those of the dense DropConnect. Items
// are rows; keep gets one byte (0/1) per stored entry, or is null.
DROPNET_HD void drop_connect_csr_thread(const int64_t* indptr, const int32_t* indices, const float* values,
                                        float* out, uint8_t* keep, int64_t rows, int64_t cols, uint32_t threshold,
                                        float scale, uint64_t seed, uint64_t stream, const Grid& g, uint32_t block,
                                        uint32_t thread) {
  for (int64_t r = grid_first_item(g, block, thread); r < rows; r += grid_stride(g)) {
    for (int64_t j = indptr[r]; j < indptr[r + 1]; ++j) {
      const uint64_t e = static_cast<uint64_t>(r * cols + indices[j]);
      const bool kept = philox::stream_word(seed, stream, e) < threshold;
      out[j] = kept ? values[j] * scale : 0.f;
      if (keep) keep[j] = kept ? 1 : 0;
    }
  }
}

}  // namespace cuda
}  // namespace dropnet

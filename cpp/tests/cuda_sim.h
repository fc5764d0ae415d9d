// The host's stand-in for a CUDA launch, shared by the simulated-grid tests of the layer kernels
// (test_cuda_layer_bodies.cpp, test_cuda_conv_bodies.cpp): every block of the grid, one after the
// other, each block program (kernels/cuda/block_body.h) run by HostBlock, whose phase calls every
// thread of the block, in order or reversed, before the next phase starts (the barrier). Shared memory starts as NaN, so
// a program that read a partial sum before writing it would show. Denormals are flushed, as the
// .cu files are compiled with --ftz=true.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "dropnet/core/denormals.h"
#include "dropnet/kernels/cuda/dropout_body.h"

namespace dropnet {
namespace testing {

struct HostBlock {
  uint32_t index = 0, count = 1, threads = 1;
  bool reversed = false;
  template <class F>
  void phase(F&& f) {
    for (uint32_t i = 0; i < threads; ++i) f(reversed ? threads - 1 - i : i);
  }
};

// program(blk, a1, a2) for every block of g (a1, a2: the block's two shared arrays of g.threads doubles).
template <class Program>
void simulate_blocks(const cuda::Grid& g, bool reversed, Program&& program) {
  DenormalsFlushed ftz;
  std::vector<double> a1(g.threads), a2(g.threads);
  for (uint32_t i = 0; i < g.blocks; ++i) {
    a1.assign(g.threads, std::numeric_limits<double>::quiet_NaN());
    a2.assign(g.threads, std::numeric_limits<double>::quiet_NaN());
    HostBlock blk{reversed ? g.blocks - 1 - i : i, g.blocks, g.threads, reversed};
    program(blk, a1.data(), a2.data());
  }
}

// One block's per-thread register arrays (DeviceThreadArray on the GPU, kernels/cuda/launch.cuh):
// `per_thread` floats for each thread, NaN at the start of every block.
struct HostThreadArrays {
  std::vector<float> v;
  size_t per_thread = 0;
  float* at(uint32_t t) { return v.data() + t * per_thread; }
};

// program(blk, shared, regs) for every block of g, with `shared_floats` floats of shared memory
// and `regs_per_thread` registers per thread, all NaN at the start of each block (the tile
// programs of kernels/cuda/conv2d_body.h).
template <class Program>
void simulate_tile_blocks(const cuda::Grid& g, bool reversed, size_t shared_floats, size_t regs_per_thread,
                          Program&& program) {
  DenormalsFlushed ftz;
  std::vector<float> shared;
  HostThreadArrays regs;
  regs.per_thread = regs_per_thread;
  for (uint32_t i = 0; i < g.blocks; ++i) {
    shared.assign(shared_floats, std::numeric_limits<float>::quiet_NaN());
    regs.v.assign(g.threads * regs_per_thread, std::numeric_limits<float>::quiet_NaN());
    HostBlock blk{reversed ? g.blocks - 1 - i : i, g.blocks, g.threads, reversed};
    program(blk, shared.data(), regs);
  }
}

// body(block, thread) for every thread of a 1-D grid-stride launch, in order or reversed.
template <class Body>
void simulate_threads(const cuda::Grid& g, bool reversed, Body&& body) {
  DenormalsFlushed ftz;
  for (uint32_t i = 0; i < g.blocks; ++i)
    for (uint32_t j = 0; j < g.threads; ++j)
      body(reversed ? g.blocks - 1 - i : i, reversed ? g.threads - 1 - j : j);
}

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

}  // namespace testing
}  // namespace dropnet

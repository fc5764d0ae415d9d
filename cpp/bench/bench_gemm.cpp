// sgemm GFLOP/s per ISA level and thread count at square and MLP shapes (Google Benchmark).
// Args: M, N, K, trans_a, trans_b, threads, isa (0 scalar, 1 avx2, 2 avx512).
#include <benchmark/benchmark.h>

#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/gemm.h"

using namespace dropnet;

static void BM_sgemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const bool ta = state.range(3) != 0, tb = state.range(4) != 0;
  const Isa isa = static_cast<Isa>(state.range(6));
  if (isa > max_supported_isa()) return state.SkipWithError("CPU lacks this ISA");
  const Isa saved = active_isa();
  set_isa(isa);
  set_num_threads(static_cast<int>(state.range(5)));
  std::vector<float> A(M * K, 0.5f), B(K * N, 0.25f), C(M * N);
  for (auto _ : state) {
    cpu::sgemm(ta, tb, M, N, K, 1.f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
  }
  set_isa(saved);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

static void square_and_mlp(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    for (int64_t n : {1024, 2048}) b->Args({n, n, n, 0, 0, threads, 2});
    for (int64_t batch : {128, 256}) {
      b->Args({batch, 300, 784, 0, 1, threads, 2});  // forward X . W^T
      b->Args({batch, 784, 300, 0, 0, threads, 2});  // dX = dY . W
      b->Args({300, 784, batch, 1, 0, threads, 2});  // dW = dY^T . X
      b->Args({batch, 100, 300, 0, 1, threads, 2});
      b->Args({batch, 10, 100, 0, 1, threads, 2});
    }
  }
  b->Args({1024, 1024, 1024, 0, 0, 1, 1});
  b->Args({1024, 1024, 1024, 0, 0, 1, 0});
}

BENCHMARK(BM_sgemm)->Apply(square_and_mlp)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();

// Philox stream throughput per ISA body (words/s), single thread and the threaded entry.
#include <benchmark/benchmark.h>

#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/philox_stream.h"

using namespace dropnet;

static void run_body(benchmark::State& state, void (*body)(uint64_t, uint64_t, uint64_t, int64_t, uint32_t*)) {
  const int64_t n = state.range(0);
  std::vector<uint32_t> out(n);
  for (auto _ : state) {
    body(42, 1, 0, n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["words/s"] = benchmark::Counter(static_cast<double>(n) * state.iterations(), benchmark::Counter::kIsRate);
}

static void BM_philox_scalar(benchmark::State& s) { run_body(s, cpu::philox_stream_scalar); }
static void BM_philox_avx2(benchmark::State& s) {
  if (max_supported_isa() < Isa::avx2) return s.SkipWithError("CPU lacks AVX2");
  run_body(s, cpu::philox_stream_avx2);
}
static void BM_philox_avx512(benchmark::State& s) {
  if (max_supported_isa() < Isa::avx512) return s.SkipWithError("CPU lacks AVX-512");
  run_body(s, cpu::philox_stream_avx512);
}
static void BM_philox_threaded(benchmark::State& s) {
  set_num_threads(static_cast<int>(s.range(1)));
  run_body(s, cpu::philox_stream);
}

BENCHMARK(BM_philox_scalar)->Arg(1 << 20);
BENCHMARK(BM_philox_avx2)->Arg(1 << 20);
BENCHMARK(BM_philox_avx512)->Arg(1 << 20);
BENCHMARK(BM_philox_threaded)->Args({1 << 24, 1})->Args({1 << 24, 2})->UseRealTime();
BENCHMARK_MAIN();

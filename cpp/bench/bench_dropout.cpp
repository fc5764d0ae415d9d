// Dropout kernel throughput in GB/s (bytes read + written, mask bytes included) beside a plain
// copy of the same bytes, per ISA body (one thread) and for the threaded entries.
// Args: {n floats, threads}. Buffers are 64-byte aligned and reused across iterations.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/philox.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/dropout.h"

using namespace dropnet;

namespace {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <class T>
std::unique_ptr<T[], AlignedFree> aligned(int64_t n) {
  const size_t bytes = ((static_cast<size_t>(n) * sizeof(T) + 63) / 64) * 64;
  T* p = static_cast<T*>(std::aligned_alloc(64, bytes));
  std::memset(p, 0, bytes);
  return std::unique_ptr<T[], AlignedFree>(p);
}

void set_rate(benchmark::State& state, double bytes_per_call) {
  state.counters["GB/s"] = benchmark::Counter(bytes_per_call * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

const uint32_t kThreshold = keep_threshold(0.5);

}  // namespace

static void BM_copy(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  auto x = aligned<float>(n), y = aligned<float>(n);
  for (auto _ : state) {
    parallel_ranges(n, 1 << 15, [&](int64_t b, int64_t e) { std::memcpy(y.get() + b, x.get() + b, (e - b) * 4); });
    benchmark::ClobberMemory();
  }
  set_rate(state, 8.0 * n);
}

static void BM_forward(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  auto x = aligned<float>(n), y = aligned<float>(n);
  for (auto _ : state) {
    cpu::dropout_forward(x.get(), y.get(), n, kThreshold, 2.f, 42, 7, nullptr);
    benchmark::ClobberMemory();
  }
  set_rate(state, 8.0 * n);
}

// The same pass with regular stores (the entry picks non-temporal stores for outputs >= 48 MB).
static void BM_forward_cached_stores(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  auto x = aligned<float>(n), y = aligned<float>(n);
  cpu::DropoutPass p;
  p.x = x.get();
  p.y = y.get();
  p.threshold = kThreshold;
  p.seed = 42;
  p.stream = 7;
  p.a = 2.f;
  p.stream_stores = false;
  for (auto _ : state) {
    cpu::dropout_pass(p, n);
    benchmark::ClobberMemory();
  }
  set_rate(state, 8.0 * n);
}

static void BM_forward_mask(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  auto x = aligned<float>(n), y = aligned<float>(n);
  auto bits = aligned<uint64_t>((n + 63) / 64);
  for (auto _ : state) {
    cpu::dropout_forward(x.get(), y.get(), n, kThreshold, 2.f, 42, 7, bits.get());
    benchmark::ClobberMemory();
  }
  set_rate(state, 8.0 * n + n / 8.0);
}

static void BM_backward_regen(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  auto dy = aligned<float>(n), dx = aligned<float>(n);
  for (auto _ : state) {
    cpu::dropout_backward_regen(dy.get(), dx.get(), n, kThreshold, 2.f, 42, 7);
    benchmark::ClobberMemory();
  }
  set_rate(state, 8.0 * n);
}

static void BM_backward_bits(benchmark::State& state) {
  const int64_t n = state.range(0);
  set_num_threads(static_cast<int>(state.range(1)));
  auto dy = aligned<float>(n), dx = aligned<float>(n);
  auto bits = aligned<uint64_t>((n + 63) / 64);
  cpu::dropout_mask_bits(n, kThreshold, 42, 7, bits.get());
  for (auto _ : state) {
    cpu::dropout_backward_bits(dy.get(), bits.get(), dx.get(), n, 2.f);
    benchmark::ClobberMemory();
  }
  set_rate(state, 8.0 * n + n / 8.0);
}

// One thread, one ISA body, cache-resident: the kernel's compute ceiling.
static void run_body(benchmark::State& state, Isa isa, void (*body)(const cpu::DropoutPass&, int64_t, int64_t)) {
  if (max_supported_isa() < isa) return state.SkipWithError("CPU lacks this ISA");
  const int64_t n = state.range(0);
  auto x = aligned<float>(n), y = aligned<float>(n);
  cpu::DropoutPass p;
  p.x = x.get();
  p.y = y.get();
  p.threshold = kThreshold;
  p.seed = 42;
  p.stream = 7;
  p.a = 2.f;
  for (auto _ : state) {
    body(p, 0, n);
    benchmark::ClobberMemory();
  }
  set_rate(state, 8.0 * n);
  state.counters["Gelem/s"] = benchmark::Counter(static_cast<double>(n) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
// Keep bits only (no float traffic): the Philox ceiling of the body.
static void run_bits(benchmark::State& state, Isa isa, void (*body)(const cpu::DropoutPass&, int64_t, int64_t)) {
  if (max_supported_isa() < isa) return state.SkipWithError("CPU lacks this ISA");
  const int64_t n = state.range(0);
  auto bits = aligned<uint64_t>((n + 63) / 64);
  cpu::DropoutPass p;
  p.bits_out = bits.get();
  p.threshold = kThreshold;
  p.seed = 42;
  p.stream = 7;
  for (auto _ : state) {
    body(p, 0, n);
    benchmark::ClobberMemory();
  }
  state.counters["Gelem/s"] = benchmark::Counter(static_cast<double>(n) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
static void BM_bits_avx2(benchmark::State& s) { run_bits(s, Isa::avx2, cpu::dropout_pass_avx2); }
static void BM_bits_avx512(benchmark::State& s) { run_bits(s, Isa::avx512, cpu::dropout_pass_avx512); }

static void BM_body_scalar(benchmark::State& s) { run_body(s, Isa::scalar, cpu::dropout_pass_scalar); }
static void BM_body_avx2(benchmark::State& s) { run_body(s, Isa::avx2, cpu::dropout_pass_avx2); }
static void BM_body_avx512(benchmark::State& s) { run_body(s, Isa::avx512, cpu::dropout_pass_avx512); }

#define SIZES ->Args({1 << 18, 1})->Args({1 << 18, 2})->Args({1 << 24, 1})->Args({1 << 24, 2})->UseRealTime()
BENCHMARK(BM_copy) SIZES;
BENCHMARK(BM_forward) SIZES;
BENCHMARK(BM_forward_cached_stores) SIZES;
BENCHMARK(BM_forward_mask) SIZES;
BENCHMARK(BM_backward_regen) SIZES;
BENCHMARK(BM_backward_bits) SIZES;
BENCHMARK(BM_bits_avx2)->Arg(1 << 16);
BENCHMARK(BM_bits_avx512)->Arg(1 << 16);
BENCHMARK(BM_body_scalar)->Arg(1 << 16);
BENCHMARK(BM_body_avx2)->Arg(1 << 16);
BENCHMARK(BM_body_avx512)->Arg(1 << 16);
BENCHMARK_MAIN();

// Sparse layer kernels on one thread, split into their stages (pack, rows) and whole, per ISA,
// at the suite's shapes and sparsities, beside our dense GEMM of the same shape: where the time of
// a pruned layer goes. GFLOP/s of the sparse kernels count the stored entries only (2·nnz·M).
// Args: {M, K, N, sparsity in 1/1000}.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/sparse_csr.h"
#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/spmm.h"

using namespace dropnet;

namespace {

template <class T>
struct AlignedAlloc {  // 64-byte aligned scratch (the kernel loads it aligned)
  using value_type = T;
  AlignedAlloc() = default;
  template <class U>
  AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64)); }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const AlignedAlloc&) const { return true; }
  bool operator!=(const AlignedAlloc&) const { return false; }
};

struct Problem {
  int64_t M, K, N;
  std::vector<float> w, x, y, gy, dw;
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> values;
  cpu::CsrView S;

  explicit Problem(const benchmark::State& st)
      : M(st.range(0)), K(st.range(1)), N(st.range(2)), w(N * K), x(M * K), y(M * N), gy(M * N), indptr(N + 1) {
    std::mt19937 gen(42);
    std::uniform_real_distribution<float> u(-1.f, 1.f), keep(0.f, 1.f);
    const float density = 1.f - static_cast<float>(st.range(3)) / 1000.f;
    for (float& v : w) v = keep(gen) < density ? u(gen) : 0.f;
    for (float& v : x) v = u(gen);
    for (float& v : gy) v = u(gen);
    cpu::csr_count_rows(w.data(), nullptr, N, K, 0.f, indptr.data() + 1);
    for (int64_t n = 0; n < N; ++n) indptr[n + 1] += indptr[n];
    indices.resize(indptr[N]);
    values.resize(indptr[N]);
    dw.resize(indptr[N]);
    cpu::csr_fill(w.data(), nullptr, N, K, 0.f, indptr.data(), indices.data(), values.data());
    S = cpu::CsrView{N, K, indptr.data(), indices.data(), values.data(), nullptr};
  }
  void flops(benchmark::State& st) const {
    st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(indptr[N]) * double(M) * double(st.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
  }
};

bool use_isa(benchmark::State& st, Isa isa) {
  if (max_supported_isa() < isa) {
    st.SkipWithError("CPU lacks this ISA");
    return false;
  }
  set_isa(isa);
  set_num_threads(1);
  return true;
}

void BM_spmm_forward(benchmark::State& st, Isa isa) {
  if (!use_isa(st, isa)) return;
  Problem p(st);
  for (auto _ : st) {
    cpu::spmm_xt(p.M, p.N, p.K, p.x.data(), p.K, p.S, nullptr, cpu::Activation::identity, 0.f, p.y.data(), p.N);
    benchmark::DoNotOptimize(p.y.data());
  }
  p.flops(st);
}

void BM_spmm_pack(benchmark::State& st, Isa isa) {
  if (!use_isa(st, isa)) return;
  auto pack = isa == Isa::avx512 ? cpu::spmm_pack_avx512 : cpu::spmm_pack_avx2;
  Problem p(st);
  const int64_t Mpad = (p.M + 15) / 16 * 16;
  std::vector<float, AlignedAlloc<float>> P(((Mpad + 63) / 64) * 64 * p.K);
  for (auto _ : st) {
    pack(p.x.data(), p.K, p.M, Mpad, p.K, 0, p.K, cpu::kSpmmPanelAvx512, P.data());
    benchmark::DoNotOptimize(P.data());
  }
  st.counters["GB/s"] = benchmark::Counter(8.0 * p.M * p.K * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void BM_spmm_rows_avx512(benchmark::State& st) {
  if (!use_isa(st, Isa::avx512)) return;
  Problem p(st);
  const int64_t Mpad = (p.M + 15) / 16 * 16;
  std::vector<float, AlignedAlloc<float>> P(((Mpad + 63) / 64) * 64 * p.K);
  cpu::spmm_pack_avx512(p.x.data(), p.K, p.M, Mpad, p.K, 0, p.K, cpu::kSpmmPanelAvx512, P.data());
  for (auto _ : st) {
    cpu::spmm_rows_avx512(p.S, P.data(), p.M, Mpad, cpu::kSpmmPanelAvx512, 0, p.N, nullptr, false, p.y.data(), p.N);
    benchmark::DoNotOptimize(p.y.data());
  }
  p.flops(st);
}

void BM_sddmm(benchmark::State& st, Isa isa) {
  if (!use_isa(st, isa)) return;
  Problem p(st);
  for (auto _ : st) {
    cpu::sddmm(p.M, p.gy.data(), p.N, p.x.data(), p.K, p.S, p.dw.data(), false);
    benchmark::DoNotOptimize(p.dw.data());
  }
  p.flops(st);
}

// The dense product of the same shape through our own GEMM (cpu::sgemm): the figure a sparse
// layer has to beat. Reports dense GFLOP/s.
void BM_sgemm_dense(benchmark::State& st) {
  set_num_threads(1);
  Problem p(st);
  for (auto _ : st) {
    cpu::sgemm(false, true, p.M, p.N, p.K, 1.f, p.x.data(), p.K, p.w.data(), p.K, 0.f, p.y.data(), p.N);
    benchmark::DoNotOptimize(p.y.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * p.M * p.N * p.K * double(st.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int sp : {0, 500, 800, 900, 950, 980}) {
    b->Args({256, 784, 300, sp});
    b->Args({256, 1024, 1024, sp});
    b->Args({64, 4096, 4096, sp});
  }
}

}  // namespace

BENCHMARK(BM_sgemm_dense)->Args({256, 784, 300, 0})->Args({256, 1024, 1024, 0})->Args({64, 4096, 4096, 0});
BENCHMARK_CAPTURE(BM_spmm_forward, avx512, Isa::avx512)->Apply(shapes);
BENCHMARK_CAPTURE(BM_spmm_forward, avx2, Isa::avx2)->Apply(shapes);
void pack_shapes(benchmark::internal::Benchmark* b) {
  b->Args({256, 784, 300, 0})->Args({256, 1024, 1024, 0})->Args({64, 4096, 4096, 0});
}
BENCHMARK_CAPTURE(BM_spmm_pack, avx512, Isa::avx512)->Apply(pack_shapes);
BENCHMARK_CAPTURE(BM_spmm_pack, avx2, Isa::avx2)->Apply(pack_shapes);
BENCHMARK(BM_spmm_rows_avx512)->Apply(shapes);
BENCHMARK_CAPTURE(BM_sddmm, avx512, Isa::avx512)->Apply(shapes);
BENCHMARK_MAIN();

// The CSR layout conversions of the cuSPARSE twins (kernels/cuda/sparse_body.h) over the launch's
// grid and a 2 × 3 grid (threads stride), in order and reversed, against plain loops: the 64-bit
// row offsets narrowed, a transposed copy's values gathered through its value_index (built by
// cpu::csr_transpose from a pruned weight); the moves between a dense weight and its stored
// entries against cpu::csr_gather_values and the CPU backend's scatter. In a CUDA build also: without cuSPARSE (this machine),
// its calls name the library and the sonames tried before any CUDA call.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cuda_sim.h"
#include "dropnet/kernels/backend.h"
#include "dropnet/kernels/cpu/sparse_csr.h"
#include "dropnet/kernels/cuda/libraries.h"
#include "dropnet/kernels/cuda/sparse_body.h"

#ifdef DROPNET_HAS_CUDA
#include <stdexcept>

#include "dropnet/kernels/cuda/sparse.h"
#endif

using namespace dropnet;

namespace {

// A 37 × 53 weight with about 30 % of its entries kept, as CSR and as the CSR of its transpose.
struct Pruned {
  int64_t N = 37, K = 53;
  std::vector<float> w;
  std::vector<uint8_t> mask;
  std::vector<int64_t> indptr, t_indptr, t_value_index;
  std::vector<int32_t> indices, t_indices;
  std::vector<float> values;
  Pruned() {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    w.resize(static_cast<size_t>(N * K));
    mask.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = u(rng);
      mask[i] = u(rng) > 0.4f;
    }
    indptr.assign(static_cast<size_t>(N + 1), 0);
    cpu::csr_count_rows(w.data(), mask.data(), N, K, 0.f, indptr.data() + 1);
    for (int64_t n = 0; n < N; ++n) indptr[n + 1] += indptr[n];
    const int64_t nnz = indptr[N];
    indices.resize(static_cast<size_t>(nnz));
    values.resize(static_cast<size_t>(nnz));
    cpu::csr_fill(w.data(), mask.data(), N, K, 0.f, indptr.data(), indices.data(), values.data());
    t_indptr.resize(static_cast<size_t>(K + 1));
    t_indices.resize(static_cast<size_t>(nnz));
    t_value_index.resize(static_cast<size_t>(nnz));
    cpu::csr_transpose(N, K, indptr.data(), indices.data(), t_indptr.data(), t_indices.data(), t_value_index.data());
  }
};

}  // namespace

TEST_CASE("CUDA CSR conversions: narrowed row offsets, a transposed copy's values in its entry order") {
  const Pruned p;
  const int64_t nnz = p.indptr[p.N];
  REQUIRE(nnz > 100);
  for (bool tiny : {false, true})
    for (bool reversed : {false, true}) {
      std::vector<int32_t> narrow(p.indptr.size(), -1);
      const cuda::Grid g1 = tiny ? cuda::Grid{2, 3} : cuda::grid_for(static_cast<int64_t>(p.indptr.size()));
      testing::simulate_threads(g1, reversed, [&](uint32_t b, uint32_t t) {
        cuda::csr_indptr_to_int32_thread(p.indptr.data(), static_cast<int64_t>(p.indptr.size()), narrow.data(), g1, b,
                                         t);
      });
      for (size_t i = 0; i < narrow.size(); ++i) CHECK(narrow[i] == static_cast<int32_t>(p.indptr[i]));

      std::vector<float> gathered(static_cast<size_t>(nnz), -1.f);
      const cuda::Grid g2 = tiny ? cuda::Grid{2, 3} : cuda::grid_for(nnz);
      testing::simulate_threads(g2, reversed, [&](uint32_t b, uint32_t t) {
        cuda::csr_gather_values_thread(p.values.data(), p.t_value_index.data(), nnz, gathered.data(), g2, b, t);
      });
      // Entry q of row k of Wᵀ is W[t_indices[q], k]: read it from the dense weight.
      bool all = true;
      for (int64_t k = 0; k < p.K; ++k)
        for (int64_t q = p.t_indptr[k]; q < p.t_indptr[k + 1]; ++q)
          all = all && gathered[q] == p.w[p.t_indices[q] * p.K + k];
      CHECK(all);
    }
}

TEST_CASE("CUDA CSR moves: a dense weight's stored entries gathered and scattered back, one row per thread") {
  const Pruned p;
  const int64_t nnz = p.indptr[p.N];
  std::vector<float> expect(static_cast<size_t>(nnz));
  cpu::csr_gather_values(p.w.data(), p.N, p.K, p.indptr.data(), p.indices.data(), expect.data());
  cpu::CsrView S;
  S.rows = p.N;
  S.cols = p.K;
  S.indptr = p.indptr.data();
  S.indices = p.indices.data();
  for (bool tiny : {false, true})
    for (bool reversed : {false, true}) {
      const cuda::Grid g = tiny ? cuda::Grid{2, 3} : cuda::grid_for(p.N);
      std::vector<float> values(static_cast<size_t>(nnz), -7.f);
      testing::simulate_threads(g, reversed, [&](uint32_t b, uint32_t t) {
        cuda::csr_gather_dense_thread(p.w.data(), p.N, p.K, p.indptr.data(), p.indices.data(), values.data(), g, b, t);
      });
      CHECK(testing::same_bytes(values, expect));
      // Scatter new values into a dense array whose other entries must stay as they were.
      for (size_t q = 0; q < values.size(); ++q) values[q] = static_cast<float>(q) + 0.5f;
      std::vector<float> dense(p.w.size(), -3.f), cpu_dense(p.w.size(), -3.f);
      testing::simulate_threads(g, reversed, [&](uint32_t b, uint32_t t) {
        cuda::csr_scatter_dense_thread(values.data(), p.N, p.K, p.indptr.data(), p.indices.data(), dense.data(), g, b,
                                       t);
      });
      cpu_backend().csr_scatter(values.data(), S, cpu_dense.data());
      CHECK(testing::same_bytes(dense, cpu_dense));
      int64_t kept_entries = 0;
      for (size_t i = 0; i < dense.size(); ++i) kept_entries += p.mask[i] ? dense[i] >= 0.f : dense[i] == -3.f;
      CHECK(kept_entries == static_cast<int64_t>(dense.size()));
    }
}

#ifdef DROPNET_HAS_CUDA
TEST_CASE("cuSPARSE twins: without cuSPARSE each call names it, before any CUDA call") {
  const std::string missing = cuda::cusparse_unavailable_reason();
  CHECK(missing.empty() == cuda::nvidia_library(cuda::NvidiaLibrary::cusparse).loaded());
  if (missing.empty()) return;  // present: the GPU tests hold the calls to the CPU
  CHECK(missing.find("libcusparse.so.13") != std::string::npos);
  cuda::CsrMatrix32 S;
  const int32_t offsets[2] = {0, 0};
  S.rows = 1;
  S.cols = 2;
  S.indptr = offsets;
  CHECK_THROWS_WITH_AS(cuda::spmm_xt_cusparse(3, nullptr, 2, S, nullptr, 1),
                       doctest::Contains("spmm_xt_cusparse: cuSPARSE not found (libcusparse.so.13: "),
                       std::runtime_error);
  const int32_t cols[1] = {1};
  const int32_t offsets1[2] = {0, 1};
  S.nnz = 1;
  S.indptr = offsets1;
  S.indices = cols;
  CHECK_THROWS_WITH_AS(cuda::sddmm_cusparse(3, nullptr, 1, nullptr, 2, S, nullptr, false),
                       doctest::Contains("sddmm_cusparse: cuSPARSE not found"), std::runtime_error);
  CHECK_THROWS_WITH_AS(cuda::sddmm_cusparse(3, nullptr, 1, nullptr, 1, S, nullptr, false),
                       doctest::Contains("ldx = 1 must be >= 2"), std::invalid_argument);
}
#endif

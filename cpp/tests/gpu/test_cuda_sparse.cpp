// The cuSPARSE twins of a pruned dense layer (kernels/cuda/sparse.h) on a real GPU (part of
// dropnet_gpu_tests): forward, input gradient (through Wᵀ's CSR, its values gathered on the
// device) and weight gradient (SDDMM, overwriting and accumulating) against a float64 product of
// the masked dense weight, within the float32 bound γ(terms + 2)·Σ|terms| of any order of the sums
// (the CPU's kernels meet the same bound), and the same bytes on a second run. When cuSPARSE
// cannot be loaded the case says why, and fails if DROPNET_REQUIRE_CUSPARSE=1
// (tools/gpu_check.sh sets it).
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "device_vector.h"
#include "dropnet/kernels/cpu/sparse_csr.h"
#include "dropnet/kernels/cuda/sparse.h"

using namespace dropnet;
using dropnet::gpu_testing::DeviceVector;
using dropnet::gpu_testing::same;

namespace {

std::vector<float> sparse_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double gamma_of(int64_t terms) {
  const double u = std::ldexp(1.0, -24);
  return (terms + 2) * u / (1 - (terms + 2) * u);
}

}  // namespace

TEST_CASE("GPU cuSPARSE twins: forward, input and weight gradients within the float32 bound, twice the same") {
  const std::string missing = cuda::cusparse_unavailable_reason();
  if (!missing.empty()) {
    const char* required = std::getenv("DROPNET_REQUIRE_CUSPARSE");
    if (required && std::string(required) == "1") FAIL("cuSPARSE required but unavailable: " << missing);
    MESSAGE("cuSPARSE twins not tested: " << missing);
    return;
  }
  const int64_t M = 67, N = 300, K = 784;  // LeNet's first layer at 80 % sparsity, an odd batch
  std::vector<float> w = sparse_floats(static_cast<size_t>(N * K), 1);
  std::vector<uint8_t> mask(w.size());
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (size_t i = 0; i < w.size(); ++i) {
    mask[i] = u(rng) < 0.2f;
    if (!mask[i]) w[i] = 0.f;
  }
  std::vector<int64_t> indptr(static_cast<size_t>(N + 1), 0), t_indptr(static_cast<size_t>(K + 1));
  cpu::csr_count_rows(w.data(), mask.data(), N, K, 0.f, indptr.data() + 1);
  for (int64_t n = 0; n < N; ++n) indptr[n + 1] += indptr[n];
  const int64_t nnz = indptr[N];
  std::vector<int32_t> indices(static_cast<size_t>(nnz)), t_indices(static_cast<size_t>(nnz));
  std::vector<float> values(static_cast<size_t>(nnz));
  std::vector<int64_t> t_value_index(static_cast<size_t>(nnz));
  cpu::csr_fill(w.data(), mask.data(), N, K, 0.f, indptr.data(), indices.data(), values.data());
  cpu::csr_transpose(N, K, indptr.data(), indices.data(), t_indptr.data(), t_indices.data(), t_value_index.data());
  const std::vector<float> x = sparse_floats(static_cast<size_t>(M * K), 3),
                           dy = sparse_floats(static_cast<size_t>(M * N), 4);

  DeviceVector<int64_t> d_indptr(indptr), d_t_indptr(t_indptr), d_t_value_index(t_value_index);
  DeviceVector<int32_t> d_indices(indices), d_t_indices(t_indices), d_ip32(std::vector<int32_t>(indptr.size())),
      d_tip32(std::vector<int32_t>(t_indptr.size()));
  DeviceVector<float> d_values(values), d_t_values(std::vector<float>(values.size())), d_x(x), d_dy(dy);
  cuda::csr_indptr_to_int32(d_indptr.p, N + 1, d_ip32.p);
  cuda::csr_indptr_to_int32(d_t_indptr.p, K + 1, d_tip32.p);
  cuda::csr_gather_values(d_values.p, d_t_value_index.p, nnz, d_t_values.p);
  const cuda::CsrMatrix32 W{N, K, nnz, d_ip32.p, d_indices.p, d_values.p};
  const cuda::CsrMatrix32 Wt{K, N, nnz, d_tip32.p, d_t_indices.p, d_t_values.p};

  auto within = [](const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& bound) {
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i) bad += std::fabs(got[i] - ref[i]) > bound[i] + 1e-6;
    return bad;
  };

  SUBCASE("forward Y = X · Wᵀ and input gradient dX = dY · W") {
    for (int pass = 0; pass < 2; ++pass) {
      const bool forward = pass == 0;
      const int64_t out_cols = forward ? N : K, in_cols = forward ? K : N;
      const std::vector<float>& in = forward ? x : dy;
      DeviceVector<float> d_out(std::vector<float>(static_cast<size_t>(M * out_cols), 7.f)),
          d_again(std::vector<float>(static_cast<size_t>(M * out_cols), -7.f));
      cuda::spmm_xt_cusparse(M, forward ? d_x.p : d_dy.p, in_cols, forward ? W : Wt, d_out.p, out_cols);
      cuda::spmm_xt_cusparse(M, forward ? d_x.p : d_dy.p, in_cols, forward ? W : Wt, d_again.p, out_cols);
      const std::vector<float> got = d_out.get();
      CHECK(same(got, d_again.get()));
      std::vector<double> ref(got.size(), 0.0), bound(got.size(), 0.0);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t o = 0; o < out_cols; ++o) {
          double s = 0, mag = 0;
          int64_t terms = 0;
          for (int64_t i = 0; i < in_cols; ++i) {
            const float wv = forward ? w[o * K + i] : w[i * K + o];
            if (wv == 0.f) continue;
            const double t = static_cast<double>(in[m * in_cols + i]) * wv;
            s += t;
            mag += std::fabs(t);
            ++terms;
          }
          ref[m * out_cols + o] = s;
          bound[m * out_cols + o] = gamma_of(terms) * mag;
        }
      CAPTURE(forward);
      CHECK(within(got, ref, bound) == 0);
    }
  }

  SUBCASE("weight gradient at the stored entries, overwritten and accumulated") {
    const std::vector<float> start = sparse_floats(static_cast<size_t>(nnz), 5);
    for (bool accumulate : {false, true}) {
      DeviceVector<float> d_dw(start), d_again(start);
      cuda::sddmm_cusparse(M, d_dy.p, N, d_x.p, K, W, d_dw.p, accumulate);
      cuda::sddmm_cusparse(M, d_dy.p, N, d_x.p, K, W, d_again.p, accumulate);
      const std::vector<float> got = d_dw.get();
      CHECK(same(got, d_again.get()));
      std::vector<double> ref(got.size()), bound(got.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) {
          double s = accumulate ? start[p] : 0.0, mag = accumulate ? std::fabs(start[p]) : 0.0;
          for (int64_t m = 0; m < M; ++m) {
            const double t = static_cast<double>(dy[m * N + n]) * x[m * K + indices[p]];
            s += t;
            mag += std::fabs(t);
          }
          ref[p] = s;
          bound[p] = gamma_of(M + 1) * mag;
        }
      CAPTURE(accumulate);
      CHECK(within(got, ref, bound) == 0);
    }
  }
}

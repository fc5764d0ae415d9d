// Sparse kernels against double-precision references written here: CSR structure helpers, the
// packs (every ISA equals the scalar pack bit for bit), spmm_xt and sddmm on every ISA with row
// strides, guard columns and odd shapes, and identical bits for 1 and 3 threads; csr_matmul (the
// same bits on every ISA) and csr_sampled_dot at every column-chunk width.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "isa_guard.h"
#include "dropnet/core/cpu_features.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/csr_matmul.h"
#include "dropnet/kernels/cpu/sparse_csr.h"
#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/spmm.h"

using namespace dropnet;
using dropnet::testing::IsaGuard;

namespace {

struct Csr {
  int64_t N, K;
  std::vector<float> dense;
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> values;
  cpu::CsrView view() const { return {N, K, indptr.data(), indices.data(), values.data(), nullptr}; }
};

Csr random_csr(int64_t N, int64_t K, double density, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f), keep(0.f, 1.f);
  Csr s{N, K, std::vector<float>(N * K, 0.f), std::vector<int64_t>(N + 1, 0), {}, {}};
  for (float& v : s.dense) v = keep(gen) < density ? u(gen) : 0.f;
  if (N > 2) std::fill(s.dense.begin() + K, s.dense.begin() + 2 * K, 0.f);  // an empty row
  cpu::csr_count_rows(s.dense.data(), nullptr, N, K, 0.f, s.indptr.data() + 1);
  for (int64_t n = 0; n < N; ++n) s.indptr[n + 1] += s.indptr[n];
  s.indices.resize(s.indptr[N]);
  s.values.resize(s.indptr[N]);
  cpu::csr_fill(s.dense.data(), nullptr, N, K, 0.f, s.indptr.data(), s.indices.data(), s.values.data());
  return s;
}

std::vector<float> random_matrix(int64_t rows, int64_t ld, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> m(rows * ld);
  for (float& v : m) v = u(gen);
  return m;
}

}  // namespace

TEST_CASE("CSR from dense, transpose and back") {
  const Csr s = random_csr(37, 29, 0.3, 1);
  std::vector<float> back(37 * 29, -1.f);
  cpu::csr_to_dense(37, 29, s.indptr.data(), s.indices.data(), s.values.data(), back.data());
  CHECK(back == s.dense);
  CHECK(std::string(cpu::csr_check_pattern(37, 29, s.indptr.data(), s.indices.data(), s.indptr[37])).empty());

  const int64_t nnz = s.indptr[37];
  std::vector<int64_t> t_indptr(30), t_vi(nnz);
  std::vector<int32_t> t_idx(nnz);
  cpu::csr_transpose(37, 29, s.indptr.data(), s.indices.data(), t_indptr.data(), t_idx.data(), t_vi.data());
  CHECK(t_indptr[29] == nnz);
  for (int64_t k = 0; k < 29; ++k)
    for (int64_t q = t_indptr[k]; q < t_indptr[k + 1]; ++q) {
      if (q > t_indptr[k]) CHECK(t_idx[q] > t_idx[q - 1]);
      CHECK(s.values[t_vi[q]] == s.dense[t_idx[q] * 29 + k]);
    }
  std::vector<int64_t> nz_cols(29, 0);
  for (int64_t i = 0; i < 37 * 29; ++i) nz_cols[i % 29] += s.dense[i] != 0.f;
  for (int64_t k = 0; k < 29; ++k) CHECK(t_indptr[k + 1] - t_indptr[k] == nz_cols[k]);
}

TEST_CASE("csr_check_pattern names what is wrong") {
  const int64_t ip_bad_first[] = {1, 2}, ip_ok[] = {0, 2}, ip_desc[] = {0, 3, 2};
  const int32_t ix_ok[] = {0, 1, 2}, ix_desc[] = {1, 0}, ix_big[] = {0, 5};
  CHECK(std::string(cpu::csr_check_pattern(1, 3, ip_bad_first, ix_ok, 2)).find("indptr[0]") != std::string::npos);
  CHECK(std::string(cpu::csr_check_pattern(2, 3, ip_desc, ix_ok, 2)).find("non-decreasing") != std::string::npos);
  CHECK(std::string(cpu::csr_check_pattern(1, 3, ip_ok, ix_ok, 3)).find("indptr[-1]") != std::string::npos);
  CHECK(std::string(cpu::csr_check_pattern(1, 3, ip_ok, ix_desc, 2)).find("ascending") != std::string::npos);
  CHECK(std::string(cpu::csr_check_pattern(1, 3, ip_ok, ix_big, 2)).find("[0, number of columns)") !=
        std::string::npos);
}

TEST_CASE("balanced row bounds cover the rows in whole groups") {
  const Csr s = random_csr(203, 50, 0.4, 2);
  for (int parts : {1, 2, 3, 7}) {
    int64_t prev = 0;
    CHECK(cpu::csr_balanced_row_bound(s.indptr.data(), 203, 16, 4, parts, 0) == 0);
    for (int t = 1; t <= parts; ++t) {
      const int64_t b = cpu::csr_balanced_row_bound(s.indptr.data(), 203, 16, 4, parts, t);
      CHECK(b >= prev);
      CHECK((b % 16 == 0 || b == 203));
      prev = b;
    }
    CHECK(prev == 203);
  }
}

TEST_CASE("vector packs equal the scalar pack") {
  for (int64_t M : {1, 15, 16, 17, 64, 129})
    for (int64_t K : {1, 7, 16, 33}) {
      const int64_t ldx = K + 3;
      const std::vector<float> X = random_matrix(M, ldx, 3);
      for (int64_t B : {int64_t{16}, int64_t{64}}) {
        const int64_t Mpad = (M + 15) / 16 * 16;
        const size_t size = static_cast<size_t>(((Mpad + B - 1) / B) * K * B);
        std::vector<float> want(size, -7.f), got2(size, -7.f), got512(size, -7.f);
        cpu::spmm_pack_scalar(X.data(), ldx, M, Mpad, K, 0, K, B, want.data());
        if (max_supported_isa() >= Isa::avx2) {
          cpu::spmm_pack_avx2(X.data(), ldx, M, Mpad, K, 0, K, B, got2.data());
          CHECK(got2 == want);
        }
        if (max_supported_isa() >= Isa::avx512) {
          cpu::spmm_pack_avx512(X.data(), ldx, M, Mpad, K, 0, K, B, got512.data());
          CHECK(got512 == want);
        }
      }
    }
}

TEST_CASE("spmm_xt on every ISA matches a double reference, strides respected") {
  IsaGuard guard;
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level)
    for (int64_t M : {1, 7, 33, 129})
      for (double density : {0.0, 0.05, 0.5, 1.0}) {
        const int64_t K = 45, N = 37, ldx = K + 5, ldy = N + 3;
        const Csr s = random_csr(N, K, density, 4);
        const std::vector<float> X = random_matrix(M, ldx, 5), bias = random_matrix(1, N, 6);
        std::vector<float> Y(M * ldy, 1234.f);
        set_isa(static_cast<Isa>(level));
        cpu::spmm_xt(M, N, K, X.data(), ldx, s.view(), bias.data(), cpu::Activation::relu, 0.f, Y.data(), ldy);
        CAPTURE(level);
        CAPTURE(M);
        CAPTURE(density);
        for (int64_t m = 0; m < M; ++m) {
          for (int64_t n = 0; n < N; ++n) {
            double ref = bias[n], scale = std::fabs(bias[n]);
            for (int64_t k = 0; k < K; ++k) {
              ref += double(s.dense[n * K + k]) * X[m * ldx + k];
              scale += std::fabs(double(s.dense[n * K + k]) * X[m * ldx + k]);
            }
            ref = ref > 0 ? ref : 0;
            CHECK(std::fabs(Y[m * ldy + n] - ref) <= 1e-6 * scale + 1e-7);
          }
          for (int64_t n = N; n < ldy; ++n) CHECK(Y[m * ldy + n] == 1234.f);  // past the row: untouched
        }
      }
}

TEST_CASE("sddmm on every ISA matches a double reference; accumulate adds") {
  IsaGuard guard;
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level)
    for (int64_t M : {1, 9, 130}) {
      const int64_t K = 31, N = 23;
      const Csr s = random_csr(N, K, 0.3, 7);
      const int64_t nnz = s.indptr[N];
      const std::vector<float> dY = random_matrix(M, N, 8), X = random_matrix(M, K, 9);
      std::vector<float> dW(nnz, 0.5f);
      set_isa(static_cast<Isa>(level));
      cpu::sddmm(M, dY.data(), N, X.data(), K, s.view(), dW.data(), true);
      CAPTURE(level);
      CAPTURE(M);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = s.indptr[n]; p < s.indptr[n + 1]; ++p) {
          double ref = 0.5, scale = 0.5;
          for (int64_t m = 0; m < M; ++m) {
            ref += double(dY[m * N + n]) * X[m * K + s.indices[p]];
            scale += std::fabs(double(dY[m * N + n]) * X[m * K + s.indices[p]]);
          }
          CHECK(std::fabs(dW[p] - ref) <= 1e-6 * scale);
        }
    }
}

TEST_CASE("spmm_xt and sddmm give the same bits for 1 and 3 threads") {
  IsaGuard guard;
  const int64_t M = 200, K = 300, N = 250;
  const Csr s = random_csr(N, K, 0.3, 10);
  const std::vector<float> X = random_matrix(M, K, 11), dY = random_matrix(M, N, 12);
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    std::vector<float> y1(M * N), y3(M * N), g1(s.indptr[N]), g3(s.indptr[N]);
    set_num_threads(1);
    cpu::spmm_xt(M, N, K, X.data(), K, s.view(), nullptr, cpu::Activation::identity, 0.f, y1.data(), N);
    cpu::sddmm(M, dY.data(), N, X.data(), K, s.view(), g1.data(), false);
    set_num_threads(3);
    cpu::spmm_xt(M, N, K, X.data(), K, s.view(), nullptr, cpu::Activation::identity, 0.f, y3.data(), N);
    cpu::sddmm(M, dY.data(), N, X.data(), K, s.view(), g3.data(), false);
    CAPTURE(level);
    CHECK(y1 == y3);
    CHECK(g1 == g3);
  }
}

TEST_CASE("csr_matmul matches a double reference and gives the same bits on every ISA") {
  IsaGuard guard;
  for (int64_t P : {1, 15, 16, 40, 196, 784})
    for (double density : {0.0, 0.1, 0.6, 1.0}) {
      const int64_t R = 19, Kc = 27, ldb = P + 3, ldc = P + 2;
      const Csr s = random_csr(R, Kc, density, 12);
      const std::vector<float> B = random_matrix(Kc, ldb, 13), bias = random_matrix(1, R, 14);
      std::vector<std::vector<float>> outs;
      for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level)
        for (bool relu : {false, true}) {
          std::vector<float> C(R * ldc, 1234.f);
          set_isa(static_cast<Isa>(level));
          cpu::csr_matmul(s.view(), B.data(), ldb, P, bias.data(), relu, C.data(), ldc);
          CAPTURE(level);
          CAPTURE(P);
          CAPTURE(density);
          for (int64_t r = 0; r < R; ++r) {
            for (int64_t j = 0; j < P; ++j) {
              double ref = 0.0, scale = std::fabs(bias[r]);
              for (int64_t k = 0; k < Kc; ++k) {
                ref += double(s.dense[r * Kc + k]) * B[k * ldb + j];
                scale += std::fabs(double(s.dense[r * Kc + k]) * B[k * ldb + j]);
              }
              ref += bias[r];
              if (relu && ref < 0) ref = 0;
              CHECK(std::fabs(C[r * ldc + j] - ref) <= 1e-6 * scale + 1e-7);
            }
            for (int64_t j = P; j < ldc; ++j) CHECK(C[r * ldc + j] == 1234.f);  // past the row: untouched
          }
          if (relu) outs.push_back(C);
        }
      for (const auto& o : outs) CHECK(o == outs[0]);  // every ISA: the same fma order, the same bits
    }
}

TEST_CASE("csr_sampled_dot on every ISA adds the sampled products to out") {
  IsaGuard guard;
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level)
    for (int64_t P : {1, 7, 16, 33, 196}) {
      const int64_t R = 13, Kc = 29, lda = P + 1, ldb = P + 4;
      const Csr s = random_csr(R, Kc, 0.35, 15);
      const int64_t nnz = s.indptr[R];
      const std::vector<float> A = random_matrix(R, lda, 16), B = random_matrix(Kc, ldb, 17);
      std::vector<float> out(nnz, 0.25f);
      set_isa(static_cast<Isa>(level));
      cpu::csr_sampled_dot(s.view(), A.data(), lda, B.data(), ldb, P, out.data());
      CAPTURE(level);
      CAPTURE(P);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t p = s.indptr[r]; p < s.indptr[r + 1]; ++p) {
          double ref = 0.25, scale = 0.25;
          for (int64_t j = 0; j < P; ++j) {
            ref += double(A[r * lda + j]) * B[s.indices[p] * ldb + j];
            scale += std::fabs(double(A[r * lda + j]) * B[s.indices[p] * ldb + j]);
          }
          CHECK(std::fabs(out[p] - ref) <= 1e-6 * scale);
        }
    }
}

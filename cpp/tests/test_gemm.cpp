// sgemm (every ISA level) against sgemm_naive at awkward shapes, all transpose cases, alpha/beta;
// bit-identical results for 1 and 2 threads; the fused epilogue against apply_epilogue; the
// micro-kernel on a B or an A read in place (micro_strided, micro_rows_a) against sgemm, bit for bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "isa_guard.h"
#include "dropnet/core/cpu_features.h"
#include "dropnet/core/philox.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"

using namespace dropnet;
using dropnet::testing::IsaGuard;

namespace {

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  std::vector<float> A, B;
  int64_t lda, ldb;
};

Problem make_problem(bool ta, bool tb, int64_t M, int64_t N, int64_t K, uint32_t seed) {
  Problem p{ta, tb, M, N, K, {}, {}, 0, 0};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  // Leading dimensions with padding, so strides differ from the logical widths.
  p.lda = (ta ? M : K) + 3;
  p.ldb = (tb ? K : N) + 5;
  p.A.resize(static_cast<size_t>((ta ? K : M) * p.lda + 1));
  p.B.resize(static_cast<size_t>((tb ? N : K) * p.ldb + 1));
  for (float& x : p.A) x = u(rng);
  for (float& x : p.B) x = u(rng);
  return p;
}

}  // namespace

TEST_CASE("sgemm equals sgemm_naive within rounding on every ISA level and transpose case") {
  IsaGuard guard;
  const int64_t shapes[][3] = {{1, 1, 1},   {1, 7, 3},    {7, 1, 5},     {13, 17, 29}, {12, 32, 256},
                               {25, 33, 257}, {129, 65, 300}, {100, 300, 784}, {3, 1000, 2}, {64, 10, 513}};
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    for (const auto& s : shapes)
      for (int t = 0; t < 4; ++t) {
        const Problem p = make_problem(t & 1, t & 2, s[0], s[1], s[2], static_cast<uint32_t>(s[0] * 7 + s[1]));
        const int64_t ldc = p.N + 2;
        std::vector<float> c0(static_cast<size_t>(p.M * ldc));
        for (size_t i = 0; i < c0.size(); ++i) c0[i] = std::sin(static_cast<float>(i));
        for (float beta : {0.f, 1.f, -0.5f}) {
          std::vector<float> want = c0, got = c0;
          cpu::sgemm_naive(p.ta, p.tb, p.M, p.N, p.K, 0.75f, p.A.data(), p.lda, p.B.data(), p.ldb, beta, want.data(), ldc);
          cpu::sgemm(p.ta, p.tb, p.M, p.N, p.K, 0.75f, p.A.data(), p.lda, p.B.data(), p.ldb, beta, got.data(), ldc);
          CAPTURE(level);
          CAPTURE(s[0]);
          CAPTURE(s[1]);
          CAPTURE(s[2]);
          CAPTURE(t);
          CAPTURE(beta);
          bool close = true;
          for (int64_t i = 0; i < p.M; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              const size_t q = static_cast<size_t>(i * ldc + j);
              if (j >= p.N) close = close && got[q] == c0[q];  // padding untouched
              else close = close && std::fabs(got[q] - want[q]) <= 1e-5f * (1.f + static_cast<float>(p.K));
            }
          CHECK(close);
        }
      }
  }
}

TEST_CASE("beta == 0 ignores NaN in C; K == 0 scales C by beta") {
  IsaGuard guard;
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    const Problem p = make_problem(false, true, 5, 37, 11, 3);
    std::vector<float> c(5 * 37, std::numeric_limits<float>::quiet_NaN());
    cpu::sgemm(false, true, 5, 37, 11, 1.f, p.A.data(), p.lda, p.B.data(), p.ldb, 0.f, c.data(), 37);
    bool finite = true;
    for (float x : c) finite = finite && std::isfinite(x);
    CHECK(finite);
    std::vector<float> d(5 * 37, 2.f);
    cpu::sgemm(false, false, 5, 37, 0, 1.f, nullptr, 1, nullptr, 37, 0.5f, d.data(), 37);
    bool scaled = true;
    for (float x : d) scaled = scaled && x == 1.f;
    CHECK(scaled);
  }
}

TEST_CASE("1, 2, 3 and 4 threads give identical bits") {
  IsaGuard guard;
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    for (int t = 0; t < 4; ++t) {
      const Problem p = make_problem(t & 1, t & 2, 131, 301, 785, 9);
      std::vector<float> one(131 * 301), two(131 * 301);
      set_num_threads(1);
      cpu::sgemm(p.ta, p.tb, p.M, p.N, p.K, 1.f, p.A.data(), p.lda, p.B.data(), p.ldb, 0.f, one.data(), p.N);
      for (int threads : {2, 3, 4}) {
        set_num_threads(threads);
        cpu::sgemm(p.ta, p.tb, p.M, p.N, p.K, 1.f, p.A.data(), p.lda, p.B.data(), p.ldb, 0.f, two.data(), p.N);
        CAPTURE(level);
        CAPTURE(t);
        CAPTURE(threads);
        CHECK(one == two);
      }
    }
  }
}

TEST_CASE("fused epilogue equals apply_epilogue after the product") {
  IsaGuard guard;
  const int64_t M = 37, N = 301, K = 70;
  const Problem p = make_problem(false, true, M, N, K, 11);
  std::vector<float> bias(N);
  for (int64_t j = 0; j < N; ++j) bias[j] = 0.01f * static_cast<float>(j % 17) - 0.08f;
  const cpu::Activation acts[] = {cpu::Activation::identity, cpu::Activation::relu,    cpu::Activation::leaky_relu,
                                  cpu::Activation::tanh,     cpu::Activation::sigmoid, cpu::Activation::gelu};
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level)
    for (int threads : {1, 2})
      for (cpu::Activation act : acts) {
        set_isa(static_cast<Isa>(level));
        set_num_threads(threads);
        const size_t n_words = static_cast<size_t>((M * N + 63) / 64);
        std::vector<uint64_t> want_mask(n_words, 0x5555555555555555ULL), got_mask = want_mask;
        std::vector<float> want_pre(M * N), got_pre(M * N), want(M * N), got(M * N);
        cpu::GemmEpilogue ep;
        ep.bias = bias.data();
        ep.activation = act;
        ep.leaky_slope = 0.1f;
        ep.dropout = true;
        ep.threshold = keep_threshold(0.3);
        ep.scale = 1.f / 0.7f;
        ep.seed = 1234;
        ep.stream = 5;
        cpu::GemmEpilogue ep_want = ep;
        ep_want.pre_activation = want_pre.data();
        ep_want.mask_bits = want_mask.data();
        ep.pre_activation = got_pre.data();
        ep.mask_bits = got_mask.data();
        cpu::sgemm(false, true, M, N, K, 1.f, p.A.data(), p.lda, p.B.data(), p.ldb, 0.f, want.data(), N);
        cpu::apply_epilogue(ep_want, 0, M, N, want.data(), N);
        cpu::sgemm(false, true, M, N, K, 1.f, p.A.data(), p.lda, p.B.data(), p.ldb, 0.f, got.data(), N, &ep);
        CAPTURE(level);
        CAPTURE(threads);
        CAPTURE(static_cast<int>(act));
        CHECK(got_mask == want_mask);
        CHECK(got_pre == want_pre);
        float worst = 0.f;
        for (size_t i = 0; i < want.size(); ++i)
          worst = std::max(worst, std::fabs(got[i] - want[i]) / (1.f + std::fabs(want[i])));
        CHECK(worst <= 1e-6f);
      }
}

// A data-parallel rank's rows draw the words of their global positions (docs/distributed.md).
TEST_CASE("epilogue index_offset: element (i, j) draws word index_offset + i*N + j, any ISA and alignment") {
  IsaGuard guard;
  const int64_t M = 13, N = 37, K = 20;
  const Problem p = make_problem(false, true, M, N, K, 5);
  const uint32_t threshold = keep_threshold(0.5);
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level)
    for (int threads : {1, 2})
      for (uint64_t off : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{4}, uint64_t{8 * 37},
                           uint64_t{17 * 37}, (uint64_t{1} << 34) - 1}) {
        set_isa(static_cast<Isa>(level));
        set_num_threads(threads);
        std::vector<uint64_t> mask(static_cast<size_t>((M * N + 63) / 64), 0);
        std::vector<float> c(M * N);
        cpu::GemmEpilogue ep;
        ep.dropout = true;
        ep.threshold = threshold;
        ep.scale = 2.f;
        ep.seed = 99;
        ep.stream = 3;
        ep.index_offset = off;
        ep.mask_bits = mask.data();
        cpu::sgemm(false, true, M, N, K, 1.f, p.A.data(), p.lda, p.B.data(), p.ldb, 0.f, c.data(), N, &ep);
        int64_t wrong = 0;
        for (int64_t e = 0; e < M * N; ++e) {
          const bool keep = philox::stream_word(99, 3, off + static_cast<uint64_t>(e)) < threshold;
          wrong += static_cast<int64_t>((mask[static_cast<size_t>(e >> 6)] >> (e & 63)) & 1) != keep;
          wrong += !keep && c[e] != 0.f;
        }
        CAPTURE(level);
        CAPTURE(threads);
        CAPTURE(off);
        CHECK(wrong == 0);
      }
}

TEST_CASE("sgemm computes the canonical order on every ISA level, A packed or read in place") {
  // docs/design.md, "Canonical reduction orders": per element, K in blocks of k_block(K), one fma
  // chain from +0 per block, c = alpha·acc (+ beta·c fused) for the first block and c + alpha·acc
  // after. Written here with std::fma; sgemm must give these bits exactly. Shapes with at most one
  // register tile of columns per thread read A in place (micro_rows_a), the others pack it.
  IsaGuard guard;
  const int before = get_num_threads();
  // {64, 20, 1500} is large enough for sgemm to run two threads
  const int64_t shapes[][3] = {{32, 10, 784}, {7, 1, 300}, {13, 17, 29}, {25, 32, 513},
                               {40, 33, 257}, {5, 100, 8},   {64, 20, 1500}};
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (const auto& s : shapes)
        for (int t = 0; t < 4; ++t)
          for (float beta : {0.f, 1.f, -0.5f}) {
            const Problem p = make_problem(t & 1, t & 2, s[0], s[1], s[2], static_cast<uint32_t>(s[0] + s[2]));
            const int64_t ldc = p.N + 1, kb = cpu::gemm_detail::k_block(p.K);
            std::vector<float> want(static_cast<size_t>(p.M * ldc)), got;
            for (size_t i = 0; i < want.size(); ++i) want[i] = std::cos(static_cast<float>(i));
            got = want;
            const float alpha = 0.75f;
            for (int64_t i = 0; i < p.M; ++i)
              for (int64_t j = 0; j < p.N; ++j) {
                float c = want[static_cast<size_t>(i * ldc + j)];
                for (int64_t pc = 0; pc < p.K; pc += kb) {
                  float acc = 0.f;
                  for (int64_t k = pc; k < std::min(p.K, pc + kb); ++k) {
                    const float a = p.ta ? p.A[static_cast<size_t>(k * p.lda + i)] : p.A[static_cast<size_t>(i * p.lda + k)];
                    const float b = p.tb ? p.B[static_cast<size_t>(j * p.ldb + k)] : p.B[static_cast<size_t>(k * p.ldb + j)];
                    acc = std::fma(a, b, acc);
                  }
                  const float b_eff = pc == 0 ? beta : 1.f;
                  c = b_eff == 0.f ? alpha * acc : std::fma(b_eff, c, alpha * acc);
                }
                want[static_cast<size_t>(i * ldc + j)] = c;
              }
            cpu::sgemm(p.ta, p.tb, p.M, p.N, p.K, alpha, p.A.data(), p.lda, p.B.data(), p.ldb, beta, got.data(), ldc);
            CAPTURE(level);
            CAPTURE(threads);
            CAPTURE(s[0]);
            CAPTURE(s[1]);
            CAPTURE(s[2]);
            CAPTURE(t);
            CAPTURE(beta);
            CHECK(got == want);
          }
    }
  }
  set_num_threads(before);
}

TEST_CASE("micro_strided (B in place) and micro_rows_a (A in place) give sgemm's bits") {
  // The Winograd products call the micro-kernel on packed A panels and a B read in place, K in
  // blocks of k_block(K): each element must be sgemm's, bit for bit, on every ISA level.
  IsaGuard guard;
  set_num_threads(1);
  for (int level = 0; level <= static_cast<int>(max_supported_isa()); ++level) {
    set_isa(static_cast<Isa>(level));
    const cpu::gemm_detail::GemmKernelSet& ks = cpu::gemm_detail::kernels_active();
    for (const auto& s : std::vector<std::array<int64_t, 3>>{{13, 50, 32}, {64, 112, 64}, {25, 7, 300}, {1, 33, 1}}) {
      const int64_t M = s[0], N = s[1], K = s[2], ldb = N + 16;  // B's rows: 16 floats of slack
      const Problem p = make_problem(false, false, M, N, K, static_cast<uint32_t>(M + N + K));
      std::vector<float> b(static_cast<size_t>(K * ldb));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < ldb; ++j) b[k * ldb + j] = j < N ? p.B[k * p.ldb + j] : std::nanf("");
      std::vector<float> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N));
      cpu::sgemm(false, false, M, N, K, 1.f, p.A.data(), p.lda, b.data(), ldb, 0.f, want.data(), N);
      const int64_t kb = cpu::gemm_detail::k_block(K), rows = (M + ks.mr - 1) / ks.mr * ks.mr;
      std::vector<float> packed(static_cast<size_t>(rows * K));
      for (int64_t pc = 0; pc < K; pc += kb)
        ks.pack_a(false, p.A.data(), p.lda, 0, M, pc, std::min(kb, K - pc), packed.data() + pc * rows);
      for (int64_t jr = 0; jr < N; jr += ks.nr)
        for (int64_t pc = 0; pc < K; pc += kb) {
          const int64_t kc = std::min(kb, K - pc);
          const float alpha_beta[2] = {1.f, pc == 0 ? 0.f : 1.f};
          for (int64_t ir = 0; ir < M; ir += ks.mr)
            ks.micro_strided(kc, packed.data() + pc * rows + ir * kc, b.data() + pc * ldb + jr, ldb,
                             got.data() + ir * N + jr, N, alpha_beta, static_cast<int>(std::min<int64_t>(ks.mr, M - ir)),
                             static_cast<int>(std::min<int64_t>(ks.nr, N - jr)));
        }
      for (size_t i = 0; i < want.size(); ++i) REQUIRE(got[i] == want[i]);
      // micro_rows_a: A read in place (row i at A + i·lda, k contiguous), B packed by pack_b.
      // (the packers store whole aligned vectors: a 64-byte aligned panel buffer, as sgemm's)
      std::vector<float> got_a(static_cast<size_t>(M * N)), panel_store(static_cast<size_t>((N + ks.nr) * kb + 16));
      float* packed_b = panel_store.data() + (16 - reinterpret_cast<uintptr_t>(panel_store.data()) / 4 % 16) % 16;
      for (int64_t pc = 0; pc < K; pc += kb) {
        const int64_t kc = std::min(kb, K - pc);
        ks.pack_b(false, b.data(), ldb, pc, kc, 0, N, packed_b);
        const float alpha_beta[2] = {1.f, pc == 0 ? 0.f : 1.f};
        for (int64_t jr = 0; jr < N; jr += ks.nr)
          for (int64_t ir = 0; ir < M; ir += ks.mr)
            ks.micro_rows_a(kc, p.A.data() + ir * p.lda + pc, p.lda, packed_b + jr * kc,
                            got_a.data() + ir * N + jr, N, alpha_beta, static_cast<int>(std::min<int64_t>(ks.mr, M - ir)),
                            static_cast<int>(std::min<int64_t>(ks.nr, N - jr)));
      }
      for (size_t i = 0; i < want.size(); ++i) REQUIRE(got_a[i] == want[i]);
    }
  }
}

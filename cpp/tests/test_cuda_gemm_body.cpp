// The CUDA dense GEMM without a GPU: the launch plan of kernels/cuda/gemm_body.h (the tile program
// of kernels/cuda/tile_gemm_body.h with the GEMM's operands and writeback, the beta·C pass, the
// epilogue word pass of kernels/cuda/activation_body.h) runs on the host over the grid the .cu
// launch would use and over a 2-block grid (blocks stride over tiles), threads in order and
// reversed, with the plan's tile shape and the other one (32 × 32 and 64 × 64), in place and split
// over the K blocks (with the workspace: chains to the workspace, then the pass that adds them in
// order, per element or per mask word), and must give
// cpu::sgemm's bytes on every ISA path this CPU has: C, pre-activations and dropout mask bits
// (bits outside the output included). Cases: all four transpose cases,
// 1 × 1 × 1, odd shapes, M and N past one 64-wide tile, K of one, two, three and four K blocks
// (gemm_k_block: 300 → 2 × 152, 520 → 3 × 176, 784 → 4 × 200), padded leading dimensions,
// alpha / beta (beta = 0 over a NaN-filled C, 1, 0.5), K = 0 and alpha = 0, every epilogue
// activation with and without bias, pre-activation, dropout with and without mask bits, an index
// offset. This proves the bodies and the launch layout, not the GPU: gemm.cu has never run on a device.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check_close.h"
#include "cuda_sim.h"
#include "gemm_sim.h"
#include "dropnet/core/cpu_features.h"
#include "dropnet/core/gemm_blocking.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cuda/activation_body.h"
#include "dropnet/kernels/cuda/gemm_body.h"
#include "isa_guard.h"

using namespace dropnet;
using testing::normal_floats;
using testing::same_bytes;

namespace {

struct Shape {
  int64_t M, N, K;
};

enum class Ep {
  none,
  bias_relu,
  leaky,
  tanh_pre,
  sigmoid_drop,
  gelu_drop_mask,
  identity_mask_offset,
  relu_drop_offset
};

struct Outputs {
  std::vector<float> C, pre;
  std::vector<uint64_t> mask;
};

struct Problem {
  bool ta, tb;
  Shape s;
  float alpha, beta;
  Ep ep;
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C0, bias;

  Problem(bool ta_, bool tb_, Shape s_, float alpha_, float beta_, Ep ep_, int64_t pad)
      : ta(ta_), tb(tb_), s(s_), alpha(alpha_), beta(beta_), ep(ep_) {
    lda = (ta ? s.M : s.K) + pad;
    ldb = (tb ? s.K : s.N) + pad;
    ldc = s.N + pad;
    const int64_t a_rows = ta ? s.K : s.M, b_rows = tb ? s.N : s.K;
    A = normal_floats(static_cast<size_t>(a_rows * lda + 1), 1);
    B = normal_floats(static_cast<size_t>(b_rows * ldb + 1), 2);
    C0 = normal_floats(static_cast<size_t>(s.M * ldc + 1), 3);
    // beta == 0 must not read C: NaN there would show.
    if (beta == 0.f)
      for (float& c : C0) c = std::numeric_limits<float>::quiet_NaN();
    bias = normal_floats(static_cast<size_t>(s.N), 4);
  }

  // The epilogue over this problem's output buffers (pre-activation, mask) in `out`.
  bool epilogue(GemmEpilogue* e, Outputs* out) const {
    if (ep == Ep::none) return false;
    const bool with_bias = ep != Ep::tanh_pre && ep != Ep::identity_mask_offset;
    e->bias = with_bias ? bias.data() : nullptr;
    switch (ep) {
      case Ep::bias_relu:
      case Ep::relu_drop_offset: e->activation = Activation::relu; break;
      case Ep::leaky: e->activation = Activation::leaky_relu; e->leaky_slope = 0.1f; break;
      case Ep::tanh_pre: e->activation = Activation::tanh; break;
      case Ep::sigmoid_drop: e->activation = Activation::sigmoid; break;
      case Ep::gelu_drop_mask: e->activation = Activation::gelu; break;
      default: e->activation = Activation::identity;
    }
    if (ep == Ep::tanh_pre || ep == Ep::gelu_drop_mask) e->pre_activation = out->pre.data();
    if (ep == Ep::sigmoid_drop || ep == Ep::gelu_drop_mask || ep == Ep::identity_mask_offset ||
        ep == Ep::relu_drop_offset) {
      const double p = ep == Ep::sigmoid_drop ? 0.3 : 0.5;
      e->dropout = true;
      e->threshold = keep_threshold(p);
      e->scale = keep_scale(p);
      e->seed = 0xfeedfacecafebeefull;
      e->stream = 7;
      if (ep == Ep::gelu_drop_mask || ep == Ep::identity_mask_offset) e->mask_bits = out->mask.data();
      // Not a multiple of 4: the keep words straddle Philox blocks differently.
      if (ep == Ep::identity_mask_offset || ep == Ep::relu_drop_offset) e->index_offset = 1000003;
    }
    return true;
  }

  Outputs fresh() const {
    Outputs o;
    o.C = C0;
    o.pre.assign(static_cast<size_t>(s.M * s.N), -7.f);
    // Bits outside the output must stay as they were: start from a pattern, one word past the end.
    o.mask.assign(static_cast<size_t>((s.M * s.N + 63) / 64 + 1), 0xa5a5a5a5c3c3c3c3ull);
    return o;
  }

  Outputs cpu() const {
    Outputs o = fresh();
    GemmEpilogue e;
    const bool has = epilogue(&e, &o);
    cpu::sgemm(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, o.C.data(), ldc, has ? &e : nullptr);
    return o;
  }

  // What cuda::sgemm (kernels/cuda/gemm.cu) launches, each launch simulated on the host; the
  // tiles of the plan's shape, or of the other one (`other_tiles`: the bits must not change); with
  // the workspace that splits a small product over its K blocks, or without.
  Outputs gpu_sim(bool tiny, bool reversed, bool other_tiles, bool with_workspace) const {
    Outputs o = fresh();
    GemmEpilogue e;
    const bool has = epilogue(&e, &o);
    std::vector<float> workspace(static_cast<size_t>(cuda::gemm_workspace_floats(s.M, s.N, s.K)),
                                 std::numeric_limits<float>::quiet_NaN());
    const cuda::GemmPlan p =
        cuda::gemm_plan(s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, o.C.data(), ldc, has ? &e : nullptr,
                        with_workspace ? workspace.data() : nullptr, static_cast<int64_t>(workspace.size()));
    testing::simulate_sgemm(p, ta, tb, s.M, s.N, s.K, beta, o.C.data(), ldc, has ? &e : nullptr,
                            testing::GemmSimVariant{tiny, reversed, other_tiles});
    return o;
  }

  std::string describe() const {
    return std::string("ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0") + " M=" + std::to_string(s.M) +
           " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) + " alpha=" + std::to_string(alpha) +
           " beta=" + std::to_string(beta) + " epilogue=" + std::to_string(static_cast<int>(ep)) +
           " ldc=" + std::to_string(ldc);
  }
};

// cpu::sgemm's bytes on every ISA path, from the launch grid and the 2-block grid, in order and reversed.
void check_problem(const Problem& pr) {
  testing::IsaGuard guard;
  std::vector<Outputs> expected;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (isa > max_supported_isa()) continue;
    set_isa(isa);
    expected.push_back(pr.cpu());
  }
  // The CPU's paths agree among themselves (the canonical order), so one reference serves.
  for (const Outputs& o : expected) {
    REQUIRE(same_bytes(o.C, expected[0].C));
    REQUIRE(same_bytes(o.mask, expected[0].mask));
  }
  const Outputs& want = expected[0];
  for (bool tiny : {false, true})
    for (bool reversed : {false, true}) {
      for (int variant = 0; variant < 4; ++variant) {
        const bool other_tiles = variant & 1, with_workspace = variant & 2;
        const Outputs got = pr.gpu_sim(tiny, reversed, other_tiles, with_workspace);
        INFO(pr.describe(), " tiny grid=", tiny, " reversed=", reversed, " other tile shape=", other_tiles,
             " workspace (split over K blocks)=", with_workspace);
        CHECK(same_bytes(got.C, want.C));
        CHECK(same_bytes(got.pre, want.pre));
        CHECK(same_bytes(got.mask, want.mask));
      }
    }
}

}  // namespace

TEST_CASE("the K blocks of the CUDA GEMM are the CPU's; its tile shape") {
  // The blocks both devices cut K into (core/gemm_blocking.h): near-equal, multiples of 8, <= 256.
  CHECK(gemm_k_block(1) == 8);
  CHECK(gemm_k_block(256) == 256);
  CHECK(gemm_k_block(257) == 136);
  CHECK(gemm_k_block(300) == 152);
  CHECK(gemm_k_block(520) == 176);
  CHECK(gemm_k_block(784) == 200);
  // The MLP's products take the small tiles, 1024 × 1024 the large ones (the bits are the same).
  CHECK(cuda::gemm_small_tiles(128, 300));
  CHECK(cuda::gemm_small_tiles(300, 784));
  CHECK_FALSE(cuda::gemm_small_tiles(1024, 1024));
  // Split over K blocks: small products of two or more blocks, their chains blocks × M × N floats.
  CHECK(cuda::gemm_workspace_floats(128, 300, 784) == 4 * 128 * 300);
  CHECK(cuda::gemm_workspace_floats(128, 784, 300) == 2 * 128 * 784);
  CHECK(cuda::gemm_workspace_floats(300, 784, 128) == 0);    // one K block
  CHECK(cuda::gemm_workspace_floats(1024, 1024, 1024) == 0);  // large: in place
  CHECK(cuda::gemm_workspace_floats(16, 16, 4096) == 16 * 16 * 16);
  CHECK(cuda::gemm_workspace_floats(16, 16, 4097) == 0);  // 17 K blocks: in place
}

TEST_CASE("CUDA GEMM body: cpu::sgemm's bytes for every transpose case, shape and K blocking") {
  const Shape shapes[] = {{1, 1, 1},     {3, 5, 7},      {17, 33, 65}, {64, 64, 64},
                          {65, 70, 300}, {70, 129, 520}, {9, 66, 784}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const Shape& s : shapes) {
        check_problem(Problem(ta, tb, s, 1.f, 0.f, Ep::none, 0));
        check_problem(Problem(ta, tb, s, 0.75f, 0.5f, Ep::none, 3));
      }
}

TEST_CASE("CUDA GEMM body: beta = 1 accumulation, alpha = 0 and K = 0") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_problem(Problem(ta, tb, {33, 17, 300}, 1.f, 1.f, Ep::none, 1));  // a weight gradient's += over K blocks
      check_problem(Problem(ta, tb, {5, 9, 0}, 1.f, 0.5f, Ep::bias_relu, 0));
      check_problem(Problem(ta, tb, {5, 9, 0}, 1.f, 0.f, Ep::none, 0));
      check_problem(Problem(ta, tb, {5, 9, 0}, 1.f, 1.f, Ep::tanh_pre, 2));
      check_problem(Problem(ta, tb, {6, 7, 11}, 0.f, 0.5f, Ep::none, 0));
    }
}

TEST_CASE("CUDA GEMM body: every epilogue, fused into the writeback or as the word pass") {
  // The dense layers' shapes (LeNet-300-100 at a batch of 13 rows: forward, input and weight
  // gradients) and odd ones; with mask bits the epilogue runs as the word pass, else fused.
  const Ep eps[] = {Ep::bias_relu,      Ep::leaky,          Ep::tanh_pre, Ep::sigmoid_drop, Ep::gelu_drop_mask,
                    Ep::identity_mask_offset, Ep::relu_drop_offset};
  for (Ep ep : eps) {
    check_problem(Problem(false, true, {13, 300, 784}, 1.f, 0.f, ep, 0));
    check_problem(Problem(false, false, {13, 100, 300}, 1.f, 0.f, ep, 0));
    check_problem(Problem(true, false, {37, 11, 13}, 1.f, 1.f, ep, 0));
    check_problem(Problem(true, true, {3, 67, 5}, 0.5f, 0.25f, ep, 2));
  }
}

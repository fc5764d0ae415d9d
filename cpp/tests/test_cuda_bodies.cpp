// The CUDA dropout and optimizer kernels without a GPU: their per-thread bodies (kernels/cuda/dropout_body.h)
// run on the host over the simulated grid of the real launch, every (block, thread) that
// grid_for() gives the .cu file, and their outputs and mask bits are compared with the CPU
// kernels (the dispatched entries of kernels/cpu/dropout.h) and with the Philox words element by
// element. A second, tiny grid (2 blocks of 3 threads) makes every thread stride over many
// items, and running the threads in reverse order must give the same bytes (each mask word and
// each output has one owner). This proves the bodies and the launch geometry, not the GPU: the
// .cu launches have never run on a device (docs/design.md, "Device kernels").
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "dropnet/core/denormals.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/kernels/cpu/optimizer.h"
#include "dropnet/kernels/cpu/weight_penalty.h"
#include "dropnet/kernels/cuda/dropout_body.h"
#include "dropnet/kernels/cuda/optimizer_body.h"

using namespace dropnet;

namespace {

// Every (block, thread) of grid g, in launch order or reversed, under flushed denormals (the
// .cu files are compiled with --ftz=true).
template <class Body>
void simulate(const cuda::Grid& g, bool reversed, Body&& body) {
  DenormalsFlushed ftz;
  for (uint32_t i = 0; i < g.blocks; ++i)
    for (uint32_t j = 0; j < g.threads; ++j) {
      const uint32_t b = reversed ? g.blocks - 1 - i : i, t = reversed ? g.threads - 1 - j : j;
      body(b, t);
    }
}

std::vector<cuda::Grid> grids_for(int64_t items) { return {cuda::grid_for(items), cuda::Grid{2, 3}}; }

// Inputs with signs, zeros, a denormal, infinities and a NaN among ordinary values.
std::vector<float> inputs(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37) % 101) * 0.173f - 8.5f;
  const float specials[] = {0.f, -0.f, 1e-40f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  for (int64_t k = 0; k < 6 && 7 * k < n; ++k) x[7 * k] = specials[k];
  return x;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool bit(const std::vector<uint64_t>& bits, int64_t e) { return (bits[e >> 6] >> (e & 63)) & 1; }

const int64_t kSizes[] = {1, 2, 3, 31, 32, 33, 63, 64, 65, 127, 129, 1000, 4099, 64 * 300 + 17, 70001};
const double kProbs[] = {0.0, 1e-9, 0.5, 0.9, 1.0 - 1e-7};
const uint64_t kSeeds[] = {0, 0x0123456789abcdefULL, ~uint64_t{0}};
const uint64_t kStreams[] = {0, 7, (uint64_t{1} << 62) + 12345};
const uint64_t kOffsets[] = {0, 1, 3, 64, 1003, (uint64_t{1} << 34) - 2};

}  // namespace

TEST_CASE("the launch geometry gives every item exactly one owning thread") {
  const int64_t items_list[] = {0, 1, 255, 256, 257, 5000, int64_t{256} * 8192 + 77};
  for (int64_t items : items_list) {
    cuda::Grid g = cuda::grid_for(items);
    CHECK(g.threads == cuda::kThreadsPerBlock);
    CHECK(g.blocks >= 1);
    CHECK(g.blocks <= cuda::kMaxBlocks);
    if (items > 0 && items <= int64_t{256} * cuda::kMaxBlocks) CHECK(int64_t{g.blocks} * 256 - items < 256);
    for (const cuda::Grid& grid : {g, cuda::Grid{2, 3}}) {
      std::vector<int> owners(static_cast<size_t>(items), 0);
      for (uint32_t b = 0; b < grid.blocks; ++b)
        for (uint32_t t = 0; t < grid.threads; ++t)
          for (int64_t i = cuda::grid_first_item(grid, b, t); i < items; i += cuda::grid_stride(grid)) ++owners[i];
      bool once = true;
      for (int o : owners) once = once && o == 1;
      CHECK(once);
    }
  }
}

TEST_CASE("simulated CUDA dropout forward = CPU dropout_forward: values and mask bits") {
  for (int64_t n : kSizes)
    for (double p : kProbs)
      for (uint64_t seed : kSeeds)
        for (uint64_t stream : kStreams)
          for (uint64_t offset : kOffsets) {
            if (n > 5000 && (seed != kSeeds[1] || offset > 64)) continue;  // keep the big sizes few
            const uint32_t threshold = keep_threshold(p);
            const float scale = static_cast<float>(1.0 / (1.0 - p));
            const std::vector<float> x = inputs(n);
            const int64_t words = (n + 63) / 64;
            std::vector<float> want(x.size());
            std::vector<uint64_t> want_bits(words, 0xdeadbeefULL);
            cpu::dropout_forward(x.data(), want.data(), n, threshold, scale, seed, stream, want_bits.data(), offset);
            for (const cuda::Grid& g : grids_for(words))
              for (bool reversed : {false, true}) {
                std::vector<float> y(x.size(), -3.f);
                std::vector<uint64_t> bits(words, 0x5555ULL);
                const DropoutPass pass = cuda::forward_pass(x.data(), y.data(), threshold, scale, seed, stream,
                                                            bits.data(), offset);
                simulate(g, reversed, [&](uint32_t b, uint32_t t) { cuda::dropout_pass_thread(pass, n, g, b, t); });
                CHECK(same_bytes(y, want));
                CHECK(bits == want_bits);
              }
            // Independently of both: the Philox words of the contract.
            bool contract = true;
            for (int64_t e = 0; e < n; ++e)
              contract = contract && bit(want_bits, e) == (philox::stream_word(seed, stream, offset + e) < threshold);
            CHECK(contract);
            CHECK((want_bits.back() >> 1 >> ((n - 1) & 63)) == 0);  // bits past n are zero
          }
}

TEST_CASE("simulated CUDA dropout backward, from bits and regenerated, = CPU") {
  for (int64_t n : kSizes)
    for (double p : {0.5, 0.9, 1e-9}) {
      const uint32_t threshold = keep_threshold(p);
      const float scale = static_cast<float>(1.0 / (1.0 - p));
      const std::vector<float> dy = inputs(n);
      const int64_t words = (n + 63) / 64;
      std::vector<uint64_t> bits(words);
      // Bits with garbage past n, as a caller's buffer may have: the pass must mask them off.
      for (int64_t w = 0; w < words; ++w) bits[w] = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(w + 1);
      std::vector<float> want(dy.size()), want_regen(dy.size());
      cpu::dropout_backward_bits(dy.data(), bits.data(), want.data(), n, scale);
      cpu::dropout_backward_regen(dy.data(), want_regen.data(), n, threshold, scale, 42, 9);
      for (const cuda::Grid& g : grids_for(words)) {
        std::vector<float> dx(dy.size(), 1.f), dx_regen(dy.size(), 1.f);
        const DropoutPass from_bits = cuda::backward_bits_pass(dy.data(), bits.data(), dx.data(), scale);
        const DropoutPass regen = cuda::forward_pass(dy.data(), dx_regen.data(), threshold, scale, 42, 9, nullptr, 0);
        simulate(g, false, [&](uint32_t b, uint32_t t) {
          cuda::dropout_pass_thread(from_bits, n, g, b, t);
          cuda::dropout_pass_thread(regen, n, g, b, t);
        });
        CHECK(same_bytes(dx, want));
        CHECK(same_bytes(dx_regen, want_regen));
      }
      // In place (dy and dx the same buffer), as the Network's backward runs it.
      std::vector<float> inplace = dy;
      const cuda::Grid g = cuda::grid_for(words);
      const DropoutPass pass = cuda::backward_bits_pass(inplace.data(), bits.data(), inplace.data(), scale);
      simulate(g, true, [&](uint32_t b, uint32_t t) { cuda::dropout_pass_thread(pass, n, g, b, t); });
      CHECK(same_bytes(inplace, want));
    }
}

TEST_CASE("simulated CUDA alpha dropout = CPU alpha_dropout_forward (fma of the contract)") {
  for (int64_t n : kSizes)
    for (double p : {1e-9, 0.1, 0.5, 0.9}) {
      const cpu::AlphaDropoutCoeffs c = cpu::alpha_dropout_coeffs(p);
      const uint32_t threshold = keep_threshold(p);
      const std::vector<float> x = inputs(n);
      const int64_t words = (n + 63) / 64;
      std::vector<float> want(x.size());
      std::vector<uint64_t> want_bits(words);
      cpu::alpha_dropout_forward(x.data(), want.data(), n, threshold, c, 5, 6, want_bits.data());
      for (const cuda::Grid& g : grids_for(words)) {
        std::vector<float> y(x.size());
        std::vector<uint64_t> bits(words, ~uint64_t{0});
        const DropoutPass pass =
            cuda::alpha_pass(x.data(), y.data(), threshold, c.a, c.b, c.dropped_value, 5, 6, bits.data(), 0);
        simulate(g, false, [&](uint32_t b, uint32_t t) { cuda::dropout_pass_thread(pass, n, g, b, t); });
        CHECK(same_bytes(y, want));
        CHECK(bits == want_bits);
      }
    }
}

TEST_CASE("simulated CUDA spatial dropout = CPU spatial_dropout_forward / backward") {
  const int64_t channel_counts[] = {1, 2, 63, 64, 65, 200};
  const int64_t channel_sizes[] = {1, 3, 49, 256};
  for (int64_t n_channels : channel_counts)
    for (int64_t channel_size : channel_sizes)
      for (uint64_t offset : {uint64_t{0}, uint64_t{5}}) {
        const double p = 0.4;
        const uint32_t threshold = keep_threshold(p);
        const float scale = static_cast<float>(1.0 / (1.0 - p));
        const int64_t n = n_channels * channel_size, words = (n_channels + 63) / 64;
        const std::vector<float> x = inputs(n);
        std::vector<float> want(x.size()), want_back(x.size());
        std::vector<uint64_t> want_bits(words);
        cpu::spatial_dropout_forward(x.data(), want.data(), n_channels, channel_size, threshold, scale, 3, 4,
                                     want_bits.data(), offset);
        cpu::spatial_dropout_backward(x.data(), want_back.data(), n_channels, channel_size, want_bits.data(), 0, scale,
                                      0, 0);
        for (const cuda::Grid& g : grids_for(words)) {
          // Launch 1: the channel keep bits; launch 2: the apply step (the .cu's two kernels).
          std::vector<uint64_t> bits(words, 1);
          const DropoutPass mask = cuda::forward_pass(nullptr, nullptr, threshold, 1.f, 3, 4, bits.data(), offset);
          simulate(g, false, [&](uint32_t b, uint32_t t) { cuda::dropout_pass_thread(mask, n_channels, g, b, t); });
          CHECK(bits == want_bits);
          for (const cuda::Grid& ga : grids_for(n)) {
            std::vector<float> y(x.size(), 9.f), back(x.size(), 9.f);
            simulate(ga, true, [&](uint32_t b, uint32_t t) {
              cuda::spatial_apply_thread(x.data(), y.data(), n_channels, channel_size, bits.data(), scale, ga, b, t);
              cuda::spatial_apply_thread(x.data(), back.data(), n_channels, channel_size, bits.data(), scale, ga, b,
                                         t);
            });
            CHECK(same_bytes(y, want));
            CHECK(same_bytes(back, want_back));
          }
        }
      }
}

TEST_CASE("simulated CUDA MC dropout = CPU mc_dropout_forward") {
  for (int64_t n : {int64_t{1}, int64_t{65}, int64_t{1000}, int64_t{40000}})
    for (int64_t samples : {int64_t{1}, int64_t{3}, int64_t{7}}) {
      const uint32_t threshold = keep_threshold(0.3);
      const float scale = static_cast<float>(1.0 / 0.7);
      const std::vector<float> x = inputs(n);
      std::vector<float> want(static_cast<size_t>(n * samples));
      const uint64_t stream0 = ~uint64_t{0} - 10;
      cpu::mc_dropout_forward(x.data(), want.data(), n, samples, threshold, scale, 77, stream0);
      for (const cuda::Grid& g : grids_for(samples * ((n + 63) / 64))) {
        std::vector<float> y(want.size(), 2.f);
        const DropoutPass pass = cuda::forward_pass(x.data(), y.data(), threshold, scale, 77, stream0, nullptr, 0);
        simulate(g, true, [&](uint32_t b, uint32_t t) { cuda::mc_dropout_thread(pass, n, samples, g, b, t); });
        CHECK(same_bytes(y, want));
      }
    }
}

TEST_CASE("simulated CUDA DropConnect of a CSR weight = dense DropConnect at the stored entries") {
  const int64_t rows = 37, cols = 70;
  std::vector<float> dense(static_cast<size_t>(rows * cols), 0.f);
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  std::vector<float> values;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      if ((r * 31 + c * 17) % 5 < 2) {  // 40 % density, some rows denser than others
        const float v = static_cast<float>(r - c) * 0.25f + 0.125f;
        dense[r * cols + c] = v;
        indices.push_back(static_cast<int32_t>(c));
        values.push_back(v);
      }
    indptr.push_back(static_cast<int64_t>(values.size()));
  }
  const double p = 0.5;
  const uint32_t threshold = keep_threshold(p);
  const float scale = 2.f;
  std::vector<float> want(dense.size());
  std::vector<uint64_t> want_bits((dense.size() + 63) / 64);
  cpu::dropout_forward(dense.data(), want.data(), rows * cols, threshold, scale, 8, 1, want_bits.data());
  for (const cuda::Grid& g : grids_for(rows)) {
    std::vector<float> out(values.size(), -1.f);
    std::vector<uint8_t> keep(values.size(), 7);
    simulate(g, false, [&](uint32_t b, uint32_t t) {
      cuda::drop_connect_csr_thread(indptr.data(), indices.data(), values.data(), out.data(), keep.data(), rows, cols,
                                    threshold, scale, 8, 1, g, b, t);
    });
    bool same = true;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = indptr[r]; j < indptr[r + 1]; ++j) {
        const int64_t e = r * cols + indices[j];
        same = same && out[j] == want[e] && keep[j] == (bit(want_bits, e) ? 1 : 0);
      }
    CHECK(same);
  }
}

// ------------------------------------------------------------------------ multi-tensor optimizers

namespace {

// One parameter's buffers: weight, gradient, two slots and an optional 0/1 mask, filled with
// values that reach every branch (zeros, negative and positive weights, small v).
struct Param {
  std::vector<float> w, g, s0, s1, mask;
  bool masked;
  Param(int64_t n, bool masked_, int salt) : w(n), g(n), s0(n), s1(n), mask(n), masked(masked_) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = i * 7 + salt * 13;
      w[i] = (k % 5 == 0) ? 0.f : static_cast<float>(k % 23) * 0.031f - 0.35f;
      g[i] = static_cast<float>(k % 19) * 0.0173f - 0.16f;
      s0[i] = static_cast<float>(k % 11) * 0.01f - 0.05f;
      s1[i] = static_cast<float>(k % 13) * 1e-5f;
      mask[i] = (k % 4 == 1) ? 0.f : 1.f;
    }
    if (n > 0) s1[0] = 1e-39f;  // a denormal slot: flushed on both devices
  }
  cuda::OptimizerSegment segment(float l1 = 0.f, float l2 = 0.f) {
    cuda::OptimizerSegment s;
    s.w = w.data();
    s.g = g.data();
    s.slot0 = s0.data();
    s.slot1 = s1.data();
    s.mask = masked ? mask.data() : nullptr;
    s.n = static_cast<int64_t>(w.size());
    s.l1 = l1;
    s.l2 = l2;
    return s;
  }
  bool same_as(const Param& o) const {
    auto eq = [](const std::vector<float>& a, const std::vector<float>& b) { return same_bytes(a, b); };
    return eq(w, o.w) && eq(g, o.g) && eq(s0, o.s0) && eq(s1, o.s1);
  }
};

const int64_t kSegmentSizes[] = {1, 0, 33, 1000, 64 * 70 + 5, 3, 70001};

// Parameters of kSegmentSizes (and more of size 17, to need more than one launch), masked or not.
std::vector<Param> params(int n_extra) {
  std::vector<Param> ps;
  int salt = 0;
  for (int64_t n : kSegmentSizes) ps.emplace_back(n, salt % 2 == 1, salt), ++salt;
  for (int k = 0; k < n_extra; ++k) ps.emplace_back(17, k % 3 == 0, salt++);
  return ps;
}

// Runs the device launches of `kind` on the host: every list, every (block, thread) of its grid.
void simulate_multi(cuda::SegmentUpdate kind, const SgdArgs& sgd, const AdamArgs& adam, std::vector<Param>& ps,
                    bool tiny_grid, float l1 = 0.f, float l2 = 0.f) {
  std::vector<cuda::OptimizerSegment> segs;
  for (Param& p : ps) segs.push_back(p.segment(l1, l2));
  int launches = 0;
  cuda::for_each_segment_list(segs.data(), static_cast<int64_t>(segs.size()), [&](const cuda::SegmentList& list) {
    ++launches;
    const cuda::Grid g = tiny_grid ? cuda::Grid{2, 3} : cuda::grid_for(list.start[list.count]);
    simulate(g, tiny_grid, [&](uint32_t b, uint32_t t) { cuda::multi_tensor_thread(kind, sgd, adam, list, g, b, t); });
  });
  CHECK(launches >= 1);
}

}  // namespace

TEST_CASE("simulated CUDA multi-tensor SGD = CPU sgd_update, bit for bit") {
  for (float momentum : {0.f, 0.9f})
    for (bool nesterov : {false, true})
      for (float wd : {0.f, 1e-3f})
        for (bool tiny : {false, true}) {
          SgdArgs a;
          a.lr = 0.05f;
          a.momentum = momentum;
          a.nesterov = nesterov;
          a.weight_decay = wd;
          std::vector<Param> want = params(cuda::kMaxSegmentsPerLaunch + 5), got = want;
          for (int step = 0; step < 2; ++step) {  // the second step reads the state the first wrote
            for (Param& p : want)
              cpu::sgd_update(a, static_cast<int64_t>(p.w.size()), p.w.data(), p.g.data(), p.s0.data(),
                              p.masked ? p.mask.data() : nullptr);
            simulate_multi(cuda::SegmentUpdate::sgd, a, AdamArgs{}, got, tiny);
          }
          bool same = true;
          for (size_t k = 0; k < want.size(); ++k) same = same && got[k].same_as(want[k]);
          CHECK(same);
        }
}

TEST_CASE("simulated CUDA multi-tensor Adam / AdamW = CPU adam_update, bit for bit") {
  for (bool decoupled : {false, true})
    for (float wd : {0.f, 1e-2f})
      for (bool tiny : {false, true}) {
        AdamArgs a;
        a.lr = 1e-3f;
        a.weight_decay = wd;
        a.decoupled = decoupled;
        std::vector<Param> want = params(cuda::kMaxSegmentsPerLaunch + 5), got = want;
        for (int step = 1; step <= 3; ++step) {
          a.step_size = static_cast<float>(1e-3 / (1.0 - std::pow(0.9, step)));
          a.bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(0.999, step)));
          for (Param& p : want)
            cpu::adam_update(a, static_cast<int64_t>(p.w.size()), p.w.data(), p.g.data(), p.s0.data(), p.s1.data(),
                             p.masked ? p.mask.data() : nullptr);
          simulate_multi(cuda::SegmentUpdate::adam, SgdArgs{}, a, got, tiny);
        }
        bool same = true;
        for (size_t k = 0; k < want.size(); ++k) same = same && got[k].same_as(want[k]);
        CHECK(same);
      }
}

TEST_CASE("simulated CUDA penalty gradient = CPU weight_penalty_grad's gradient, bit for bit") {
  for (float l1 : {0.f, 1e-3f})
    for (float l2 : {0.f, 1e-2f}) {
      std::vector<Param> want = params(3), got = want;
      for (Param& p : want) {
        const int64_t n = static_cast<int64_t>(p.w.size());
        std::vector<double> block_sums(static_cast<size_t>(cpu::penalty_blocks(n)) + 1);
        cpu::weight_penalty_grad(n, p.w.data(), p.g.data(), p.masked ? p.mask.data() : nullptr, l1, l2,
                                 block_sums.data());
      }
      simulate_multi(cuda::SegmentUpdate::penalty, SgdArgs{}, AdamArgs{}, got, false, l1, l2);
      bool same = true;
      for (size_t k = 0; k < want.size(); ++k) same = same && got[k].same_as(want[k]);
      CHECK(same);
    }
}

TEST_CASE("segment lists: at most kMaxSegmentsPerLaunch each, in order, empty segments skipped") {
  std::vector<cuda::OptimizerSegment> segs(2 * cuda::kMaxSegmentsPerLaunch + 3);
  for (size_t i = 0; i < segs.size(); ++i) segs[i].n = static_cast<int64_t>(i % 5);  // every fifth empty
  std::vector<int64_t> seen;
  cuda::for_each_segment_list(segs.data(), static_cast<int64_t>(segs.size()), [&](const cuda::SegmentList& l) {
    CHECK(l.count >= 1);
    CHECK(l.count <= cuda::kMaxSegmentsPerLaunch);
    for (int k = 0; k < l.count; ++k) {
      CHECK(l.start[k + 1] - l.start[k] == l.seg[k].n);
      seen.push_back(l.seg[k].n);
      for (int64_t e = l.start[k]; e < l.start[k + 1]; ++e) CHECK(cuda::segment_of(l, e) == k);
    }
  });
  std::vector<int64_t> want;
  for (const auto& s : segs)
    if (s.n > 0) want.push_back(s.n);
  CHECK(seen == want);
}

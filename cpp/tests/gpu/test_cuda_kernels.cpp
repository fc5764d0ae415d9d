// The CUDA kernels on a real GPU, against the CPU kernels byte for byte (the layer kernels:
// test_cuda_layers.cpp, linked into the same binary). Built when CUDA and the tests are
// (dropnet_gpu_tests); exits 77, which ctest reports as skipped, when no GPU is usable.
// `dropnet_gpu_tests --bench` instead times cuda::dropout_forward (64 Mi floats, with mask) with
// CUDA events and prints one markdown table row, `--bench-conv` times cuda::conv2d_forward /
// conv2d_backward on the small CNN's layers (test_cuda_conv.cpp), `--bench-gemm` cuda::sgemm on both
// dense backends at the MLP's shapes (test_cuda_gemm.cpp); all for tools/gpu_check.sh.
#define DOCTEST_CONFIG_IMPLEMENT
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "device_vector.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/dropout.h"
#include "dropnet/kernels/cpu/optimizer.h"
#include "dropnet/kernels/cuda/device.h"
#include "dropnet/kernels/cuda/dropout.h"
#include "dropnet/kernels/cuda/optimizer.h"

using namespace dropnet;
using dropnet::gpu_testing::DeviceVector;
using dropnet::gpu_testing::ok;
using dropnet::gpu_testing::same;

namespace {

std::vector<float> inputs(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37) % 101) * 0.173f - 8.5f;
  if (n > 14) x[14] = 1e-40f;  // denormal: flushed on both devices
  return x;
}

}  // namespace

TEST_CASE("GPU dropout forward, backward, alpha, spatial and MC = CPU, byte for byte") {
  for (int64_t n : {int64_t{1}, int64_t{63}, int64_t{65}, int64_t{4099}, int64_t{1} << 20, (int64_t{1} << 22) + 5})
    for (double p : {1e-9, 0.5, 0.9})
      for (uint64_t offset : {uint64_t{0}, uint64_t{3}}) {
        const uint32_t t = keep_threshold(p);
        const float scale = static_cast<float>(1.0 / (1.0 - p));
        const std::vector<float> x = inputs(n);
        const int64_t words = (n + 63) / 64;
        std::vector<float> want(x.size());
        std::vector<uint64_t> want_bits(words);
        cpu::dropout_forward(x.data(), want.data(), n, t, scale, 11, 12, want_bits.data(), offset);
        DeviceVector<float> dx(x), dy(std::vector<float>(x.size()));
        DeviceVector<uint64_t> dbits(std::vector<uint64_t>(words, 0x77));
        cuda::dropout_forward(dx.p, dy.p, n, t, scale, 11, 12, dbits.p, offset);
        CHECK(same(dy.get(), want));
        CHECK(dbits.get() == want_bits);

        std::vector<float> want_back(x.size());
        cpu::dropout_backward_bits(x.data(), want_bits.data(), want_back.data(), n, scale);
        cuda::dropout_backward_bits(dx.p, dbits.p, dy.p, n, scale);
        CHECK(same(dy.get(), want_back));

        const cpu::AlphaDropoutCoeffs c = cpu::alpha_dropout_coeffs(p);
        std::vector<float> want_alpha(x.size());
        cpu::alpha_dropout_forward(x.data(), want_alpha.data(), n, t, c, 11, 12, want_bits.data());
        cuda::alpha_dropout_forward(dx.p, dy.p, n, t, c.a, c.b, c.dropped_value, 11, 12, dbits.p, 0);
        CHECK(same(dy.get(), want_alpha));
        CHECK(dbits.get() == want_bits);
      }
  const int64_t n_channels = 130, channel_size = 49, samples = 5;
  const std::vector<float> x = inputs(n_channels * channel_size);
  std::vector<float> want(x.size()), want_mc(x.size() * samples);
  std::vector<uint64_t> bits((n_channels + 63) / 64);
  const uint32_t t = keep_threshold(0.3);
  cpu::spatial_dropout_forward(x.data(), want.data(), n_channels, channel_size, t, 2.f, 1, 2, bits.data());
  cpu::mc_dropout_forward(x.data(), want_mc.data(), static_cast<int64_t>(x.size()), samples, t, 2.f, 1, 9);
  DeviceVector<float> dx(x), dy(std::vector<float>(x.size())), dmc(want_mc);
  DeviceVector<uint64_t> dbits(bits);
  cuda::spatial_dropout_forward(dx.p, dy.p, n_channels, channel_size, t, 2.f, 1, 2, dbits.p);
  CHECK(same(dy.get(), want));
  CHECK(dbits.get() == bits);
  cuda::mc_dropout_forward(dx.p, dmc.p, static_cast<int64_t>(x.size()), samples, t, 2.f, 1, 9);
  CHECK(same(dmc.get(), want_mc));
}

TEST_CASE("GPU multi-tensor Adam and SGD = CPU, byte for byte") {
  std::vector<std::vector<float>> w, g, m, v, mask;
  const int64_t sizes[] = {1, 1000, 70001, 33};
  for (int k = 0; k < 45; ++k) {  // more parameters than one launch takes
    const int64_t n = sizes[k % 4];
    w.push_back(inputs(n));
    g.push_back(inputs(n));
    for (float& e : g.back()) e *= 0.01f;
    m.emplace_back(static_cast<size_t>(n), 0.01f);
    v.emplace_back(static_cast<size_t>(n), 1e-4f);
    mask.emplace_back(static_cast<size_t>(n), 1.f);
    for (int64_t i = 0; i < n; i += 3) mask.back()[i] = 0.f;
  }
  AdamArgs a;
  a.decoupled = true;
  a.weight_decay = 1e-2f;
  a.step_size = static_cast<float>(1e-3 / (1.0 - 0.9));
  a.bias2_sqrt = static_cast<float>(std::sqrt(1.0 - 0.999));
  std::vector<DeviceVector<float>*> owned;
  std::vector<cuda::OptimizerSegment> segs;
  for (size_t k = 0; k < w.size(); ++k) {
    auto* dw = new DeviceVector<float>(w[k]);
    auto* dg = new DeviceVector<float>(g[k]);
    auto* dm = new DeviceVector<float>(m[k]);
    auto* dv = new DeviceVector<float>(v[k]);
    auto* dmask = new DeviceVector<float>(mask[k]);
    owned.insert(owned.end(), {dw, dg, dm, dv, dmask});
    cuda::OptimizerSegment s;
    s.w = dw->p;
    s.g = dg->p;
    s.slot0 = dm->p;
    s.slot1 = dv->p;
    s.mask = k % 2 ? dmask->p : nullptr;
    s.n = static_cast<int64_t>(w[k].size());
    segs.push_back(s);
    cpu::adam_update(a, s.n, w[k].data(), g[k].data(), m[k].data(), v[k].data(), k % 2 ? mask[k].data() : nullptr);
  }
  cuda::adam_update_multi(a, segs.data(), static_cast<int64_t>(segs.size()));
  bool all = true;
  for (size_t k = 0; k < w.size(); ++k)
    all = all && same(owned[5 * k]->get(), w[k]) && same(owned[5 * k + 2]->get(), m[k]) &&
          same(owned[5 * k + 3]->get(), v[k]);
  CHECK(all);
  SgdArgs sgd;
  sgd.momentum = 0.9f;
  sgd.nesterov = true;
  for (size_t k = 0; k < w.size(); ++k)
    cpu::sgd_update(sgd, segs[k].n, w[k].data(), g[k].data(), m[k].data(), k % 2 ? mask[k].data() : nullptr);
  cuda::sgd_update_multi(sgd, segs.data(), static_cast<int64_t>(segs.size()));
  all = true;
  for (size_t k = 0; k < w.size(); ++k) all = all && same(owned[5 * k]->get(), w[k]) && same(owned[5 * k + 2]->get(), m[k]);
  CHECK(all);
  for (auto* d : owned) delete d;
}

int bench_conv();  // test_cuda_conv.cpp
int bench_gemm();  // test_cuda_gemm.cpp

namespace {

int bench() {
  const int64_t n = int64_t{64} << 20;
  DeviceVector<float> x(std::vector<float>(static_cast<size_t>(n), 1.f)), y(std::vector<float>(static_cast<size_t>(n)));
  DeviceVector<uint64_t> bits(std::vector<uint64_t>(static_cast<size_t>((n + 63) / 64)));
  const uint32_t t = keep_threshold(0.5);
  cudaEvent_t start, stop;
  ok(cudaEventCreate(&start), "event");
  ok(cudaEventCreate(&stop), "event");
  for (int i = 0; i < 3; ++i) cuda::dropout_forward(x.p, y.p, n, t, 2.f, 1, static_cast<uint64_t>(i), bits.p);
  const int reps = 20;
  ok(cudaEventRecord(start), "record");
  for (int i = 0; i < reps; ++i) cuda::dropout_forward(x.p, y.p, n, t, 2.f, 1, static_cast<uint64_t>(i), bits.p);
  ok(cudaEventRecord(stop), "record");
  ok(cudaEventSynchronize(stop), "sync");
  float ms = 0.f;
  ok(cudaEventElapsedTime(&ms, start, stop), "elapsed");
  const double per = ms / reps;
  const double bytes = static_cast<double>(n) * 8.0 + static_cast<double>(n) / 8.0;  // x, y, mask
  std::printf("| dropnet cuda::dropout_forward (mask 1 bit) | %lld | %.3f | %.0f |\n", static_cast<long long>(n), per,
              bytes / (per * 1e-3) / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string missing = cuda::unavailable_reason();
  if (!missing.empty()) {
    std::printf("dropnet_gpu_tests: skipped, %s\n", missing.c_str());
    return 77;
  }
  if (argc > 1 && std::string(argv[1]) == "--bench") return bench();
  if (argc > 1 && std::string(argv[1]) == "--bench-conv") return bench_conv();
  if (argc > 1 && std::string(argv[1]) == "--bench-gemm") return bench_gemm();
  doctest::Context context(argc, argv);
  return context.run();
}

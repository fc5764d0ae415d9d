// The CUDA convolution (kernels/cuda/conv2d.cu) on a real GPU: the same bytes as the host
// simulation of the same block programs (conv_sim.h; fmaf, the epilogue's polynomials and the
// flushed denormals are the same on both, so any difference is the GPU's launch, barriers or
// shared memory at fault), the same bytes run to run, and within the float32 error of the sums
// of the CPU kernel. `dropnet_gpu_tests --bench-conv` times the CNN / VGG layers' convolutions on
// both backends (tools/gpu_check.sh). Part of dropnet_gpu_tests (main: test_cuda_kernels.cpp).
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../check_close.h"
#include "../conv_sim.h"
#include "device_vector.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/error.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/im2col.h"
#include "dropnet/kernels/cuda/conv2d.h"
#include "dropnet/kernels/cuda/conv_backend.h"
#include "dropnet/kernels/cuda/cudnn_api.h"

using namespace dropnet;
using dropnet::gpu_testing::DeviceVector;
using dropnet::gpu_testing::ok;
using dropnet::gpu_testing::same;
using dropnet::testing::check_close;

namespace {

using testing::ConvCase;
using testing::normal_floats;

// Two float32 sums of `terms` N(0, 1) products in different orders (and the CPU's Winograd) differ
// by a few 1e-6·sqrt(terms); 2e-5·sqrt(terms) absolute is the bound tests/test_conv_winograd.py
// holds the CPU to against float64.
double conv_tol(int64_t terms) { return 2e-5 * std::sqrt(static_cast<double>(terms)); }

// One shape and activation on the GPU against the host simulation and the CPU, twice.
void check_gpu_conv(const ConvCase& k, Activation act, cudaStream_t stream) {
  CAPTURE(k.C);
  CAPTURE(k.F);
  CAPTURE(k.kh);
  CAPTURE(static_cast<int>(act));
  const cpu::ConvGeometry g = testing::conv_case_geometry(k);
  const cuda::ConvShape s = cuda::conv_shape(g);
  const int64_t K = k.C / k.groups * k.kh * k.kw, ny = k.N * k.F * g.OH * g.OW, nx = k.N * k.C * k.H * k.W;
  const std::vector<float> x = normal_floats(nx, 1), w = normal_floats(k.F * K, 2), b = normal_floats(k.F, 3),
                           dy = normal_floats(ny, 4), dw0 = normal_floats(k.F * K, 5), db0 = normal_floats(k.F, 6);
  // The host simulation of the very code the GPU runs.
  std::vector<float> sim_y(ny), sim_dx(nx), sim_dw = dw0, sim_db = db0;
  cuda::ConvForwardArgs a;
  a.x = x.data(), a.w = w.data(), a.bias = b.data(), a.y = sim_y.data(), a.g = s, a.N = k.N, a.F = k.F;
  a.activation = act, a.leaky_slope = 0.01f;
  testing::simulate_conv2d_forward(a, false, false);
  testing::simulate_conv2d_backward(dy.data(), x.data(), k.N, s, w.data(), k.F, sim_dx.data(), sim_dw.data(),
                                    sim_db.data(), false, false);
  // The CPU kernel.
  std::vector<float> cpu_y(ny), cpu_dx(nx), cpu_dw = dw0, cpu_db = db0;
  {
    DenormalsFlushed ftz;
    std::vector<float> ws(static_cast<size_t>(cpu::conv2d_forward_workspace(g, k.F, true, 1) +
                                              cpu::conv2d_backward_workspace(g, k.N, k.F, 1)));
    cpu::conv2d_forward(x.data(), k.N, g, w.data(), k.F, b.data(), act, 0.01f, cpu_y.data(), ws.data(),
                        static_cast<int64_t>(ws.size()));
    cpu::conv2d_backward(dy.data(), x.data(), k.N, g, w.data(), k.F, cpu_dx.data(), cpu_dw.data(), cpu_db.data(),
                         ws.data(), static_cast<int64_t>(ws.size()));
  }
  const int64_t P = k.N * g.OH * g.OW;
  check_close(sim_y, cpu_y, conv_tol(K + 1), 0.0);
  check_close(sim_dx, cpu_dx, conv_tol(k.F / k.groups * k.kh * k.kw), 0.0);
  check_close(sim_dw, cpu_dw, conv_tol(P), 0.0);
  check_close(sim_db, cpu_db, conv_tol(P), 0.0);
  for (int run = 0; run < 2; ++run) {
    CAPTURE(run);
    DeviceVector<float> d_x(x), d_w(w), d_b(b), d_dy(dy), d_y{std::vector<float>(ny, -7.f)},
        d_dx{std::vector<float>(nx, -7.f)}, d_dw(dw0), d_db(db0),
        d_ws{std::vector<float>(static_cast<size_t>(cuda::conv2d_backward_workspace(s, k.N, k.F)))};
    cuda::conv2d_forward(d_x.p, k.N, s, d_w.p, k.F, d_b.p, act, 0.01f, d_y.p, stream);
    cuda::conv2d_backward(d_dy.p, d_x.p, k.N, s, d_w.p, k.F, d_dx.p, d_dw.p, d_db.p, d_ws.p,
                          static_cast<int64_t>(d_ws.n), stream);
    CHECK(same(d_y.get(), sim_y));
    CHECK(same(d_dx.get(), sim_dx));
    CHECK(same(d_dw.get(), sim_dw));
    CHECK(same(d_db.get(), sim_db));
  }
}

// Every shape with the identity, ReLU and GELU epilogues, on a stream of its own.
void check_gpu_convs(const std::vector<ConvCase>& cases) {
  // Our kernel's bytes whatever DROPNET_CUDA_CONV says (the cuDNN backend: test_cuda_conv_cudnn.cpp).
  const cuda::ConvBackend saved = cuda::conv_backend();
  cuda::set_conv_backend(cuda::ConvBackend::implicit_gemm);
  cudaStream_t stream;
  ok(cudaStreamCreate(&stream), "cudaStreamCreate");
  for (const ConvCase& k : cases)
    for (Activation act : {Activation::identity, Activation::relu, Activation::gelu}) check_gpu_conv(k, act, stream);
  ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
  cuda::set_conv_backend(saved);
}

}  // namespace

// Small shapes (tools/gpu_check.sh runs these under racecheck too): tails of every tile, more
// than one tile and slice, stride, padding, dilation and groups.
TEST_CASE("GPU conv2d small shapes = the host simulation byte for byte, run to run the same; ~ CPU") {
  check_gpu_convs({
      // N  C   H   W   F  kh kw sh sw pt pl pb pr dil groups
      {3, 6, 11, 9, 10, 5, 5, 2, 2, 2, 2, 1, 1, 1, 2},  // 5×5, stride 2, asymmetric pad, groups 2
      {2, 5, 9, 9, 70, 3, 3, 1, 1, 2, 2, 2, 2, 2, 1},   // dilation 2, filters past one tile
      {2, 17, 7, 7, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},   // 1×1
  });
}

TEST_CASE("GPU conv2d, the small CNN's layers at batch 8 = the host simulation byte for byte; ~ CPU") {
  check_gpu_convs({
      {8, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   // first layer (4 weight-gradient chunks)
      {8, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  // second (the CPU takes Winograd)
  });
}

TEST_CASE("GPU conv2d_backward: a short workspace is a ValueError naming the size, before any launch") {
  cuda::ConvShape s;
  s.C = 2, s.H = s.W = 5, s.kh = s.kw = 3, s.OH = s.OW = 3;
  const int64_t need = cuda::conv2d_backward_workspace(s, 2, 4);
  CHECK(need == 1 * 4 * (2 * 9 + 1));
  DeviceVector<float> buf{std::vector<float>(256)};
  CHECK_THROWS_WITH_AS(cuda::conv2d_backward(buf.p, buf.p, 2, s, buf.p, 4, nullptr, buf.p, nullptr, buf.p, need - 1),
                       doctest::Contains("workspace must hold 76 floats"), ValueError);
}

// The CNN's and VGG-style net's convolutions at batch 128 (3×3, pad 1): forward alone (bias +
// ReLU) and forward + backward (dx, dw, db), mean of 20 calls after 3 warm-ups, CUDA events; one
// markdown row per layer and backend (implicit GEMM; cuDNN when it can be loaded).
int bench_conv() {
  struct Layer {
    int64_t C, F, HW;
  };
  const Layer layers[] = {{1, 32, 28}, {32, 32, 28}, {32, 64, 14}, {64, 64, 14}, {64, 128, 7}, {128, 128, 7}};
  const cuda::ConvBackend saved = cuda::conv_backend();
  for (cuda::ConvBackend backend : {cuda::ConvBackend::implicit_gemm, cuda::ConvBackend::cudnn}) {
    if (backend == cuda::ConvBackend::cudnn && !cuda::cudnn_unavailable_reason().empty()) {
      std::printf("| dropnet cuda::conv2d (cuDNN): not run, %s | | | |\n", cuda::cudnn_unavailable_reason().c_str());
      continue;
    }
    cuda::set_conv_backend(backend);
    const char* name = backend == cuda::ConvBackend::cudnn ? "cuDNN via dropnet, FP32 math, deterministic algorithms"
                                                          : "implicit GEMM, fp32";
    for (const Layer& l : layers) {
      const ConvCase k{128, l.C, l.HW, l.HW, l.F, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1};
      const cuda::ConvShape s = cuda::conv_shape(testing::conv_case_geometry(k));
      const int64_t nx = 128 * l.C * l.HW * l.HW, ny = 128 * l.F * l.HW * l.HW, nw = l.F * l.C * 9;
      DeviceVector<float> x(normal_floats(nx, 1)), w(normal_floats(nw, 2)), b(normal_floats(l.F, 3)),
          dy(normal_floats(ny, 4)), y{std::vector<float>(ny)}, dx{std::vector<float>(nx)}, dw{std::vector<float>(nw)},
          db{std::vector<float>(l.F)},
          ws{std::vector<float>(static_cast<size_t>(cuda::conv2d_backward_workspace(s, 128, l.F)))};
      cudaEvent_t start, stop;
      ok(cudaEventCreate(&start), "event");
      ok(cudaEventCreate(&stop), "event");
      double ms[2] = {0, 0};
      for (int with_backward = 0; with_backward < 2; ++with_backward) {
        auto step = [&] {
          cuda::conv2d_forward(x.p, 128, s, w.p, l.F, b.p, Activation::relu, 0.01f, y.p);
          if (with_backward)
            cuda::conv2d_backward(dy.p, x.p, 128, s, w.p, l.F, dx.p, dw.p, db.p, ws.p, static_cast<int64_t>(ws.n));
        };
        for (int i = 0; i < 3; ++i) step();
        const int reps = 20;
        ok(cudaEventRecord(start), "record");
        for (int i = 0; i < reps; ++i) step();
        ok(cudaEventRecord(stop), "record");
        ok(cudaEventSynchronize(stop), "sync");
        float total = 0.f;
        ok(cudaEventElapsedTime(&total, start, stop), "elapsed");
        ms[with_backward] = total / reps;
      }
      std::printf("| dropnet cuda::conv2d (%s) | %lld -> %lld, %lldx%lld, batch 128 | %.3f | %.3f |\n", name,
                  static_cast<long long>(l.C), static_cast<long long>(l.F), static_cast<long long>(l.HW),
                  static_cast<long long>(l.HW), ms[0], ms[1]);
      ok(cudaEventDestroy(start), "event");
      ok(cudaEventDestroy(stop), "event");
    }
  }
  cuda::set_conv_backend(saved);
  return 0;
}

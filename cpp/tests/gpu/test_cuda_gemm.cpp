// The CUDA dense GEMM on a real GPU (part of dropnet_gpu_tests; main: test_cuda_kernels.cpp):
//   - cuda::sgemm (our kernel, the default backend) gives cpu::sgemm's bytes (C, pre-activations,
//     dropout mask bits) for all four transpose cases, odd shapes, several K blocks, alpha / beta,
//     every epilogue; and the same bytes on a second run, on a non-default stream and split over
//     its K blocks (with the workspace);
//   - the cuBLASLt backend (set_dense_backend) agrees with a float64 product within the float32
//     bound γ(K + 2)·Σ|a·b| (plus the epilogue's own rounding), the same bytes run to run, its
//     bias + ReLU fused and the rest as the epilogue pass; when cuBLASLt cannot be loaded the case
//     says why, and fails if DROPNET_REQUIRE_CUBLASLT=1 (tools/gpu_check.sh sets it).
// `dropnet_gpu_tests --bench-gemm` times both backends at the MLP's shapes (markdown rows).
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "device_vector.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cuda/gemm.h"

using namespace dropnet;
using dropnet::gpu_testing::DeviceVector;
using dropnet::gpu_testing::ok;
using dropnet::gpu_testing::same;

namespace {

std::vector<float> gemm_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  Activation act;
  bool bias, pre, dropout, mask;
};

struct HostResult {
  std::vector<float> C, pre;
  std::vector<uint64_t> mask;
};

struct Operands {
  GemmCase k;
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C0, bias;
  explicit Operands(const GemmCase& c) : k(c) {
    lda = c.ta ? c.M : c.K;
    ldb = c.tb ? c.K : c.N;
    ldc = c.N + 1;  // a padded C
    A = gemm_floats(static_cast<size_t>((c.ta ? c.K : c.M) * lda), 1);
    B = gemm_floats(static_cast<size_t>((c.tb ? c.N : c.K) * ldb), 2);
    C0 = gemm_floats(static_cast<size_t>(c.M * ldc), 3);
    bias = gemm_floats(static_cast<size_t>(c.N), 4);
  }
  GemmEpilogue epilogue(const float* bias_ptr, float* pre_ptr, uint64_t* mask_ptr) const {
    GemmEpilogue e;
    e.activation = k.act;
    e.bias = k.bias ? bias_ptr : nullptr;
    e.pre_activation = k.pre ? pre_ptr : nullptr;
    if (k.dropout) {
      e.dropout = true;
      e.threshold = keep_threshold(0.4);
      e.scale = keep_scale(0.4);
      e.seed = 1234567890123ull;
      e.stream = 3;
      e.index_offset = 77;
      e.mask_bits = k.mask ? mask_ptr : nullptr;
    }
    return e;
  }
  size_t mask_words() const { return static_cast<size_t>((k.M * k.N + 63) / 64 + 1); }

  HostResult cpu() const {
    HostResult r{C0, std::vector<float>(static_cast<size_t>(k.M * k.N), -3.f),
                 std::vector<uint64_t>(mask_words(), 0x5a5aull)};
    const GemmEpilogue e = epilogue(bias.data(), r.pre.data(), r.mask.data());
    cpu::sgemm(k.ta, k.tb, k.M, k.N, k.K, k.alpha, A.data(), lda, B.data(), ldb, k.beta, r.C.data(), ldc, &e);
    return r;
  }

  // with_workspace: the workspace that splits a small product over its K blocks.
  HostResult gpu(cudaStream_t stream = nullptr, bool with_workspace = false) const {
    DeviceVector<float> dA(A), dB(B), dC(C0), dbias(bias),
        dpre(std::vector<float>(static_cast<size_t>(k.M * k.N), -3.f));
    DeviceVector<uint64_t> dmask(std::vector<uint64_t>(mask_words(), 0x5a5aull));
    const int64_t ws_floats = with_workspace ? cuda::sgemm_workspace(k.M, k.N, k.K) : 0;
    DeviceVector<float> ws(std::vector<float>(static_cast<size_t>(ws_floats)));
    const GemmEpilogue e = epilogue(dbias.p, dpre.p, dmask.p);
    cuda::sgemm(k.ta, k.tb, k.M, k.N, k.K, k.alpha, dA.p, lda, dB.p, ldb, k.beta, dC.p, ldc, &e, stream, ws.p,
                static_cast<int64_t>(ws.n));
    if (stream) ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return HostResult{dC.get(), dpre.get(), dmask.get()};
  }
};

const GemmCase kCases[] = {
    // ta     tb     M    N    K    alpha  beta  act                     bias   pre    drop   mask
    {false, false, 1, 1, 1, 1.f, 0.f, Activation::identity, false, false, false, false},
    {false, true, 128, 300, 784, 1.f, 0.f, Activation::relu, true, false, true, true},    // MLP forward + dropout
    {false, false, 128, 784, 300, 1.f, 0.f, Activation::identity, false, false, false, false},  // input gradient
    {true, false, 300, 784, 128, 1.f, 1.f, Activation::identity, false, false, false, false},   // weight gradient +=
    {true, true, 67, 45, 520, 0.5f, 0.25f, Activation::gelu, true, true, false, false},
    {false, true, 33, 129, 65, 1.f, 0.f, Activation::tanh, true, true, true, false},
    {true, false, 5, 7, 0, 1.f, 0.5f, Activation::sigmoid, true, false, true, true},  // K = 0
    {false, false, 70, 70, 300, 0.f, 2.f, Activation::leaky_relu, false, false, false, false},  // alpha = 0
};

// float64 reference of the product alone and the float32 bound of any order of its sums.
void reference(const Operands& o, std::vector<double>* value, std::vector<double>* bound) {
  const GemmCase& k = o.k;
  value->assign(static_cast<size_t>(k.M * k.N), 0.0);
  bound->assign(value->size(), 0.0);
  const double u = std::ldexp(1.0, -24), gamma = (k.K + 2) * u / (1 - (k.K + 2) * u);
  for (int64_t i = 0; i < k.M; ++i)
    for (int64_t j = 0; j < k.N; ++j) {
      double s = 0, mag = 0;
      for (int64_t p = 0; p < k.K; ++p) {
        const double t = static_cast<double>(k.ta ? o.A[p * o.lda + i] : o.A[i * o.lda + p]) *
                         (k.tb ? o.B[j * o.ldb + p] : o.B[p * o.ldb + j]);
        s += t;
        mag += std::fabs(t);
      }
      const double c0 = o.C0[i * o.ldc + j];
      (*value)[i * k.N + j] = k.alpha * s + (k.beta == 0.f ? 0.0 : k.beta * c0);
      (*bound)[i * k.N + j] = gamma * (std::fabs(k.alpha) * mag + std::fabs(k.beta * c0)) + 1e-6;
    }
}

struct BackendGuard {
  cuda::DenseBackend saved = cuda::dense_backend();
  ~BackendGuard() { cuda::set_dense_backend(saved); }
};

// The MLP's shapes are the large ones; the rest run under compute-sanitizer's racecheck too.
bool small_case(const GemmCase& k) { return k.M * k.N * k.K <= 70 * 70 * 300; }

void check_dropnet_backend(bool small) {
  BackendGuard guard;
  cuda::set_dense_backend(cuda::DenseBackend::dropnet);
  cudaStream_t stream;
  ok(cudaStreamCreate(&stream), "cudaStreamCreate");
  for (const GemmCase& k : kCases) {
    if (small_case(k) != small) continue;
    CAPTURE(k.M);
    CAPTURE(k.N);
    CAPTURE(k.K);
    CAPTURE(k.ta);
    CAPTURE(k.tb);
    const Operands o(k);
    const HostResult want = o.cpu(), got = o.gpu(), again = o.gpu(stream), split = o.gpu(stream, true);
    CHECK(same(got.C, want.C));
    CHECK(same(got.pre, want.pre));
    CHECK(same(got.mask, want.mask));
    CHECK(same(again.C, got.C));
    CHECK(same(again.mask, got.mask));
    CHECK(same(split.C, want.C));
    CHECK(same(split.pre, want.pre));
    CHECK(same(split.mask, want.mask));
  }
  ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

}  // namespace

TEST_CASE("GPU sgemm small shapes (dropnet backend): cpu::sgemm's bytes, every run and stream") {
  check_dropnet_backend(true);
}

TEST_CASE("GPU sgemm MLP shapes (dropnet backend): cpu::sgemm's bytes, every run and stream") {
  check_dropnet_backend(false);
}

TEST_CASE("GPU sgemm (cuBLASLt backend): within the float32 bound of a float64 product, the same bytes twice") {
  const std::string missing = cuda::cublaslt_unavailable_reason();
  if (!missing.empty()) {
    const char* required = std::getenv("DROPNET_REQUIRE_CUBLASLT");
    if (required && std::string(required) == "1") FAIL("cuBLASLt required but unavailable: " << missing);
    MESSAGE("cuBLASLt backend not tested: " << missing);
    return;
  }
  BackendGuard guard;
  cuda::set_dense_backend(cuda::DenseBackend::cublaslt);
  for (const GemmCase& k : kCases) {
    if (k.act != Activation::identity || k.dropout || k.bias) continue;  // the product alone against float64
    CAPTURE(k.M);
    CAPTURE(k.N);
    CAPTURE(k.K);
    const Operands o(k);
    const HostResult got = o.gpu(), again = o.gpu();
    CHECK(same(again.C, got.C));
    std::vector<double> value, bound;
    reference(o, &value, &bound);
    int bad = 0;
    for (int64_t i = 0; i < k.M; ++i)
      for (int64_t j = 0; j < k.N; ++j)
        bad += std::fabs(got.C[i * o.ldc + j] - value[i * k.N + j]) > bound[i * k.N + j];
    CHECK(bad == 0);
  }
  // With an epilogue: the same activation, dropout and mask as the CPU applied to cuBLASLt's
  // product. Compared with the CPU within the product's bound carried through the activation
  // (ReLU, identity: Lipschitz 1; times the dropout scale) and with the mask bits exact.
  for (const GemmCase& k : kCases) {
    if (!(k.act == Activation::relu || k.act == Activation::identity) || k.K == 0 || k.alpha == 0.f) continue;
    CAPTURE(k.M);
    CAPTURE(k.N);
    const Operands o(k);
    const HostResult want = o.cpu(), got = o.gpu();
    CHECK(same(got.mask, want.mask));
    std::vector<double> value, bound;
    reference(o, &value, &bound);
    const double gain = k.dropout ? keep_scale(0.4) : 1.0;
    int bad = 0;
    for (int64_t i = 0; i < k.M; ++i)
      for (int64_t j = 0; j < k.N; ++j)
        bad += std::fabs(got.C[i * o.ldc + j] - want.C[i * o.ldc + j]) >
               2 * gain * bound[i * k.N + j] + 1e-6 * std::fabs(want.C[i * o.ldc + j]) + 1e-6;
    CHECK(bad == 0);
  }
}

// The MLP's products (LeNet-300-100 at batch 128: forward with bias + ReLU, input and weight
// gradients), both backends, mean of 20 calls after 3 warm-ups, CUDA events; one markdown row each.
int bench_gemm() {
  struct Shape {
    const char* what;
    bool ta, tb;
    int64_t M, N, K;
    bool epilogue;
  };
  const Shape shapes[] = {{"fc1 forward", false, true, 128, 300, 784, true},
                          {"fc1 input grad", false, false, 128, 784, 300, false},
                          {"fc1 weight grad", true, false, 300, 784, 128, false},
                          {"fc2 forward", false, true, 128, 100, 300, true},
                          {"1024^3", false, false, 1024, 1024, 1024, false}};
  const std::string lt_missing = cuda::cublaslt_unavailable_reason();
  BackendGuard guard;
  for (const Shape& s : shapes) {
    DeviceVector<float> A(gemm_floats(static_cast<size_t>(s.M * s.K), 1)),
        B(gemm_floats(static_cast<size_t>(s.K * s.N), 2)),
        C(std::vector<float>(static_cast<size_t>(s.M * s.N))), bias(gemm_floats(static_cast<size_t>(s.N), 3));
    GemmEpilogue e;
    e.bias = bias.p;
    e.activation = Activation::relu;
    DeviceVector<float> ws(std::vector<float>(static_cast<size_t>(cuda::sgemm_workspace(s.M, s.N, s.K))));
    // dropnet in place, dropnet split over its K blocks (where the shape splits), cuBLASLt.
    for (int side = 0; side < 3; ++side) {
      const cuda::DenseBackend backend = side == 2 ? cuda::DenseBackend::cublaslt : cuda::DenseBackend::dropnet;
      if (side == 1 && ws.n == 0) continue;
      if (backend == cuda::DenseBackend::cublaslt && !lt_missing.empty()) {
        std::printf("| cuBLASLt (unavailable: %s) | %s | | |\n", lt_missing.c_str(), s.what);
        continue;
      }
      cuda::set_dense_backend(backend);
      const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
      auto call = [&] {
        cuda::sgemm(s.ta, s.tb, s.M, s.N, s.K, 1.f, A.p, lda, B.p, ldb, 0.f, C.p, s.N, s.epilogue ? &e : nullptr,
                    nullptr, side == 1 ? ws.p : nullptr, side == 1 ? static_cast<int64_t>(ws.n) : 0);
      };
      for (int i = 0; i < 3; ++i) call();
      cudaEvent_t start, stop;
      ok(cudaEventCreate(&start), "event");
      ok(cudaEventCreate(&stop), "event");
      const int reps = 20;
      ok(cudaEventRecord(start), "record");
      for (int i = 0; i < reps; ++i) call();
      ok(cudaEventRecord(stop), "record");
      ok(cudaEventSynchronize(stop), "sync");
      float total = 0.f;
      ok(cudaEventElapsedTime(&total, start, stop), "elapsed");
      const double ms = total / reps, flops = 2.0 * s.M * s.N * s.K;
      std::printf("| dropnet cuda::sgemm (%s%s) | %s (%lldx%lldx%lld) | %.4f | %.0f |\n",
                  cuda::dense_backend_name(backend),
                  side == 1 ? ", split over K blocks" : "",
                  s.what, static_cast<long long>(s.M), static_cast<long long>(s.N), static_cast<long long>(s.K), ms,
                  flops / (ms * 1e-3) / 1e9);
      ok(cudaEventDestroy(start), "event");
      ok(cudaEventDestroy(stop), "event");
    }
  }
  return 0;
}

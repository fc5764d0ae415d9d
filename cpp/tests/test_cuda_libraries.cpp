// The run-time loader of the NVIDIA libraries (kernels/cuda/libraries.h), in every build: a
// library that is present is found (libm stands in, on every Linux), a missing one gives a reason
// naming each soname tried and the dynamic loader's message, and cuBLASLt / cuSPARSE / cuDNN
// are reported loaded exactly when dlopen itself can open one of their sonames on this machine.
// In a CUDA build also cuda::sgemm's backend choice and argument checks (no GPU needed).
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "dropnet/kernels/cuda/libraries.h"

#ifdef DROPNET_HAS_CUDA
#include <stdexcept>

#include "dropnet/kernels/cuda/gemm.h"
#endif

using namespace dropnet::cuda;

TEST_CASE("DynamicLibrary: a missing library says which sonames were tried and why") {
  const DynamicLibrary lib({"libdropnet_absent_a.so.1", "libdropnet_absent_b.so.2"});
  CHECK_FALSE(lib.loaded());
  CHECK(lib.soname().empty());
  const std::string& why = lib.reason();
  CHECK(why.find("libdropnet_absent_a.so.1: ") != std::string::npos);
  CHECK(why.find("; libdropnet_absent_b.so.2: ") != std::string::npos);
  CHECK(why.find("cannot open shared object file") != std::string::npos);  // glibc's own message
  std::string sym_why;
  CHECK(lib.symbol("cos", &sym_why) == nullptr);
  CHECK(sym_why.find("not loaded") != std::string::npos);
}

TEST_CASE("DynamicLibrary: the first soname that opens is used, and its symbols work") {
  const DynamicLibrary lib({"libdropnet_absent.so.1", "libm.so.6"});
  REQUIRE(lib.loaded());
  CHECK(lib.soname() == "libm.so.6");
  CHECK(lib.reason().empty());
  using CosFn = double (*)(double);
  void* cos_sym = lib.symbol("cos");
  REQUIRE(cos_sym != nullptr);
  const auto cos_fn = reinterpret_cast<CosFn>(cos_sym);
  CHECK(cos_fn(0.5) == std::cos(0.5));
  std::string why;
  CHECK(lib.symbol("dropnet_no_such_symbol", &why) == nullptr);
  CHECK(why.find("libm.so.6 has no symbol dropnet_no_such_symbol") != std::string::npos);
}

TEST_CASE("nvidia_library: loaded exactly when dlopen opens one of its sonames; opened once") {
  for (NvidiaLibrary which : {NvidiaLibrary::cublaslt, NvidiaLibrary::cusparse, NvidiaLibrary::cudnn}) {
    CAPTURE(library_name(which));
    bool any = false;
    for (const std::string& name : library_sonames(which)) {
      void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) {
        any = true;
        dlclose(h);
      }
    }
    // From several threads at once: one object, one attempt.
    std::vector<const DynamicLibrary*> seen(4, nullptr);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < seen.size(); ++t) threads.emplace_back([&, t] { seen[t] = &nvidia_library(which); });
    for (std::thread& t : threads) t.join();
    for (const DynamicLibrary* l : seen) CHECK(l == seen[0]);
    const DynamicLibrary& lib = *seen[0];
    CHECK(lib.loaded() == any);
    if (!lib.loaded())
      for (const std::string& name : library_sonames(which)) CHECK(lib.reason().find(name + ": ") != std::string::npos);
    else
      CHECK(lib.symbol(which == NvidiaLibrary::cublaslt  ? "cublasLtCreate"
                       : which == NvidiaLibrary::cusparse ? "cusparseCreate"
                                                          : "cudnnCreate") != nullptr);
  }
}

#ifdef DROPNET_HAS_CUDA
// The dense backend's choice and the argument checks of cuda::sgemm, which run before any CUDA
// call, so they are tested on machines without a GPU (a CUDA build only).
TEST_CASE("cuda::sgemm: backend choice, its environment variable, argument checks") {
  CHECK(parse_dense_backend(nullptr) == DenseBackend::dropnet);
  CHECK(parse_dense_backend("") == DenseBackend::dropnet);
  CHECK(parse_dense_backend("dropnet") == DenseBackend::dropnet);
  CHECK(parse_dense_backend("cublaslt") == DenseBackend::cublaslt);
  CHECK_THROWS_WITH_AS(parse_dense_backend("cuBLAS"),
                       doctest::Contains("DROPNET_CUDA_DENSE: expected 'dropnet' or 'cublaslt', got 'cuBLAS'"),
                       std::invalid_argument);
  const DenseBackend saved = dense_backend();
  set_dense_backend(DenseBackend::cublaslt);
  CHECK(dense_backend() == DenseBackend::cublaslt);
  CHECK(std::string(dense_backend_name(dense_backend())) == "cublaslt");
  set_dense_backend(DenseBackend::dropnet);
  CHECK(dense_backend() == DenseBackend::dropnet);
  set_dense_backend(saved);

  // An empty output touches nothing (null pointers are never read).
  sgemm(false, false, 0, 5, 3, 1.f, nullptr, 3, nullptr, 5, 0.f, nullptr, 5);
  CHECK_THROWS_WITH_AS(sgemm(false, false, 2, 5, -1, 1.f, nullptr, 3, nullptr, 5, 0.f, nullptr, 5),
                       doctest::Contains("M, N, K must be >= 0"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(sgemm(true, false, 4, 5, 3, 1.f, nullptr, 3, nullptr, 5, 0.f, nullptr, 5),
                       doctest::Contains("lda = 3 (needs >= 4)"), std::invalid_argument);

  // Without cuBLASLt the cuBLASLt path names what is missing, before any CUDA call.
  const std::string missing = cublaslt_unavailable_reason();
  CHECK(missing.empty() == nvidia_library(NvidiaLibrary::cublaslt).loaded());
  if (!missing.empty()) {
    CHECK(missing.find("libcublasLt.so.13") != std::string::npos);
    CHECK_THROWS_WITH_AS(sgemm_cublaslt(false, false, 2, 2, 2, 1.f, nullptr, 2, nullptr, 2, 0.f, nullptr, 2),
                         doctest::Contains("sgemm_cublaslt: cuBLASLt not found (libcublasLt.so.13: "),
                         std::runtime_error);
  }
}
#endif

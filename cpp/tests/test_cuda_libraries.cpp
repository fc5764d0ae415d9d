// The run-time loader of the NVIDIA libraries (kernels/cuda/libraries.h), in every build: a
// library that is present is found (libm stands in, on every Linux), a missing one gives a reason
// naming each soname tried and the dynamic loader's message, and cuBLASLt / cuSPARSE / cuDNN
// are reported loaded exactly when dlopen itself can open one of their sonames on this machine.
// The convolution's backend choice and cuDNN's binding (conv_backend.h, cudnn_api.h) in every
// build; in a CUDA build also cuda::sgemm's and the convolution's backend choice and argument
// checks (no GPU needed).
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <stdexcept>

#include "dropnet/kernels/cuda/conv_backend.h"
#include "dropnet/kernels/cuda/cudnn_api.h"
#include "dropnet/kernels/cuda/libraries.h"

#ifdef DROPNET_HAS_CUDA
#include "dropnet/core/error.h"
#include "dropnet/kernels/cuda/conv2d.h"
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

TEST_CASE("convolution backend: DROPNET_CUDA_CONV's values, the choice, cuDNN's binding and geometries") {
  CHECK(parse_conv_backend(nullptr) == ConvBackend::implicit_gemm);
  CHECK(parse_conv_backend("") == ConvBackend::implicit_gemm);
  CHECK(parse_conv_backend("implicit_gemm") == ConvBackend::implicit_gemm);
  CHECK(parse_conv_backend("cudnn") == ConvBackend::cudnn);
  CHECK_THROWS_WITH_AS(parse_conv_backend("cuDNN"),
                       doctest::Contains("DROPNET_CUDA_CONV: expected 'implicit_gemm' or 'cudnn', got 'cuDNN'"),
                       std::invalid_argument);
  const ConvBackend saved = conv_backend();
  set_conv_backend(ConvBackend::cudnn);
  CHECK(conv_backend() == ConvBackend::cudnn);
  CHECK(std::string(conv_backend_name(conv_backend())) == "cudnn");
  set_conv_backend(ConvBackend::implicit_gemm);
  CHECK(std::string(conv_backend_name(conv_backend())) == "implicit_gemm");
  set_conv_backend(saved);

  // cuDNN is usable exactly when its library opens and binds; absent, the reason names each soname.
  const std::string missing = cudnn_unavailable_reason();
  if (!nvidia_library(NvidiaLibrary::cudnn).loaded()) {
    CHECK(missing.find("cuDNN not found (libcudnn.so.9: ") != std::string::npos);
    CHECK(missing.find("; libcudnn.so.8: ") != std::string::npos);
  } else {
    CHECK(missing.empty());
  }

  // Geometries: cuDNN pads symmetrically. A 3×3 "same" layer, stride 2 with symmetric padding,
  // dilation and groups are its own; padding whose far side changes the output size is not.
  ConvShape g;
  g.C = 4, g.H = g.W = 7, g.kh = g.kw = 3, g.pad_top = g.pad_left = 1, g.OH = g.OW = 7;
  CHECK(cudnn_conv_unsupported(g, 2, 8).empty());
  g.stride_h = g.stride_w = 2, g.OH = g.OW = 4;
  CHECK(cudnn_conv_unsupported(g, 2, 8).empty());
  g.stride_h = g.stride_w = 1, g.dil_h = g.dil_w = 2, g.pad_top = g.pad_left = 2, g.OH = g.OW = 7, g.groups = 2;
  CHECK(cudnn_conv_unsupported(g, 2, 8).empty());
  ConvShape same2x2;  // 2×2 "same": padding 0 above, 1 below: 6×6 out of 6×6, symmetric 0 gives 5×5
  same2x2.C = 2, same2x2.H = same2x2.W = 6, same2x2.kh = same2x2.kw = 2, same2x2.OH = same2x2.OW = 6;
  CHECK(cudnn_conv_unsupported(same2x2, 2, 3) ==
        "cuDNN pads symmetrically: padding 0 x 0 on both sides gives a 5x5 output, the geometry's is 6x6");
  g.OH = g.OW = 7, g.dil_h = g.dil_w = 1, g.pad_top = g.pad_left = 1, g.groups = 1, g.H = g.W = 7;
  CHECK(cudnn_conv_unsupported(g, int64_t{1} << 31, 8).find("past cuDNN's int") != std::string::npos);
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

// The convolution's cuDNN entries check their arguments, the geometry and the library before any
// CUDA call, and the backend choice sends a call to cuDNN only where cuDNN can run it (a CUDA
// build; no GPU needed).
TEST_CASE("cuda::conv2d through cuDNN: argument checks, geometry, a missing library named, the dispatch") {
  ConvShape g;
  g.C = 2, g.H = g.W = 5, g.kh = g.kw = 3, g.pad_top = g.pad_left = 1, g.OH = g.OW = 5;
  CHECK_THROWS_WITH_AS(conv2d_forward_cudnn(nullptr, 2, g, nullptr, 0, nullptr, dropnet::Activation::relu, 0.f,
                                            nullptr),
                       doctest::Contains("conv2d_forward_cudnn: needs at least 1 input channel and 1 filter"),
                       dropnet::ValueError);
  ConvShape grouped = g;
  grouped.groups = 2;
  CHECK_THROWS_WITH_AS(conv2d_backward_cudnn(nullptr, nullptr, 2, grouped, nullptr, 3, nullptr, nullptr, nullptr),
                       doctest::Contains("groups = 2 must divide the input channels (2) and the filters (3)"),
                       dropnet::ValueError);
  ConvShape asymmetric = g;
  asymmetric.OH = 6;  // one more row: padding 1 above, 2 below
  CHECK_THROWS_WITH_AS(conv2d_forward_cudnn(nullptr, 2, asymmetric, nullptr, 4, nullptr, dropnet::Activation::relu,
                                            0.f, nullptr),
                       doctest::Contains("conv2d_forward_cudnn: cuDNN pads symmetrically"), dropnet::ValueError);
  const ConvBackend saved = conv_backend();
  set_conv_backend(ConvBackend::cudnn);
  // An empty batch runs on the implicit GEMM, which launches nothing for it.
  conv2d_forward(nullptr, 0, g, nullptr, 4, nullptr, dropnet::Activation::relu, 0.f, nullptr);
  if (!cudnn_unavailable_reason().empty()) {
    // Asked for and absent: the call says so, naming the sonames tried, before any CUDA call.
    CHECK_THROWS_WITH_AS(conv2d_forward(nullptr, 2, g, nullptr, 4, nullptr, dropnet::Activation::relu, 0.f, nullptr),
                         doctest::Contains("conv2d_forward_cudnn: cuDNN not found (libcudnn.so.9: "),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(conv2d_backward_cudnn(nullptr, nullptr, 2, g, nullptr, 4, nullptr, nullptr, nullptr),
                         doctest::Contains("conv2d_backward_cudnn: cuDNN not found (libcudnn.so.9: "),
                         std::runtime_error);
  }
  // The caller's workspace is held to the same size whichever backend runs.
  CHECK_THROWS_WITH_AS(conv2d_backward(nullptr, nullptr, 2, g, nullptr, 4, nullptr, reinterpret_cast<float*>(16),
                                       nullptr, nullptr, 0),
                       doctest::Contains("workspace must hold"), dropnet::ValueError);
  set_conv_backend(saved);
}
#endif

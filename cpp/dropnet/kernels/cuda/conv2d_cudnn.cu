// The cuDNN backend of the convolution (conv2d.h, conv_backend.h): cuDNN's legacy API
// (cudnn_api.h, bound at run time), NCHW float tensors described as they lie, cross-correlation,
// FP32 math (CUDNN_FMA_MATH: cuDNN's default math type lets Ampere and later run float32 as TF32),
// deterministic algorithms only:
//   forward         CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM (every forward algorithm is
//                   deterministic; this one is the fused bias + activation's), with bias and ReLU
//                   fused by cudnnConvolutionBiasActivationForward; any other activation is the
//                   epilogue's element function after it (cuda::apply_epilogue);
//   input gradient  CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, overwriting dx;
//   weight gradient CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, accumulating (beta = 1) into dw;
//   bias gradient   cudnnConvolutionBackwardBias, accumulating into db.
// Where ALGO_1 does not take a geometry, the first algorithm cuDNN's heuristic ranks that it
// reports deterministic with FMA math; none: the call throws. The workspace each call needs comes
// from cudaMallocAsync on the call's stream and is freed there after it. One cuDNN handle per
// thread and device, created on first use and kept (its stream set per call).
#include <cuda_runtime.h>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "dropnet/core/error.h"
#include "dropnet/kernels/cuda/activation.h"
#include "dropnet/kernels/cuda/conv2d.h"
#include "dropnet/kernels/cuda/conv_backend.h"
#include "dropnet/kernels/cuda/cudnn_api.h"
#include "dropnet/kernels/cuda/launch.cuh"

namespace dropnet {
namespace cuda {
namespace {

void check_dnn(const cudnn::Api& api, cudnn::Status s, const char* call) {
  if (s == 0) return;
  const char* msg = api.error_string ? api.error_string(s) : nullptr;
  throw std::runtime_error(std::string("cuDNN error in ") + call + ": status " + std::to_string(s) +
                           (msg ? std::string(" (") + msg + ")" : std::string()));
}

// The checks every entry makes before any CUDA or cuDNN call: the geometry (ValueError), what
// cuDNN can express (ValueError), and the library (std::runtime_error naming the sonames tried).
const cudnn::Api& checked_api(const ConvShape& g, int64_t N, int64_t F, const char* what) {
  check_conv_shape(g, N, F, what);
  const std::string unsupported = cudnn_conv_unsupported(g, N, F);
  DROPNET_CHECK(unsupported.empty(), what, ": ", unsupported);
  const cudnn::Api& api = cudnn::api();
  if (!api.reason.empty()) throw std::runtime_error(std::string(what) + ": " + api.reason);
  return api;
}

// This thread's handle on the current device, its stream set to the call's. Never destroyed: a
// thread_local destructor could run after the CUDA runtime has shut down at exit.
cudnn::Handle handle_for(const cudnn::Api& api, Stream stream) {
  thread_local std::map<int, cudnn::Handle> handles;
  int device = 0;
  check_rt(cudaGetDevice(&device), "cudaGetDevice");
  cudnn::Handle& h = handles[device];
  if (!h) check_dnn(api, api.create(&h), "cudnnCreate");
  check_dnn(api, api.set_stream(h, stream), "cudnnSetStream");
  return h;
}

// The descriptors of one problem, destroyed on scope exit whatever throws (describe() fills them
// after construction, so a failure halfway still destroys what was created).
struct Descriptors {
  const cudnn::Api& api;
  cudnn::TensorDesc x = nullptr, y = nullptr, bias = nullptr;
  cudnn::FilterDesc w = nullptr;
  cudnn::ConvDesc conv = nullptr;
  cudnn::ActivationDesc act = nullptr;

  explicit Descriptors(const cudnn::Api& a) : api(a) {}
  ~Descriptors() {
    if (x) api.destroy_tensor(x);
    if (y) api.destroy_tensor(y);
    if (bias) api.destroy_tensor(bias);
    if (w) api.destroy_filter(w);
    if (conv) api.destroy_conv(conv);
    if (act) api.destroy_activation(act);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

  // x: N × C × H × W, y (and dy): N × F × OH × OW, bias (and db): 1 × F × 1 × 1, w: F × C/groups ×
  // kh × kw, all NCHW float; the convolution with FP32 math (sizes checked to fit an int).
  void describe(const ConvShape& g, int64_t N, int64_t F) {
    const int n = static_cast<int>(N), f = static_cast<int>(F);
    check_dnn(api, api.create_tensor(&x), "cudnnCreateTensorDescriptor");
    check_dnn(api, api.set_tensor_4d(x, cudnn::kTensorNchw, cudnn::kDataFloat, n, static_cast<int>(g.C),
                                     static_cast<int>(g.H), static_cast<int>(g.W)),
              "cudnnSetTensor4dDescriptor (x)");
    check_dnn(api, api.create_tensor(&y), "cudnnCreateTensorDescriptor");
    check_dnn(api, api.set_tensor_4d(y, cudnn::kTensorNchw, cudnn::kDataFloat, n, f, static_cast<int>(g.OH),
                                     static_cast<int>(g.OW)),
              "cudnnSetTensor4dDescriptor (y)");
    check_dnn(api, api.create_tensor(&bias), "cudnnCreateTensorDescriptor");
    check_dnn(api, api.set_tensor_4d(bias, cudnn::kTensorNchw, cudnn::kDataFloat, 1, f, 1, 1),
              "cudnnSetTensor4dDescriptor (bias)");
    check_dnn(api, api.create_filter(&w), "cudnnCreateFilterDescriptor");
    check_dnn(api, api.set_filter_4d(w, cudnn::kDataFloat, cudnn::kTensorNchw, f, static_cast<int>(g.C / g.groups),
                                     static_cast<int>(g.kh), static_cast<int>(g.kw)),
              "cudnnSetFilter4dDescriptor");
    check_dnn(api, api.create_conv(&conv), "cudnnCreateConvolutionDescriptor");
    check_dnn(api, api.set_conv_2d(conv, static_cast<int>(g.pad_top), static_cast<int>(g.pad_left),
                                   static_cast<int>(g.stride_h), static_cast<int>(g.stride_w),
                                   static_cast<int>(g.dil_h), static_cast<int>(g.dil_w), cudnn::kCrossCorrelation,
                                   cudnn::kDataFloat),
              "cudnnSetConvolution2dDescriptor");
    check_dnn(api, api.set_conv_groups(conv, static_cast<int>(g.groups)), "cudnnSetConvolutionGroupCount");
    check_dnn(api, api.set_conv_math(conv, cudnn::kFmaMath), "cudnnSetConvolutionMathType");
  }
};

using WorkspaceQuery = std::function<cudnn::Status(int algo, size_t* bytes)>;
using AlgorithmList = std::function<cudnn::Status(int requested, int* returned, cudnn::AlgoPerf* perf)>;

// A deterministic FMA-math algorithm of a backward pass and its workspace: `preferred` when cuDNN
// takes it for this problem (its workspace query succeeds), else the first of cuDNN's ranked list
// (empty `list`: none) that is deterministic, not Tensor-Core math, and supported.
int backward_algorithm(const cudnn::Api& api, int preferred, const WorkspaceQuery& workspace_of,
                       const AlgorithmList& list, size_t* bytes, const char* what) {
  if (workspace_of(preferred, bytes) == 0) return preferred;
  if (list) {
    constexpr int kMaxAlgorithms = 8;
    cudnn::AlgoPerf perf[kMaxAlgorithms] = {};
    int returned = 0;
    check_dnn(api, list(kMaxAlgorithms, &returned, perf), what);
    for (int i = 0; i < returned && i < kMaxAlgorithms; ++i)
      if (perf[i].status == 0 && perf[i].determinism == cudnn::kDeterministic &&
          (perf[i].math_type == 0 || perf[i].math_type == cudnn::kFmaMath) && workspace_of(perf[i].algo, bytes) == 0)
        return perf[i].algo;
  }
  throw std::runtime_error(std::string(what) + ": cuDNN has no deterministic FP32 algorithm for this geometry");
}

}  // namespace

void conv2d_forward_cudnn(const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F,
                          const float* bias, Activation activation, float leaky_slope, float* y, Stream cuda_stream) {
  const cudnn::Api& api = checked_api(g, N, F, "conv2d_forward_cudnn");
  if (N == 0 || g.OH == 0 || g.OW == 0) return;
  cudnn::Handle h = handle_for(api, cuda_stream);
  Descriptors d(api);
  d.describe(g, N, F);
  const int algo = cudnn::kFwdImplicitPrecompGemm;
  size_t bytes = 0;
  check_dnn(api, api.fwd_workspace(h, d.x, d.w, d.conv, d.y, algo, &bytes), "cudnnGetConvolutionForwardWorkspaceSize");
  StreamBuffer ws(bytes, cuda_stream, "cudaMallocAsync (cuDNN workspace)");
  const float one = 1.f, zero = 0.f;
  // cuDNN adds the bias and applies ReLU itself; every other activation is the epilogue's pass.
  const bool fused_relu = bias && activation == Activation::relu;
  if (bias) {
    check_dnn(api, api.create_activation(&d.act), "cudnnCreateActivationDescriptor");
    check_dnn(api,
              api.set_activation(d.act, fused_relu ? cudnn::kActivationRelu : cudnn::kActivationIdentity,
                                 cudnn::kPropagateNan, 0.0),
              "cudnnSetActivationDescriptor");
    // z = y with alpha2 = 0: cuDNN's y = act(alpha1·conv + alpha2·z + bias) without a z term.
    check_dnn(api,
              api.fwd_bias_act(h, &one, d.x, x, d.w, w, d.conv, algo, ws.p, bytes, &zero, d.y, y, d.bias, bias,
                               d.act, d.y, y),
              "cudnnConvolutionBiasActivationForward");
  } else {
    check_dnn(api, api.fwd(h, &one, d.x, x, d.w, w, d.conv, algo, ws.p, bytes, &zero, d.y, y),
              "cudnnConvolutionForward");
  }
  if (activation != Activation::identity && !fused_relu) {
    GemmEpilogue ep;
    ep.activation = activation;
    ep.leaky_slope = leaky_slope;
    apply_epilogue(ep, 0, N * F, g.OH * g.OW, y, g.OH * g.OW, cuda_stream);
  }
}

void conv2d_backward_cudnn(const float* dy, const float* x, int64_t N, const ConvShape& g, const float* w, int64_t F,
                           float* dx, float* dw, float* db, Stream cuda_stream) {
  const cudnn::Api& api = checked_api(g, N, F, "conv2d_backward_cudnn");
  DROPNET_CHECK(dw != nullptr || db == nullptr,
                "conv2d_backward_cudnn: a bias gradient needs the weight gradient dw too");
  if (N == 0 || g.OH == 0 || g.OW == 0) {  // no output pixel: dx = 0, nothing adds to dw or db
    if (dx)
      check_rt(cudaMemsetAsync(dx, 0, static_cast<size_t>(N * g.C * g.H * g.W) * sizeof(float), cuda_stream),
               "cudaMemsetAsync (dx)");
    return;
  }
  cudnn::Handle h = handle_for(api, cuda_stream);
  Descriptors d(api);
  d.describe(g, N, F);
  const float one = 1.f, zero = 0.f;
  if (dx) {
    size_t bytes = 0;
    AlgorithmList list;  // empty: the library has no ranked list
    if (api.bwd_data_algorithms)
      list = [&](int n, int* r, cudnn::AlgoPerf* p) {
        return api.bwd_data_algorithms(h, d.w, d.y, d.conv, d.x, n, r, p);
      };
    const int algo = backward_algorithm(
        api, cudnn::kBwdDataAlgo1,
        [&](int a, size_t* b) { return api.bwd_data_workspace(h, d.w, d.y, d.conv, d.x, a, b); }, list, &bytes,
        "conv2d_backward_cudnn (input gradient)");
    StreamBuffer ws(bytes, cuda_stream, "cudaMallocAsync (cuDNN workspace)");
    check_dnn(api, api.bwd_data(h, &one, d.w, w, d.y, dy, d.conv, algo, ws.p, bytes, &zero, d.x, dx),
              "cudnnConvolutionBackwardData");
  }
  if (dw) {
    size_t bytes = 0;
    AlgorithmList list;
    if (api.bwd_filter_algorithms)
      list = [&](int n, int* r, cudnn::AlgoPerf* p) {
        return api.bwd_filter_algorithms(h, d.x, d.y, d.conv, d.w, n, r, p);
      };
    const int algo = backward_algorithm(
        api, cudnn::kBwdFilterAlgo1,
        [&](int a, size_t* b) { return api.bwd_filter_workspace(h, d.x, d.y, d.conv, d.w, a, b); }, list, &bytes,
        "conv2d_backward_cudnn (weight gradient)");
    StreamBuffer ws(bytes, cuda_stream, "cudaMallocAsync (cuDNN workspace)");
    check_dnn(api, api.bwd_filter(h, &one, d.x, x, d.y, dy, d.conv, algo, ws.p, bytes, &one, d.w, dw),
              "cudnnConvolutionBackwardFilter");
  }
  if (db) check_dnn(api, api.bwd_bias(h, &one, d.y, dy, &one, d.bias, db), "cudnnConvolutionBackwardBias");
}

}  // namespace cuda
}  // namespace dropnet

// The subset of cuDNN's legacy convolution API (cudnn_graph.h and cudnn_cnn.h of cuDNN 9; cudnn.h
// of cuDNN 8, the same names, values and signatures) that the cuDNN backend of the convolution
// calls (kernels/cuda/conv2d_cudnn.cu), declared by hand and bound at run time from the library
// that nvidia_library(NvidiaLibrary::cudnn) opened (kernels/cuda/libraries.h): no cuDNN header or
// library is needed to build, and the extension imports without it. Plain C++ (the stream is
// cuda::Stream), built in every build, so the loader's verdict is tested everywhere.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {
namespace cudnn {

using Status = int;  // cudnnStatus_t: 0 is CUDNN_STATUS_SUCCESS (the other values differ between 8 and 9)
using Handle = void*;
using TensorDesc = void*;
using FilterDesc = void*;
using ConvDesc = void*;
using ActivationDesc = void*;

constexpr int kDataFloat = 0;              // cudnnDataType_t CUDNN_DATA_FLOAT
constexpr int kTensorNchw = 0;             // cudnnTensorFormat_t CUDNN_TENSOR_NCHW
constexpr int kCrossCorrelation = 1;       // cudnnConvolutionMode_t CUDNN_CROSS_CORRELATION
constexpr int kFmaMath = 3;                // cudnnMathType_t CUDNN_FMA_MATH: no Tensor Cores, so no TF32
constexpr int kActivationRelu = 1;         // cudnnActivationMode_t CUDNN_ACTIVATION_RELU
constexpr int kActivationIdentity = 5;     // CUDNN_ACTIVATION_IDENTITY
constexpr int kPropagateNan = 1;           // cudnnNanPropagation_t CUDNN_PROPAGATE_NAN
// cudnnConvolutionFwdAlgo_t CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM (what the fused bias + activation takes)
constexpr int kFwdImplicitPrecompGemm = 1;
constexpr int kBwdDataAlgo1 = 1;           // cudnnConvolutionBwdDataAlgo_t CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
constexpr int kBwdFilterAlgo1 = 1;         // cudnnConvolutionBwdFilterAlgo_t CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1
constexpr int kDeterministic = 1;          // cudnnDeterminism_t CUDNN_DETERMINISTIC

// cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionBwdDataAlgoPerf_t and
// cudnnConvolutionBwdFilterAlgoPerf_t: one layout (the algorithm an enum, i.e. an int).
struct AlgoPerf {
  int algo;
  Status status;
  float time;
  size_t memory;
  int determinism;
  int math_type;
  int reserved[3];
};

struct Api {
  Status (*create)(Handle*);
  Status (*set_stream)(Handle, Stream);
  const char* (*error_string)(Status);
  Status (*create_tensor)(TensorDesc*);
  Status (*set_tensor_4d)(TensorDesc, int format, int data_type, int n, int c, int h, int w);
  Status (*destroy_tensor)(TensorDesc);
  Status (*create_filter)(FilterDesc*);
  Status (*set_filter_4d)(FilterDesc, int data_type, int format, int k, int c, int h, int w);
  Status (*destroy_filter)(FilterDesc);
  Status (*create_conv)(ConvDesc*);
  Status (*set_conv_2d)(ConvDesc, int pad_h, int pad_w, int u, int v, int dil_h, int dil_w, int mode,
                        int compute_type);
  Status (*set_conv_groups)(ConvDesc, int groups);
  Status (*set_conv_math)(ConvDesc, int math_type);
  Status (*destroy_conv)(ConvDesc);
  Status (*create_activation)(ActivationDesc*);
  Status (*set_activation)(ActivationDesc, int mode, int nan_opt, double coef);
  Status (*destroy_activation)(ActivationDesc);
  Status (*fwd_workspace)(Handle, TensorDesc x, FilterDesc w, ConvDesc, TensorDesc y, int algo, size_t*);
  Status (*fwd)(Handle, const void* alpha, TensorDesc, const void* x, FilterDesc, const void* w, ConvDesc, int algo,
                void* ws, size_t ws_bytes, const void* beta, TensorDesc, void* y);
  Status (*fwd_bias_act)(Handle, const void* alpha1, TensorDesc, const void* x, FilterDesc, const void* w, ConvDesc,
                         int algo, void* ws, size_t ws_bytes, const void* alpha2, TensorDesc z_desc, const void* z,
                         TensorDesc bias_desc, const void* bias, ActivationDesc, TensorDesc y_desc, void* y);
  Status (*bwd_data_workspace)(Handle, FilterDesc w, TensorDesc dy, ConvDesc, TensorDesc dx, int algo, size_t*);
  Status (*bwd_data)(Handle, const void* alpha, FilterDesc, const void* w, TensorDesc, const void* dy, ConvDesc,
                     int algo, void* ws, size_t ws_bytes, const void* beta, TensorDesc, void* dx);
  Status (*bwd_filter_workspace)(Handle, TensorDesc x, TensorDesc dy, ConvDesc, FilterDesc dw, int algo, size_t*);
  Status (*bwd_filter)(Handle, const void* alpha, TensorDesc, const void* x, TensorDesc, const void* dy, ConvDesc,
                       int algo, void* ws, size_t ws_bytes, const void* beta, FilterDesc, void* dw);
  Status (*bwd_bias)(Handle, const void* alpha, TensorDesc, const void* dy, const void* beta, TensorDesc, void* db);
  // Optional (null when the library lacks them): the heuristics' ranked lists, asked only when the
  // preferred deterministic algorithm does not take a geometry.
  Status (*bwd_data_algorithms)(Handle, FilterDesc, TensorDesc, ConvDesc, TensorDesc, int requested, int* returned,
                                AlgoPerf*);
  Status (*bwd_filter_algorithms)(Handle, TensorDesc, TensorDesc, ConvDesc, FilterDesc, int requested, int* returned,
                                  AlgoPerf*);
  std::string reason;  // empty when every required symbol was found
};

// The process's table, bound on the first call (thread-safe, once).
const Api& api();

}  // namespace cudnn

// Empty when cuDNN can be loaded with every function the convolution needs; otherwise why not
// (the sonames tried and the loader's message, or the first missing symbol).
std::string cudnn_unavailable_reason();

}  // namespace cuda
}  // namespace dropnet

// The descriptors of the dense layers' elementwise work, shared by the CPU kernels
// (kernels/cpu/gemm.h, kernels/cpu/activation.h, which document the contracts) and their CUDA
// twins (kernels/cuda/activation.h): the GEMM epilogue's activations and descriptor, and the
// activations of the standalone layer and of every backward pass.
#pragma once
#include <cstdint>

namespace dropnet {

// The GEMM epilogue's activations.
enum class Activation : int { identity = 0, relu, leaky_relu, tanh, sigmoid, gelu };

// The first six values match Activation so a kind converts by value.
// elu: x > 0 ? x : slope·expm1(x) (slope = alpha); only as a standalone Activation layer.
enum class ActivationKind : int { identity = 0, relu, leaky_relu, tanh, sigmoid, gelu, selu, softmax, elu };

constexpr float kSeluAlpha = 1.6732632423543772f;
constexpr float kSeluLambda = 1.0507009873554805f;

// The epilogue of one GEMM (its order of operations: kernels/cpu/gemm.h).
struct GemmEpilogue {
  const float* bias = nullptr;
  Activation activation = Activation::identity;
  float leaky_slope = 0.01f;
  float* pre_activation = nullptr;  // M × N, contiguous
  bool dropout = false;
  uint32_t threshold = 0;  // keep_threshold(p), computed in double on the host
  float scale = 1.0f;      // 1 / (1 - p)
  uint64_t seed = 0, stream = 0;
  // Philox element index of C[0][0]: element (row, col) draws word index_offset + row*N + col
  // (a data-parallel rank's global row offset times N); mask bits and pre_activation stay local.
  uint64_t index_offset = 0;
  uint64_t* mask_bits = nullptr;  // ceil(M*N / 64) words, bit i = keep of element i (optional)
};

}  // namespace dropnet

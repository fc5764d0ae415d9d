// Which implementation runs cuda::conv2d_forward / conv2d_backward (kernels/cuda/conv2d.h), chosen
// per process: set_conv_backend, or DROPNET_CUDA_CONV=implicit_gemm|cudnn read at the first call.
//  - ConvBackend::implicit_gemm (the default): our kernel, the same bytes on every GPU
//    (docs/design.md, "Device kernels").
//  - ConvBackend::cudnn: cuDNN, opened at run time (kernels/cuda/cudnn_api.h), deterministic
//    algorithms and FP32 math only: the same bytes run to run on one GPU model and cuDNN version,
//    within the float32 bound of the sums otherwise. A geometry cuDNN cannot express (padding whose
//    bottom or right edge changes the output size of a symmetric pad, cudnn_conv_unsupported) and
//    an empty problem run on the implicit GEMM.
// Plain C++ (no CUDA header), built in every build, so the choice is tested everywhere.
#pragma once
#include <string>

#include "dropnet/kernels/cuda/conv2d_body.h"

namespace dropnet {
namespace cuda {

enum class ConvBackend : int { implicit_gemm = 0, cudnn = 1 };

// The backend the convolution uses from now on (every thread of the process).
void set_conv_backend(ConvBackend backend);
// The backend in use: set_conv_backend's, else DROPNET_CUDA_CONV's (read once), else implicit_gemm.
// An unknown DROPNET_CUDA_CONV value throws std::invalid_argument naming the accepted values.
ConvBackend conv_backend();
const char* conv_backend_name(ConvBackend backend);
// The backend a DROPNET_CUDA_CONV value names: null or empty is implicit_gemm; "implicit_gemm",
// "cudnn"; anything else throws std::invalid_argument naming the accepted values and what came.
ConvBackend parse_conv_backend(const char* value);

// Empty when cuDNN's legacy convolution API can run this geometry as given; otherwise why not.
// cuDNN pads symmetrically (pad_top above and below, pad_left left and right), so the output size
// that padding gives must be the geometry's OH × OW; every size must fit cuDNN's int.
std::string cudnn_conv_unsupported(const ConvShape& g, int64_t N, int64_t F);

}  // namespace cuda
}  // namespace dropnet

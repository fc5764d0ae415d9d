// cuDNN's legacy convolution API bound at run time (cudnn_api.h).
#include "dropnet/kernels/cuda/cudnn_api.h"

#include "dropnet/kernels/cuda/libraries.h"

namespace dropnet {
namespace cuda {
namespace cudnn {

const Api& api() {
  static const Api table = [] {
    Api a{};
    const DynamicLibrary& lib = nvidia_library(NvidiaLibrary::cudnn);
    if (!lib.loaded()) {
      a.reason = std::string("cuDNN not found (") + lib.reason() + ")";
      return a;
    }
    lib.bind("cudnnCreate", &a.create, &a.reason);
    lib.bind("cudnnSetStream", &a.set_stream, &a.reason);
    lib.bind("cudnnGetErrorString", &a.error_string, &a.reason);
    lib.bind("cudnnCreateTensorDescriptor", &a.create_tensor, &a.reason);
    lib.bind("cudnnSetTensor4dDescriptor", &a.set_tensor_4d, &a.reason);
    lib.bind("cudnnDestroyTensorDescriptor", &a.destroy_tensor, &a.reason);
    lib.bind("cudnnCreateFilterDescriptor", &a.create_filter, &a.reason);
    lib.bind("cudnnSetFilter4dDescriptor", &a.set_filter_4d, &a.reason);
    lib.bind("cudnnDestroyFilterDescriptor", &a.destroy_filter, &a.reason);
    lib.bind("cudnnCreateConvolutionDescriptor", &a.create_conv, &a.reason);
    lib.bind("cudnnSetConvolution2dDescriptor", &a.set_conv_2d, &a.reason);
    lib.bind("cudnnSetConvolutionGroupCount", &a.set_conv_groups, &a.reason);
    lib.bind("cudnnSetConvolutionMathType", &a.set_conv_math, &a.reason);
    lib.bind("cudnnDestroyConvolutionDescriptor", &a.destroy_conv, &a.reason);
    lib.bind("cudnnCreateActivationDescriptor", &a.create_activation, &a.reason);
    lib.bind("cudnnSetActivationDescriptor", &a.set_activation, &a.reason);
    lib.bind("cudnnDestroyActivationDescriptor", &a.destroy_activation, &a.reason);
    lib.bind("cudnnGetConvolutionForwardWorkspaceSize", &a.fwd_workspace, &a.reason);
    lib.bind("cudnnConvolutionForward", &a.fwd, &a.reason);
    lib.bind("cudnnConvolutionBiasActivationForward", &a.fwd_bias_act, &a.reason);
    lib.bind("cudnnGetConvolutionBackwardDataWorkspaceSize", &a.bwd_data_workspace, &a.reason);
    lib.bind("cudnnConvolutionBackwardData", &a.bwd_data, &a.reason);
    lib.bind("cudnnGetConvolutionBackwardFilterWorkspaceSize", &a.bwd_filter_workspace, &a.reason);
    lib.bind("cudnnConvolutionBackwardFilter", &a.bwd_filter, &a.reason);
    lib.bind("cudnnConvolutionBackwardBias", &a.bwd_bias, &a.reason);
    std::string optional;  // their absence only narrows the geometries the backward takes
    lib.bind("cudnnGetConvolutionBackwardDataAlgorithm_v7", &a.bwd_data_algorithms, &optional);
    lib.bind("cudnnGetConvolutionBackwardFilterAlgorithm_v7", &a.bwd_filter_algorithms, &optional);
    return a;
  }();
  return table;
}

}  // namespace cudnn

std::string cudnn_unavailable_reason() { return cudnn::api().reason; }

}  // namespace cuda
}  // namespace dropnet

// CUDA twin of cpu::sgemm (kernels/cpu/gemm.h): the same arguments and contract, *device*
// pointers (A, B, C and the epilogue's bias, pre_activation and mask_bits), a stream (null: the
// default stream); asynchronous, std::runtime_error naming the call when a launch fails.
//   C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C, then the epilogue on each C element
// (bias, activation, pre-activation, inverted dropout with mask bits; core/epilogue.h).
//
// Two backends, chosen per process (set_dense_backend, or DROPNET_CUDA_DENSE=dropnet|cublaslt
// read at the first call):
//  - DenseBackend::dropnet (the default): our tiled kernel (kernels/cuda/gemm_body.h). Each element
//    of C follows the CPU's canonical order (docs/design.md, "Canonical reduction orders": K in
//    blocks of gemm_k_block(K), one fmaf chain per block), and the epilogue is the CPU's element
//    function, so the result is cpu::sgemm's bits on every GPU, run after run, with or without
//    the workspace.
//  - DenseBackend::cublaslt: cuBLASLt, opened at run time (kernels/cuda/libraries.h), with its
//    bias / ReLU epilogue where the epilogue is only that; the rest of an epilogue runs as
//    cuda::apply_epilogue after the product. Deterministic run to run on one GPU model (one
//    algorithm per shape, chosen once; no split-K reduction), but not the CPU's bits: its
//    summation order is its own; the workspace is not used (cuBLASLt has its own, allocated once per
//    device). When cuBLASLt cannot be loaded the call throws, naming why.
//
// Never run on a GPU yet (docs/design.md, "Device kernels").
#pragma once
#include <cstdint>
#include <string>

#include "dropnet/core/epilogue.h"
#include "dropnet/kernels/cuda/stream.h"

namespace dropnet {
namespace cuda {

// workspace (optional, device memory of workspace_floats floats, not shared with a call running
// at the same time on another stream): with sgemm_workspace(M, N, K) floats or more, a small
// product is split over its K blocks (more blocks of the GPU at work, the same bits); without it,
// or when sgemm_workspace gives 0, the product runs in place.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue* epilogue = nullptr,
           Stream stream = nullptr, float* workspace = nullptr, int64_t workspace_floats = 0);

// Floats of workspace that let sgemm split this product (0: it never splits it). A function of the
// shape alone; grow-only buffers sized by it need no reallocation from step to step.
int64_t sgemm_workspace(int64_t M, int64_t N, int64_t K);

enum class DenseBackend : int { dropnet = 0, cublaslt = 1 };

// The backend sgemm uses from now on (every thread of the process).
void set_dense_backend(DenseBackend backend);
// The backend in use: set_dense_backend's, else DROPNET_CUDA_DENSE's (read once), else dropnet.
// An unknown DROPNET_CUDA_DENSE value throws std::invalid_argument naming the accepted values.
DenseBackend dense_backend();
const char* dense_backend_name(DenseBackend backend);
// The backend a DROPNET_CUDA_DENSE value names: null or empty is dropnet; "dropnet", "cublaslt";
// anything else throws std::invalid_argument naming the accepted values and what came.
DenseBackend parse_dense_backend(const char* value);

// The product alone through cuBLASLt (no epilogue fused), whatever the backend: for benchmarks
// and tests that compare the two. Throws std::runtime_error when cuBLASLt is unavailable.
void sgemm_cublaslt(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                    const GemmEpilogue* epilogue = nullptr, Stream stream = nullptr);

// Empty when cuBLASLt can be loaded; otherwise why not (the sonames tried and the loader's message).
std::string cublaslt_unavailable_reason();

}  // namespace cuda
}  // namespace dropnet

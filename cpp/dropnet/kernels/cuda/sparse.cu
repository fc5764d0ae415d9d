// cuSPARSE twins of the pruned layer's products (sparse.h), cuSPARSE opened at run time
// (kernels/cuda/libraries.h), its generic C API subset declared below (no cuSPARSE header or
// library is needed to build), plus the two layout conversions (kernels/cuda/sparse_body.h).
//
// Layouts: every dense operand is row-major here, which cuSPARSE reads as its column-major
// transpose: X (M × K, ldx) is Xᵀ (K × M, ld ldx), so Yᵀ = S · Xᵀ is SpMM with the sparse matrix
// not transposed (ALG_DEFAULT; cuSPARSE documents only its transposed SpMM as not reproducible);
// the SDDMM takes dY and X row-major with dY transposed: (dYᵀ · X) ∘ spy(S).
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "dropnet/kernels/cuda/launch.cuh"
#include "dropnet/kernels/cuda/libraries.h"
#include "dropnet/kernels/cuda/sparse.h"
#include "dropnet/kernels/cuda/sparse_body.h"

namespace dropnet {
namespace cuda {
namespace {

__global__ void csr_indptr_to_int32_kernel(const int64_t* indptr, int64_t n, int32_t* out, Grid g) {
  csr_indptr_to_int32_thread(indptr, n, out, g, blockIdx.x, threadIdx.x);
}
__global__ void csr_gather_values_kernel(const float* values, const int64_t* value_index, int64_t nnz, float* out,
                                         Grid g) {
  csr_gather_values_thread(values, value_index, nnz, out, g, blockIdx.x, threadIdx.x);
}
__global__ void csr_gather_dense_kernel(const float* dense, int64_t rows, int64_t cols, const int64_t* indptr,
                                        const int32_t* indices, float* values, Grid g) {
  csr_gather_dense_thread(dense, rows, cols, indptr, indices, values, g, blockIdx.x, threadIdx.x);
}
__global__ void csr_scatter_dense_kernel(const float* values, int64_t rows, int64_t cols, const int64_t* indptr,
                                         const int32_t* indices, float* dense, Grid g) {
  csr_scatter_dense_thread(values, rows, cols, indptr, indices, dense, g, blockIdx.x, threadIdx.x);
}

// ------------------------------------------------------------------ cuSPARSE through dlopen
// The subset of cusparse.h (CUDA 12 / 13, the same values in both) this file calls.
using cusparseStatus_t = int;
using cusparseHandle_t = void*;
using cusparseSpMatDescr_t = void*;
using cusparseDnMatDescr_t = void*;
constexpr int kCudaR32F = 0;                  // cudaDataType CUDA_R_32F
constexpr int kIndex32I = 2;                  // CUSPARSE_INDEX_32I
constexpr int kIndexBaseZero = 0;             // CUSPARSE_INDEX_BASE_ZERO
constexpr int kOrderCol = 1, kOrderRow = 2;   // cusparseOrder_t (CUDA 12+)
constexpr int kOpN = 0, kOpT = 1;             // cusparseOperation_t
constexpr int kSpmmAlgDefault = 0, kSddmmAlgDefault = 0;

struct CusparseApi {
  cusparseStatus_t (*create)(cusparseHandle_t*);
  cusparseStatus_t (*set_stream)(cusparseHandle_t, cudaStream_t);
  cusparseStatus_t (*create_csr)(cusparseSpMatDescr_t*, int64_t, int64_t, int64_t, void*, void*, void*, int, int, int,
                                 int);
  cusparseStatus_t (*destroy_sp)(cusparseSpMatDescr_t);
  cusparseStatus_t (*create_dn)(cusparseDnMatDescr_t*, int64_t, int64_t, int64_t, void*, int, int);
  cusparseStatus_t (*destroy_dn)(cusparseDnMatDescr_t);
  cusparseStatus_t (*spmm_buffer)(cusparseHandle_t, int, int, const void*, cusparseSpMatDescr_t, cusparseDnMatDescr_t,
                                  const void*, cusparseDnMatDescr_t, int, int, size_t*);
  cusparseStatus_t (*spmm)(cusparseHandle_t, int, int, const void*, cusparseSpMatDescr_t, cusparseDnMatDescr_t,
                           const void*, cusparseDnMatDescr_t, int, int, void*);
  cusparseStatus_t (*sddmm_buffer)(cusparseHandle_t, int, int, const void*, cusparseDnMatDescr_t, cusparseDnMatDescr_t,
                                   const void*, cusparseSpMatDescr_t, int, int, size_t*);
  cusparseStatus_t (*sddmm)(cusparseHandle_t, int, int, const void*, cusparseDnMatDescr_t, cusparseDnMatDescr_t,
                            const void*, cusparseSpMatDescr_t, int, int, void*);
  std::string reason;  // empty when every symbol was found
};

const CusparseApi& cusparse_api() {
  static const CusparseApi api = [] {
    CusparseApi a{};
    const DynamicLibrary& lib = nvidia_library(NvidiaLibrary::cusparse);
    if (!lib.loaded()) {
      a.reason = std::string("cuSPARSE not found (") + lib.reason() + ")";
      return a;
    }
    lib.bind("cusparseCreate", &a.create, &a.reason);
    lib.bind("cusparseSetStream", &a.set_stream, &a.reason);
    lib.bind("cusparseCreateCsr", &a.create_csr, &a.reason);
    lib.bind("cusparseDestroySpMat", &a.destroy_sp, &a.reason);
    lib.bind("cusparseCreateDnMat", &a.create_dn, &a.reason);
    lib.bind("cusparseDestroyDnMat", &a.destroy_dn, &a.reason);
    lib.bind("cusparseSpMM_bufferSize", &a.spmm_buffer, &a.reason);
    lib.bind("cusparseSpMM", &a.spmm, &a.reason);
    lib.bind("cusparseSDDMM_bufferSize", &a.sddmm_buffer, &a.reason);
    lib.bind("cusparseSDDMM", &a.sddmm, &a.reason);
    return a;
  }();
  return api;
}

void check_sp(cusparseStatus_t s, const char* call) {
  if (s != 0) throw std::runtime_error(std::string("cuSPARSE error in ") + call + ": status " + std::to_string(s));
}

// The handles, one per device, created on first use and kept; every call holds the mutex from
// cusparseSetStream to its last cuSPARSE call, so two threads never share a handle's stream.
std::mutex g_sp_mutex;
std::map<int, cusparseHandle_t> g_sp_handles;

const CusparseApi& api_or_throw(const char* what) {
  const CusparseApi& api = cusparse_api();
  if (!api.reason.empty()) throw std::runtime_error(std::string(what) + ": " + api.reason);
  return api;
}

cusparseHandle_t handle_for_current_device(const CusparseApi& api) {
  int device = 0;
  check_rt(cudaGetDevice(&device), "cudaGetDevice");
  cusparseHandle_t& h = g_sp_handles[device];
  if (!h) check_sp(api.create(&h), "cusparseCreate");
  return h;
}

// Descriptors destroyed on scope exit, whatever throws.
struct Descriptors {
  const CusparseApi& api;
  cusparseSpMatDescr_t sp = nullptr;
  cusparseDnMatDescr_t a = nullptr, b = nullptr;
  ~Descriptors() {
    if (sp) api.destroy_sp(sp);
    if (a) api.destroy_dn(a);
    if (b) api.destroy_dn(b);
  }
};

void check_csr(const CsrMatrix32& S, const char* what) {
  if (S.rows < 0 || S.cols < 0 || S.nnz < 0 || (S.rows > 0 && !S.indptr) || (S.nnz > 0 && !S.indices))
    throw std::invalid_argument(std::string(what) + ": a CSR matrix needs rows, cols, nnz >= 0 and its row offsets and "
                                "column indices");
}

void check_ld(int64_t ld, int64_t cols, const char* name, const char* what) {
  if (ld < cols)
    throw std::invalid_argument(std::string(what) + ": " + name + " = " + std::to_string(ld) + " must be >= " +
                                std::to_string(cols));
}

}  // namespace

void csr_indptr_to_int32(const int64_t* indptr, int64_t n, int32_t* out, Stream stream) {
  if (n <= 0) return;
  const Grid g = grid_for(n);
  csr_indptr_to_int32_kernel<<<g.blocks, g.threads, 0, stream>>>(indptr, n, out, g);
  check_launch("csr_indptr_to_int32");
}

void csr_gather_values(const float* values, const int64_t* value_index, int64_t nnz, float* out, Stream stream) {
  if (nnz <= 0) return;
  const Grid g = grid_for(nnz);
  csr_gather_values_kernel<<<g.blocks, g.threads, 0, stream>>>(values, value_index, nnz, out, g);
  check_launch("csr_gather_values");
}

void csr_gather_dense(const float* dense, int64_t rows, int64_t cols, const int64_t* indptr, const int32_t* indices,
                      float* values, Stream stream) {
  if (rows <= 0) return;
  const Grid g = grid_for(rows);
  csr_gather_dense_kernel<<<g.blocks, g.threads, 0, stream>>>(dense, rows, cols, indptr, indices, values, g);
  check_launch("csr_gather_dense");
}

void csr_scatter_dense(const float* values, int64_t rows, int64_t cols, const int64_t* indptr, const int32_t* indices,
                       float* dense, Stream stream) {
  if (rows <= 0) return;
  const Grid g = grid_for(rows);
  csr_scatter_dense_kernel<<<g.blocks, g.threads, 0, stream>>>(values, rows, cols, indptr, indices, dense, g);
  check_launch("csr_scatter_dense");
}

void spmm_xt_cusparse(int64_t M, const float* X, int64_t ldx, const CsrMatrix32& S, float* Y, int64_t ldy,
                      Stream stream) {
  check_csr(S, "spmm_xt_cusparse");
  check_ld(ldx, S.cols, "ldx", "spmm_xt_cusparse");
  check_ld(ldy, S.rows, "ldy", "spmm_xt_cusparse");
  if (M <= 0 || S.rows <= 0) return;
  const CusparseApi& api = api_or_throw("spmm_xt_cusparse");
  if (S.nnz == 0) {  // every row empty: Y = 0, without asking cuSPARSE about an empty matrix
    const size_t pitch = static_cast<size_t>(ldy) * sizeof(float), width = static_cast<size_t>(S.rows) * sizeof(float);
    check_rt(cudaMemset2DAsync(Y, pitch, 0, width, static_cast<size_t>(M), stream), "cudaMemset2DAsync");
    return;
  }
  std::lock_guard<std::mutex> lock(g_sp_mutex);
  cusparseHandle_t h = handle_for_current_device(api);
  check_sp(api.set_stream(h, stream), "cusparseSetStream");
  Descriptors d{api};
  const float alpha = 1.f, beta = 0.f;
  check_sp(api.create_csr(&d.sp, S.rows, S.cols, S.nnz, const_cast<int32_t*>(S.indptr), const_cast<int32_t*>(S.indices),
                          const_cast<float*>(S.values), kIndex32I, kIndex32I, kIndexBaseZero, kCudaR32F),
           "cusparseCreateCsr");
  // Xᵀ (cols × M) and Yᵀ (rows × M), column-major: the row-major X and Y as they are.
  check_sp(api.create_dn(&d.a, S.cols, M, ldx, const_cast<float*>(X), kCudaR32F, kOrderCol), "cusparseCreateDnMat (X)");
  check_sp(api.create_dn(&d.b, S.rows, M, ldy, Y, kCudaR32F, kOrderCol), "cusparseCreateDnMat (Y)");
  size_t bytes = 0;
  check_sp(api.spmm_buffer(h, kOpN, kOpN, &alpha, d.sp, d.a, &beta, d.b, kCudaR32F, kSpmmAlgDefault, &bytes),
           "cusparseSpMM_bufferSize");
  StreamBuffer buffer(bytes, stream, "cudaMallocAsync (cuSPARSE buffer)");
  check_sp(api.spmm(h, kOpN, kOpN, &alpha, d.sp, d.a, &beta, d.b, kCudaR32F, kSpmmAlgDefault, buffer.p),
           "cusparseSpMM");
}

void sddmm_cusparse(int64_t M, const float* dY, int64_t lddy, const float* X, int64_t ldx, const CsrMatrix32& S,
                    float* dW, bool accumulate, Stream stream) {
  check_csr(S, "sddmm_cusparse");
  check_ld(lddy, S.rows, "lddy", "sddmm_cusparse");
  check_ld(ldx, S.cols, "ldx", "sddmm_cusparse");
  if (S.nnz <= 0) return;
  const CusparseApi& api = api_or_throw("sddmm_cusparse");
  if (M <= 0) {  // an empty batch: the sums are 0
    if (!accumulate)
      check_rt(cudaMemsetAsync(dW, 0, static_cast<size_t>(S.nnz) * sizeof(float), stream), "cudaMemsetAsync");
    return;
  }
  std::lock_guard<std::mutex> lock(g_sp_mutex);
  cusparseHandle_t h = handle_for_current_device(api);
  check_sp(api.set_stream(h, stream), "cusparseSetStream");
  Descriptors d{api};
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  check_sp(api.create_csr(&d.sp, S.rows, S.cols, S.nnz, const_cast<int32_t*>(S.indptr), const_cast<int32_t*>(S.indices),
                          dW, kIndex32I, kIndex32I, kIndexBaseZero, kCudaR32F),
           "cusparseCreateCsr");
  // dY (M × rows) and X (M × cols) row-major; the product is dYᵀ · X.
  check_sp(api.create_dn(&d.a, M, S.rows, lddy, const_cast<float*>(dY), kCudaR32F, kOrderRow),
           "cusparseCreateDnMat (dY)");
  check_sp(api.create_dn(&d.b, M, S.cols, ldx, const_cast<float*>(X), kCudaR32F, kOrderRow), "cusparseCreateDnMat (X)");
  size_t bytes = 0;
  check_sp(api.sddmm_buffer(h, kOpT, kOpN, &alpha, d.a, d.b, &beta, d.sp, kCudaR32F, kSddmmAlgDefault, &bytes),
           "cusparseSDDMM_bufferSize");
  StreamBuffer buffer(bytes, stream, "cudaMallocAsync (cuSPARSE buffer)");
  check_sp(api.sddmm(h, kOpT, kOpN, &alpha, d.a, d.b, &beta, d.sp, kCudaR32F, kSddmmAlgDefault, buffer.p),
           "cusparseSDDMM");
}

std::string cusparse_unavailable_reason() { return cusparse_api().reason; }

}  // namespace cuda
}  // namespace dropnet

// CUDA dense GEMM (gemm.h): our tiled kernel, the tile program of kernels/cuda/tile_gemm_body.h
// with the GEMM's operands and writeback (kernels/cuda/gemm_body.h), one instantiation per
// transpose case, tile shape and pass (in place, or the split's chains), then the passes that
// follow it (gemm_plan); and the cuBLASLt backend, opened at run time (kernels/cuda/libraries.h), its
// C API declared below (no cuBLAS header or library is needed to build). Compiled with
// --fmad=false --ftz=true (the CPU's floating-point rules); the chains are written as fmaf.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "dropnet/kernels/cuda/activation.h"
#include "dropnet/kernels/cuda/gemm.h"
#include "dropnet/kernels/cuda/gemm_body.h"
#include "dropnet/kernels/cuda/launch.cuh"
#include "dropnet/kernels/cuda/libraries.h"

namespace dropnet {
namespace cuda {
namespace {

template <class S, class Op>
__global__ void __launch_bounds__(S::kThreads) gemm_tile_kernel(Op op, TileGemmLayout L) {
  __shared__ float shared[S::kSharedFloats];
  DeviceBlock blk;
  DeviceThreadArray<float, kTileAccumulators> regs;
  tile_gemm_block<S>(blk, op, L, shared, regs);
}

__global__ void gemm_scale_kernel(float* C, int64_t M, int64_t N, int64_t ldc, float beta, Grid g) {
  gemm_scale_thread(C, M, N, ldc, beta, g, blockIdx.x, threadIdx.x);
}

__global__ void gemm_combine_kernel(GemmArgs a, Grid g) { gemm_combine_thread(a, g, blockIdx.x, threadIdx.x); }

__global__ void gemm_combine_word_kernel(GemmArgs a, Grid g) {
  gemm_combine_word_thread(a, g, blockIdx.x, threadIdx.x);
}

template <class Op>
void launch_op(const GemmPlan& p, Stream stream) {
  const Op op{p.args};
  if (p.small_tiles) {
    const Grid g = tile_grid<Tile32>(p.layout);
    gemm_tile_kernel<Tile32, Op><<<g.blocks, g.threads, 0, stream>>>(op, p.layout);
  } else {
    const Grid g = tile_grid<Tile64>(p.layout);
    gemm_tile_kernel<Tile64, Op><<<g.blocks, g.threads, 0, stream>>>(op, p.layout);
  }
  check_launch("sgemm");
}

template <bool TA, bool TB>
void launch_tiles(const GemmPlan& p, Stream stream) {
  if (p.args.chains)  // split: the chains' own kernel (no writeback, no epilogue)
    launch_op<GemmTileOp<TA, TB, true>>(p, stream);
  else
    launch_op<GemmTileOp<TA, TB, false>>(p, stream);
}

void check_args(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                const char* what) {
  const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  if (M < 0 || N < 0 || K < 0)
    throw std::invalid_argument(std::string(what) + ": M, N, K must be >= 0, got " + std::to_string(M) + ", " +
                                std::to_string(N) + ", " + std::to_string(K));
  if (lda < a_cols || ldb < b_cols || ldc < N)
    throw std::invalid_argument(std::string(what) + ": leading dimensions too small: lda = " + std::to_string(lda) +
                                " (needs >= " + std::to_string(a_cols) + "), ldb = " + std::to_string(ldb) +
                                " (needs >= " + std::to_string(b_cols) + "), ldc = " + std::to_string(ldc) +
                                " (needs >= " + std::to_string(N) + ")");
}

void sgemm_dropnet(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                   const GemmEpilogue* epilogue, Stream stream, float* workspace = nullptr,
                   int64_t workspace_floats = 0) {
  const GemmPlan p =
      gemm_plan(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, workspace, workspace_floats);
  if (p.scale) {
    const Grid g = grid_for(M * N);
    gemm_scale_kernel<<<g.blocks, g.threads, 0, stream>>>(C, M, N, ldc, beta, g);
    check_launch("sgemm (beta · C)");
  }
  if (p.tiles) {
    if (trans_a)
      trans_b ? launch_tiles<true, true>(p, stream) : launch_tiles<true, false>(p, stream);
    else
      trans_b ? launch_tiles<false, true>(p, stream) : launch_tiles<false, false>(p, stream);
  }
  if (p.combine) {
    const Grid g = grid_for(M * N);
    gemm_combine_kernel<<<g.blocks, g.threads, 0, stream>>>(p.args, g);
    check_launch("sgemm (K blocks added)");
  }
  if (p.combine_words) {
    const Grid g = grid_for(epilogue_words(0, M, N).count);
    gemm_combine_word_kernel<<<g.blocks, g.threads, 0, stream>>>(p.args, g);
    check_launch("sgemm (K blocks added, epilogue)");
  }
  if (p.epilogue_pass) apply_epilogue(*epilogue, 0, M, N, C, ldc, stream);
}

// ------------------------------------------------------------------ backend choice

std::atomic<int> g_backend{-1};  // -1: not chosen yet (read DROPNET_CUDA_DENSE)

// ------------------------------------------------------------------ cuBLASLt through dlopen
// The subset of cublasLt.h (CUDA 12 / 13, the same values in both) this file calls.

using cublasStatus_t = int;
using cublasLtHandle_t = void*;
using cublasLtMatmulDesc_t = void*;
using cublasLtMatrixLayout_t = void*;
using cublasLtMatmulPreference_t = void*;
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};
constexpr int kCudaR32F = 0;           // cudaDataType CUDA_R_32F
constexpr int kComputeType32F = 68;    // CUBLAS_COMPUTE_32F (no TF32)
constexpr int kOpN = 0, kOpT = 1;      // cublasOperation_t
constexpr int kDescTransA = 3, kDescTransB = 4, kDescEpilogue = 7, kDescBiasPointer = 8;
constexpr uint32_t kEpilogueDefault = 1, kEpilogueRelu = 2, kEpilogueBias = 4, kEpilogueReluBias = 6;
constexpr int kPrefMaxWorkspace = 1, kPrefReductionSchemeMask = 3, kPrefMinAlignA = 5;  // A, B, C, D: 5..8
constexpr size_t kCublasLtWorkspaceBytes = size_t{32} << 20;

struct CublasLtApi {
  cublasStatus_t (*create)(cublasLtHandle_t*);
  cublasStatus_t (*desc_create)(cublasLtMatmulDesc_t*, int, int);
  cublasStatus_t (*desc_destroy)(cublasLtMatmulDesc_t);
  cublasStatus_t (*desc_set)(cublasLtMatmulDesc_t, int, const void*, size_t);
  cublasStatus_t (*layout_create)(cublasLtMatrixLayout_t*, int, uint64_t, uint64_t, int64_t);
  cublasStatus_t (*layout_destroy)(cublasLtMatrixLayout_t);
  cublasStatus_t (*pref_create)(cublasLtMatmulPreference_t*);
  cublasStatus_t (*pref_destroy)(cublasLtMatmulPreference_t);
  cublasStatus_t (*pref_set)(cublasLtMatmulPreference_t, int, const void*, size_t);
  cublasStatus_t (*heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                              cublasLtMatmulHeuristicResult_t*, int*);
  cublasStatus_t (*matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void*, const void*, cublasLtMatrixLayout_t,
                           const void*, cublasLtMatrixLayout_t, const void*, const void*, cublasLtMatrixLayout_t,
                           void*, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t);
  std::string reason;  // empty when every symbol was found
};

const CublasLtApi& cublaslt_api() {
  static const CublasLtApi api = [] {
    CublasLtApi a{};
    const DynamicLibrary& lib = nvidia_library(NvidiaLibrary::cublaslt);
    if (!lib.loaded()) {
      a.reason = std::string("cuBLASLt not found (") + lib.reason() + ")";
      return a;
    }
    lib.bind("cublasLtCreate", &a.create, &a.reason);
    lib.bind("cublasLtMatmulDescCreate", &a.desc_create, &a.reason);
    lib.bind("cublasLtMatmulDescDestroy", &a.desc_destroy, &a.reason);
    lib.bind("cublasLtMatmulDescSetAttribute", &a.desc_set, &a.reason);
    lib.bind("cublasLtMatrixLayoutCreate", &a.layout_create, &a.reason);
    lib.bind("cublasLtMatrixLayoutDestroy", &a.layout_destroy, &a.reason);
    lib.bind("cublasLtMatmulPreferenceCreate", &a.pref_create, &a.reason);
    lib.bind("cublasLtMatmulPreferenceDestroy", &a.pref_destroy, &a.reason);
    lib.bind("cublasLtMatmulPreferenceSetAttribute", &a.pref_set, &a.reason);
    lib.bind("cublasLtMatmulAlgoGetHeuristic", &a.heuristic, &a.reason);
    lib.bind("cublasLtMatmul", &a.matmul, &a.reason);
    return a;
  }();
  return api;
}

void check_lt(cublasStatus_t s, const char* call) {
  if (s != 0) throw std::runtime_error(std::string("cuBLASLt error in ") + call + ": status " + std::to_string(s));
}

// The handle and workspace of one device: created on the device's first cuBLASLt product, kept
// for the process (no creation or allocation inside a training step).
struct LtDevice {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

// One plan per problem: the descriptors and the algorithm the heuristic picked the first time,
// reused so a shape always runs the same algorithm (run-to-run bits).
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
using LtKey = std::tuple<int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, int>;

std::mutex g_lt_mutex;
std::map<int, LtDevice> g_lt_devices;
std::map<LtKey, LtPlan> g_lt_plans;

int alignment_of(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  int a = 4;
  while (a < 256 && (v % static_cast<uintptr_t>(2 * a)) == 0) a *= 2;
  return a;
}

LtDevice& lt_device(const CublasLtApi& api, int device) {
  LtDevice& d = g_lt_devices[device];
  if (!d.handle) check_lt(api.create(&d.handle), "cublasLtCreate");
  if (!d.workspace) {  // a failed allocation is tried again by the next call
    const cudaError_t e = cudaMalloc(&d.workspace, kCublasLtWorkspaceBytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      d.workspace = nullptr;
      throw std::runtime_error(std::string("CUDA error in cudaMalloc (cuBLASLt workspace): ") + cudaGetErrorString(e));
    }
  }
  return d;
}

// The row-major product C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's "A" is
// our B (N × K after its op), its "B" our A, its m = N, n = M; a bias per column of C is its bias
// per row of D, as cuBLASLt's BIAS epilogue wants.
const LtPlan& lt_plan(const CublasLtApi& api, cublasLtHandle_t handle, const LtKey& key, bool trans_a, bool trans_b,
                      int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc, uint32_t lt_epilogue,
                      const float* bias, int align) {
  auto it = g_lt_plans.find(key);
  if (it != g_lt_plans.end()) return it->second;
  LtPlan p;
  check_lt(api.desc_create(&p.desc, kComputeType32F, kCudaR32F), "cublasLtMatmulDescCreate");
  const int32_t op_a = trans_b ? kOpT : kOpN, op_b = trans_a ? kOpT : kOpN;
  check_lt(api.desc_set(p.desc, kDescTransA, &op_a, sizeof(op_a)), "cublasLtMatmulDescSetAttribute (TRANSA)");
  check_lt(api.desc_set(p.desc, kDescTransB, &op_b, sizeof(op_b)), "cublasLtMatmulDescSetAttribute (TRANSB)");
  check_lt(api.desc_set(p.desc, kDescEpilogue, &lt_epilogue, sizeof(lt_epilogue)),
           "cublasLtMatmulDescSetAttribute (EPILOGUE)");
  if (bias)
    check_lt(api.desc_set(p.desc, kDescBiasPointer, &bias, sizeof(bias)), "cublasLtMatmulDescSetAttribute (BIAS)");
  // Column-major shapes as stored: our B is (trans_b ? N × K : K × N) row-major.
  check_lt(api.layout_create(&p.a, kCudaR32F, trans_b ? K : N, trans_b ? N : K, ldb), "cublasLtMatrixLayoutCreate (B)");
  check_lt(api.layout_create(&p.b, kCudaR32F, trans_a ? M : K, trans_a ? K : M, lda), "cublasLtMatrixLayoutCreate (A)");
  check_lt(api.layout_create(&p.c, kCudaR32F, N, M, ldc), "cublasLtMatrixLayoutCreate (C)");
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(api.pref_create(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = kCublasLtWorkspaceBytes;
  const uint32_t no_split_k_reduction = 0;  // CUBLASLT_REDUCTION_SCHEME_NONE
  const uint32_t min_align = static_cast<uint32_t>(align);
  cublasStatus_t s = api.pref_set(pref, kPrefMaxWorkspace, &ws, sizeof(ws));
  if (s == 0) s = api.pref_set(pref, kPrefReductionSchemeMask, &no_split_k_reduction, sizeof(no_split_k_reduction));
  for (int attr = kPrefMinAlignA; s == 0 && attr < kPrefMinAlignA + 4; ++attr)
    s = api.pref_set(pref, attr, &min_align, sizeof(min_align));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (s == 0) s = api.heuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  api.pref_destroy(pref);
  check_lt(s, "cublasLtMatmulAlgoGetHeuristic");
  if (found < 1) throw std::runtime_error("cuBLASLt: no algorithm for this product (cublasLtMatmulAlgoGetHeuristic)");
  p.algo = result.algo;
  return g_lt_plans.emplace(key, p).first->second;
}

}  // namespace

void sgemm_cublaslt(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                    const GemmEpilogue* epilogue, Stream stream) {
  check_args(trans_a, trans_b, M, N, K, lda, ldb, ldc, "sgemm_cublaslt");
  if (M == 0 || N == 0) return;
  const CublasLtApi& api = cublaslt_api();
  if (!api.reason.empty()) throw std::runtime_error("sgemm_cublaslt: " + api.reason);
  // cuBLASLt fuses bias and ReLU; anything else of the epilogue runs as the word pass after it.
  const bool lt_fuses = epilogue && !epilogue->dropout && !epilogue->pre_activation &&
                        (epilogue->activation == Activation::identity || epilogue->activation == Activation::relu);
  const float* bias = lt_fuses ? epilogue->bias : nullptr;
  const bool relu = lt_fuses && epilogue->activation == Activation::relu;
  const uint32_t lt_epilogue =
      bias ? (relu ? kEpilogueReluBias : kEpilogueBias) : (relu ? kEpilogueRelu : kEpilogueDefault);
  if (K == 0) {  // cuBLASLt wants K >= 1: the empty product is ours
    sgemm_dropnet(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, stream);
    return;
  }
  int device = 0;
  const cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string("sgemm_cublaslt: CUDA error in cudaGetDevice: ") + cudaGetErrorString(e));
  }
  int align = alignment_of(A);
  for (const void* p : {static_cast<const void*>(B), static_cast<const void*>(C)}) {
    const int a = alignment_of(p);
    if (a < align) align = a;
  }
  const LtKey key{device, trans_a, trans_b, M, N, K, lda, ldb, ldc, lt_epilogue, align};
  {
    std::lock_guard<std::mutex> lock(g_lt_mutex);
    LtDevice& d = lt_device(api, device);
    const LtPlan& p = lt_plan(api, d.handle, key, trans_a, trans_b, M, N, K, lda, ldb, ldc, lt_epilogue, bias, align);
    if (bias)
      check_lt(api.desc_set(p.desc, kDescBiasPointer, &bias, sizeof(bias)), "cublasLtMatmulDescSetAttribute (BIAS)");
    check_lt(api.matmul(d.handle, p.desc, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo, d.workspace,
                        kCublasLtWorkspaceBytes, stream),
             "cublasLtMatmul");
  }
  if (epilogue && !lt_fuses) apply_epilogue(*epilogue, 0, M, N, C, ldc, stream);
}

std::string cublaslt_unavailable_reason() { return cublaslt_api().reason; }

DenseBackend parse_dense_backend(const char* v) {
  if (!v || !*v || std::strcmp(v, "dropnet") == 0) return DenseBackend::dropnet;
  if (std::strcmp(v, "cublaslt") == 0) return DenseBackend::cublaslt;
  throw std::invalid_argument(std::string("DROPNET_CUDA_DENSE: expected 'dropnet' or 'cublaslt', got '") + v + "'");
}

void set_dense_backend(DenseBackend backend) { g_backend.store(static_cast<int>(backend)); }

DenseBackend dense_backend() {
  int b = g_backend.load();
  if (b < 0) {
    const int from_env = static_cast<int>(parse_dense_backend(std::getenv("DROPNET_CUDA_DENSE")));
    g_backend.compare_exchange_strong(b, from_env);
    b = g_backend.load();
  }
  return static_cast<DenseBackend>(b);
}

const char* dense_backend_name(DenseBackend backend) {
  return backend == DenseBackend::cublaslt ? "cublaslt" : "dropnet";
}

int64_t sgemm_workspace(int64_t M, int64_t N, int64_t K) { return gemm_workspace_floats(M, N, K); }

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue* epilogue, Stream stream,
           float* workspace, int64_t workspace_floats) {
  if (dense_backend() == DenseBackend::cublaslt) {
    sgemm_cublaslt(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, stream);
    return;
  }
  check_args(trans_a, trans_b, M, N, K, lda, ldb, ldc, "sgemm");
  if (M == 0 || N == 0) return;
  sgemm_dropnet(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, stream, workspace,
                workspace_floats);
}

}  // namespace cuda
}  // namespace dropnet

// Sparse execution of a pruned dense weight (docs/design.md: "A pruned layer keeps its dense weight,
// its 0/1 mask and, when sparse execution is on, a compressed copy that forward and backward use").
//
// The compressed copy is a CSR of the mask's pattern (sparse_csr.h) plus, aligned with its stored
// entries: the values, the gradient and the optimizer slots. Two copies of the same numbers exist
// (dense and compressed); each has a `current` flag. Whoever changes one copy marks the other
// stale, and a reader syncs first: a sparse training step gathers into the compressed copy if it
// is stale, then updates only the compressed one; the dense copy (what get_params, get_grads and
// get_optimizer_state read, and what a dense step uses) is scattered back only when someone asks.
// So a sparse step costs O(nnz), never O(out × in), and nobody reads a stale number.
// Masked entries of the dense copies are zero throughout (set_mask zeroes them, nothing else
// writes them), so a scatter of the stored entries restores the whole dense tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "dropnet/kernels/cpu/sparse_csr.h"
#include "dropnet/nn/buffer.h"

namespace dropnet {
namespace nn {

enum class SparseMode { automatic, sparse, dense };
const char* sparse_mode_name(SparseMode m);

struct SparseWeight {
  int64_t rows = 0, cols = 0, nnz = 0;
  std::vector<int64_t> indptr, t_indptr, t_value_index;
  std::vector<int32_t> indices, t_indices;
  Buffer<float> values, grad;
  std::vector<Buffer<float>> slots;  // optimizer slots, same order as the optimizer's
  bool dense_current = true;          // dense value/grad/slots hold the latest numbers
  bool compressed_current = false;    // values/grad/slots hold the latest numbers
  // On a device (build's backend without host memory): the pattern is built on the host and
  // copied in once (it changes only with the mask), and values, grad and slots live there too.
  const Backend* device = nullptr;
  Buffer<int64_t> device_indptr, device_t_indptr, device_t_value_index;
  Buffer<int32_t> device_indices, device_t_indices;

  // Pattern of mask (rows × cols floats of 0/1, host memory) on `backend`; both copies marked as
  // needing a gather.
  void build(const float* mask, int64_t n_rows, int64_t n_cols, const Backend& backend);
  cpu::CsrView view() const;    // W   (rows × cols), in the backend's memory
  cpu::CsrView t_view() const;  // Wᵀ  (cols × rows), values shared through t_value_index
  // dense → compressed (values, grad, the n_slots slots), through the backend.
  void gather(const float* w, const float* g, const std::vector<const float*>& dense_slots);
  // compressed → dense at the stored entries.
  void scatter(float* w, float* g, const std::vector<float*>& dense_slots) const;
};

// Measured break-even densities of a dense layer (out × in weight, batches of `rows`): below
// `density` a training step of the layer (forward, input gradient, weight gradient, an Adam
// update) runs faster sparse than dense; below `inference_density` its forward pass does. Timed
// once per (out, in, batch bucket, ISA, threads) and cached in the process; `rows` is rounded up
// to a power of two (>= 16) so ragged last batches share it. 0: never sparse, 1: always.
struct BreakEven {
  double density = 0.0, inference_density = 0.0;
  double dense_seconds = 0.0, sparse_seconds_lo = 0.0, sparse_seconds_hi = 0.0;  // training step
  double density_lo = 0.0, density_hi = 0.0;                                      // the two timed
  int64_t batch = 0;
};
BreakEven sparse_break_even(int64_t out, int64_t in, int64_t rows);

// The timing behind the break-even of a layer type: its training step (forward, then the rest)
// dense against sparse with N × K patterns at BreakEven::density_lo and density_hi (a fixed hash,
// values gathered from w, dw and the optimizer slots), interleaved, best of 7 each. Fills every
// field but batch.
BreakEven time_break_even(int64_t N, int64_t K, const float* w, const float* dw, const std::vector<const float*>& slots,
                          const std::function<void()>& dense_forward, const std::function<void()>& dense_rest,
                          const std::function<void(SparseWeight&)>& sparse_forward,
                          const std::function<void(SparseWeight&)>& sparse_rest);

}  // namespace nn
}  // namespace dropnet

// The CSR matrix view that the sparse kernels of every device take (kernels/cpu/spmm.h,
// kernels/cpu/sparse_sddmm.h, the Backend's spmm_xt / sddmm), in core/ so the kernel interface
// (kernels/backend.h) names it without including a CPU kernel header.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

// Read-only view of a CSR matrix; the kernels' argument type. Entry p's value is
// values[value_index ? value_index[p] : p] (value_index lets the transposed copy share values).
// The pointers are memory of the device whose kernel takes the view; nnz() reads indptr, so only
// the host may call it on a host view.
struct CsrView {
  int64_t rows = 0, cols = 0;
  const int64_t* indptr = nullptr;  // rows + 1
  const int32_t* indices = nullptr;  // nnz, columns ascending within a row
  const float* values = nullptr;
  const int64_t* value_index = nullptr;  // nnz or nullptr
  int64_t nnz() const { return indptr[rows]; }
};

}  // namespace cpu
}  // namespace dropnet

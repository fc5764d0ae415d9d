// Bindings of the sparse kernels (dropnet._core.ops): CSR structure helpers and the three products
// of a pruned dense layer. The Python class dropnet.sparse.CSRMatrix owns the arrays and checks
// its pattern once when it is built; every call here re-checks shapes and dtypes (O(1)), never
// the pattern (O(nnz)), which the class keeps read-only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>

#include "array_args.h"
#include "dropnet/kernels/cpu/sparse_csr.h"
#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/spmm.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

using F32 = py::array_t<float, py::array::c_style>;
using I32 = py::array_t<int32_t, py::array::c_style>;
using I64 = py::array_t<int64_t, py::array::c_style>;

void require_ndim(const py::array& a, const char* name, int ndim, const char* what) {
  DROPNET_CHECK(a.ndim() == ndim, name, ": expected a ", ndim, "-d array ", what, ", got shape ", shape_str(a));
}

// The pattern arrays of an n_rows × n_cols CSR (shapes only; the pattern was checked at build).
struct PatternArgs {
  I64 indptr;
  I32 indices;
  int64_t rows, cols, nnz;
};

PatternArgs pattern_args(int64_t rows, int64_t cols, const py::object& indptr_obj, const py::object& indices_obj,
                         const char* indptr_name, const char* indices_name) {
  DROPNET_CHECK(rows >= 0 && cols >= 0, "shape: expected non-negative sizes, got (", rows, ", ", cols, ")");
  DROPNET_CHECK(rows < (int64_t{1} << 31) && cols < (int64_t{1} << 31), "shape: sizes must be < 2**31, got (", rows,
                ", ", cols, ")");
  PatternArgs a{require_array<int64_t>(indptr_obj, indptr_name), require_array<int32_t>(indices_obj, indices_name),
                rows, cols, 0};
  require_ndim(a.indptr, indptr_name, 1, "of length rows + 1");
  require_ndim(a.indices, indices_name, 1, "of length nnz");
  DROPNET_CHECK(a.indptr.shape(0) == rows + 1, indptr_name, ": expected length ", rows + 1, ", got ",
                a.indptr.shape(0));
  a.nnz = a.indices.shape(0);
  DROPNET_CHECK(a.indptr.data()[rows] == a.nnz, indptr_name, "[-1]: expected ", a.nnz, " (the number of indices), got ",
                a.indptr.data()[rows]);
  return a;
}

F32 values_arg(const py::object& obj, const char* name, int64_t nnz) {
  F32 v = require_array<float>(obj, name);
  require_ndim(v, name, 1, "of length nnz");
  DROPNET_CHECK(v.shape(0) == nnz, name, ": expected length ", nnz, " (the number of stored entries), got ",
                v.shape(0));
  return v;
}

// x: float32 C-contiguous (rows, cols) with cols fixed; returns rows.
int64_t matrix_rows(const F32& x, const char* name, int64_t cols, const char* cols_what) {
  require_ndim(x, name, 2, "(batch, features)");
  DROPNET_CHECK(x.shape(1) == cols, name, ": expected shape (batch, ", cols, ") with ", cols_what, ", got ",
                shape_str(x));
  return x.shape(0);
}

F32 out_matrix(const py::object& out, int64_t rows, int64_t cols) {
  if (out.is_none()) return F32({rows, cols});
  F32 o = require_writeable<float>(out, "out");
  DROPNET_CHECK(o.ndim() == 2 && o.shape(0) == rows && o.shape(1) == cols, "out: expected shape (", rows, ", ", cols,
                "), got ", shape_str(o));
  return o;
}

// Pattern kept from a dense (rows, cols) weight: mask (uint8, same shape) or |w| > threshold.
py::tuple csr_from_dense(const py::object& w_obj, const py::object& mask_obj, float threshold) {
  F32 w = require_array<float>(w_obj, "w");
  require_ndim(w, "w", 2, "(out_features, in_features)");
  const int64_t N = w.shape(0), K = w.shape(1);
  DROPNET_CHECK(N < (int64_t{1} << 31) && K < (int64_t{1} << 31), "w: sizes must be < 2**31, got ", shape_str(w));
  py::array_t<uint8_t, py::array::c_style> mask;
  const uint8_t* mp = nullptr;
  if (!mask_obj.is_none()) {
    mask = require_array<uint8_t>(mask_obj, "mask");
    require_same_shape(w, "w", mask, "mask");
    mp = mask.data();
  }
  DROPNET_CHECK(threshold >= 0.f, "threshold: expected >= 0, got ", threshold);
  I64 indptr(N + 1);
  int64_t* ip = indptr.mutable_data();
  const float* wp = w.data();
  {
    py::gil_scoped_release release;
    cpu::csr_count_rows(wp, mp, N, K, threshold, ip + 1);
    ip[0] = 0;
    for (int64_t n = 0; n < N; ++n) ip[n + 1] += ip[n];
  }
  const int64_t nnz = ip[N];
  I32 indices(nnz);
  F32 data(nnz);
  int32_t* xp = indices.mutable_data();
  float* dp = data.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::csr_fill(wp, mp, N, K, threshold, ip, xp, dp);
  }
  return py::make_tuple(indptr, indices, data);
}

}  // namespace

void register_sparse(py::module_& m) {
  m.def("sparse_csr_from_dense", &csr_from_dense, py::arg("w"), py::arg("mask"), py::arg("threshold"),
        "CSR (indptr int64, indices int32, data float32) of the entries of w kept by mask or |w| > threshold.");

  m.def(
      "sparse_csr_check",
      [](int64_t rows, int64_t cols, const py::object& indptr, const py::object& indices, const py::object& data) {
        DROPNET_CHECK(rows >= 0 && cols >= 0, "shape: expected non-negative sizes, got (", rows, ", ", cols, ")");
        I64 ip = require_array<int64_t>(indptr, "indptr");
        I32 ix = require_array<int32_t>(indices, "indices");
        require_ndim(ip, "indptr", 1, "of length rows + 1");
        require_ndim(ix, "indices", 1, "of length nnz");
        DROPNET_CHECK(ip.shape(0) == rows + 1, "indptr: expected length ", rows + 1, ", got ", ip.shape(0));
        values_arg(data, "data", ix.shape(0));
        const char* problem = cpu::csr_check_pattern(rows, cols, ip.data(), ix.data(), ix.shape(0));
        DROPNET_CHECK(problem[0] == '\0', "CSR pattern: ", problem);
      },
      py::arg("rows"), py::arg("cols"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
      "Raises ValueError unless (indptr, indices, data) is a valid rows × cols CSR.");

  m.def(
      "sparse_csr_transpose",
      [](int64_t rows, int64_t cols, const py::object& indptr, const py::object& indices) {
        PatternArgs a = pattern_args(rows, cols, indptr, indices, "indptr", "indices");
        I64 t_indptr(cols + 1), t_value_index(a.nnz);
        I32 t_indices(a.nnz);
        int64_t *tp = t_indptr.mutable_data(), *tv = t_value_index.mutable_data();
        int32_t* tx = t_indices.mutable_data();
        const int64_t* ip = a.indptr.data();
        const int32_t* ix = a.indices.data();
        {
          py::gil_scoped_release release;
          cpu::csr_transpose(rows, cols, ip, ix, tp, tx, tv);
        }
        return py::make_tuple(t_indptr, t_indices, t_value_index);
      },
      py::arg("rows"), py::arg("cols"), py::arg("indptr"), py::arg("indices"),
      "CSR pattern of the transpose (t_indptr, t_indices, t_value_index into the original data).");

  m.def(
      "sparse_csr_gather_values",
      [](const py::object& w_obj, const py::object& indptr, const py::object& indices, const py::object& data) {
        F32 w = require_array<float>(w_obj, "w");
        require_ndim(w, "w", 2, "(out_features, in_features)");
        PatternArgs a = pattern_args(w.shape(0), w.shape(1), indptr, indices, "indptr", "indices");
        F32 d = require_writeable<float>(data, "data");
        values_arg(d, "data", a.nnz);
        const float* wp = w.data();
        float* dp = d.mutable_data();
        py::gil_scoped_release release;
        cpu::csr_gather_values(wp, a.rows, a.cols, a.indptr.data(), a.indices.data(), dp);
      },
      py::arg("w"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
      "data[p] = w[row(p), indices[p]] for every stored entry.");

  m.def(
      "sparse_csr_to_dense",
      [](int64_t rows, int64_t cols, const py::object& indptr, const py::object& indices, const py::object& data) {
        PatternArgs a = pattern_args(rows, cols, indptr, indices, "indptr", "indices");
        F32 d = values_arg(data, "data", a.nnz);
        F32 dense({rows, cols});
        float* op = dense.mutable_data();
        py::gil_scoped_release release;
        cpu::csr_to_dense(rows, cols, a.indptr.data(), a.indices.data(), d.data(), op);
        return dense;
      },
      py::arg("rows"), py::arg("cols"), py::arg("indptr"), py::arg("indices"), py::arg("data"));

  m.def(
      "sparse_linear",
      [](const py::object& x_obj, int64_t n_out, int64_t n_in, const py::object& indptr, const py::object& indices,
         const py::object& data, const py::object& b_obj, const std::string& activation, float negative_slope,
         const py::object& out_obj) {
        PatternArgs a = pattern_args(n_out, n_in, indptr, indices, "s.indptr", "s.indices");
        F32 d = values_arg(data, "s.data", a.nnz);
        F32 x = require_array<float>(x_obj, "x");
        const int64_t M = matrix_rows(x, "x", n_in, "in_features of s");
        const float* bp = nullptr;
        F32 b;
        if (!b_obj.is_none()) {
          b = require_array<float>(b_obj, "b");
          DROPNET_CHECK(b.ndim() == 1 && b.shape(0) == n_out, "b: expected shape (", n_out, ",), got ", shape_str(b));
          bp = b.data();
        }
        const cpu::Activation act = parse_activation(activation);
        F32 out = out_matrix(out_obj, M, n_out);
        require_no_overlap(out, "out", x, "x");
        require_no_overlap(out, "out", d, "s.data");
        if (bp) require_no_overlap(out, "out", b, "b");
        cpu::CsrView S{n_out, n_in, a.indptr.data(), a.indices.data(), d.data(), nullptr};
        const float* xp = x.data();
        float* yp = out.mutable_data();
        {
          py::gil_scoped_release release;  // raw buffers only from here on
          cpu::spmm_xt(M, n_out, n_in, xp, n_in, S, bp, act, negative_slope, yp, n_out);
        }
        return out;
      },
      py::arg("x"), py::arg("n_out"), py::arg("n_in"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
      py::arg("b"), py::arg("activation"), py::arg("negative_slope"), py::arg("out"));

  m.def(
      "sparse_linear_backward_input",
      [](const py::object& gy_obj, int64_t n_out, int64_t n_in, const py::object& t_indptr,
         const py::object& t_indices, const py::object& t_value_index, const py::object& data,
         const py::object& out_obj) {
        // Wᵀ is n_in × n_out; its entries' values live in W's data via t_value_index.
        PatternArgs a = pattern_args(n_in, n_out, t_indptr, t_indices, "s.t_indptr", "s.t_indices");
        I64 vi = require_array<int64_t>(t_value_index, "s.t_value_index");
        DROPNET_CHECK(vi.ndim() == 1 && vi.shape(0) == a.nnz, "s.t_value_index: expected length ", a.nnz);
        F32 d = values_arg(data, "s.data", a.nnz);
        F32 gy = require_array<float>(gy_obj, "grad_y");
        const int64_t M = matrix_rows(gy, "grad_y", n_out, "out_features of s");
        F32 out = out_matrix(out_obj, M, n_in);
        require_no_overlap(out, "out", gy, "grad_y");
        require_no_overlap(out, "out", d, "s.data");
        cpu::CsrView St{n_in, n_out, a.indptr.data(), a.indices.data(), d.data(), vi.data()};
        const float* gp = gy.data();
        float* op = out.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::spmm_xt(M, n_in, n_out, gp, n_out, St, nullptr, cpu::Activation::identity, 0.f, op, n_in);
        }
        return out;
      },
      py::arg("grad_y"), py::arg("n_out"), py::arg("n_in"), py::arg("t_indptr"), py::arg("t_indices"),
      py::arg("t_value_index"), py::arg("data"), py::arg("out"));

  m.def(
      "sparse_weight_grad",
      [](const py::object& gy_obj, const py::object& x_obj, int64_t n_out, int64_t n_in, const py::object& indptr,
         const py::object& indices, const py::object& out_obj, bool accumulate) {
        PatternArgs a = pattern_args(n_out, n_in, indptr, indices, "s.indptr", "s.indices");
        F32 gy = require_array<float>(gy_obj, "grad_y");
        F32 x = require_array<float>(x_obj, "x");
        const int64_t M = matrix_rows(gy, "grad_y", n_out, "out_features of s");
        matrix_rows(x, "x", n_in, "in_features of s");
        DROPNET_CHECK(x.shape(0) == M, "x: expected ", M, " rows (the batch of grad_y), got shape ", shape_str(x));
        F32 out;
        if (out_obj.is_none()) {
          DROPNET_CHECK(!accumulate, "out: accumulate=True needs an out= array to add into");
          out = F32(a.nnz);
        } else {
          out = require_writeable<float>(out_obj, "out");
          values_arg(out, "out", a.nnz);
          require_no_overlap(out, "out", gy, "grad_y");
          require_no_overlap(out, "out", x, "x");
        }
        cpu::CsrView S{n_out, n_in, a.indptr.data(), a.indices.data(), nullptr, nullptr};
        const float *gp = gy.data(), *xp = x.data();
        float* op = out.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::sddmm(M, gp, n_out, xp, n_in, S, op, accumulate);
        }
        return out;
      },
      py::arg("grad_y"), py::arg("x"), py::arg("n_out"), py::arg("n_in"), py::arg("indptr"), py::arg("indices"),
      py::arg("out"), py::arg("accumulate"));
}

}  // namespace bindings
}  // namespace dropnet

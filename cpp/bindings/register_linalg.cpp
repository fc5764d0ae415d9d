// Bindings of the linalg kernels (dropnet._core.ops): matmul and the fused dense layer forward.
// Arrays arrive as float32 C-contiguous numpy arrays (checked here); the Python wrappers in
// dropnet/ops/_linalg.py parse names and defaults.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "array_args.h"
#include "dropnet/core/philox.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/gemm_skip_zeros.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

using Array = py::array_t<float, py::array::c_style>;

Array require_matrix(const py::handle& obj, const char* name) {
  auto a = require_array<float>(obj, name);
  DROPNET_CHECK(a.ndim() == 2, name, ": expected a 2-D array, got shape ", shape_str(a));
  return a;
}

// `out` given: must be float32, C-contiguous, writeable, shape (rows, cols). Not given: a new array.
Array output(const py::object& out, int64_t rows, int64_t cols) {
  if (out.is_none()) return Array({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  auto o = require_writeable<float>(out, "out");
  DROPNET_CHECK(o.ndim() == 2 && o.shape(0) == rows && o.shape(1) == cols, "out: expected shape (", rows, ", ",
                cols, "), got ", shape_str(o));
  return o;
}

// The operands and output of C = op(a) · op(b): shapes checked against each other, `out` (or a new
// array) of shape (M, N) that shares no memory with a or b.
struct Product {
  Array a, b, c;
  int64_t M = 0, N = 0, K = 0;
};

Product product_operands(const char* what, const py::object& a_obj, const py::object& b_obj, bool trans_a,
                         bool trans_b, const py::object& out) {
  Product p;
  p.a = require_matrix(a_obj, "a");
  p.b = require_matrix(b_obj, "b");
  const Array& a = p.a;
  const Array& b = p.b;
  p.M = trans_a ? a.shape(1) : a.shape(0);
  p.K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t Kb = trans_b ? b.shape(1) : b.shape(0);
  p.N = trans_b ? b.shape(0) : b.shape(1);
  DROPNET_CHECK(p.K == Kb, what, ": inner dimensions differ: a has shape ", shape_str(a),
                trans_a ? " (a.T: (" + std::to_string(p.M) + ", " + std::to_string(p.K) + "))" : std::string(),
                ", b has shape ", shape_str(b),
                trans_b ? " (b.T: (" + std::to_string(Kb) + ", " + std::to_string(p.N) + "))" : std::string(),
                "; op(a) has ", p.K, " columns but op(b) has ", Kb, " rows");
  p.c = output(out, p.M, p.N);
  require_no_overlap(p.c, "out", a, "a");
  require_no_overlap(p.c, "out", b, "b");
  return p;
}

}  // namespace

void register_linalg(py::module_& m) {
  m.def(
      "matmul",
      [](const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b, float alpha, float beta,
         const py::object& out) {
        DROPNET_CHECK(beta == 0.f || !out.is_none(), "beta: a nonzero beta needs out= (C = alpha*a@b + beta*out)");
        Product p = product_operands("matmul", a_obj, b_obj, trans_a, trans_b, out);
        const float* ap = p.a.data();
        const float* bp = p.b.data();
        float* cp = p.c.mutable_data();
        const int64_t lda = p.a.shape(1), ldb = p.b.shape(1), M = p.M, N = p.N, K = p.K;
        {
          py::gil_scoped_release release;  // raw buffers only from here on
          cpu::sgemm(trans_a, trans_b, M, N, K, alpha, ap, lda, bp, ldb, beta, cp, N);
        }
        return p.c;
      },
      py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0f,
      py::arg("beta") = 0.0f, py::arg("out") = py::none());

  m.def(
      "matmul_skip_zeros",
      [](const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b, double max_density,
         const py::object& out) {
        DROPNET_CHECK(!(trans_a && trans_b), "matmul_skip_zeros: trans_a and trans_b together are not supported");
        DROPNET_CHECK(std::isfinite(max_density) && max_density >= 0.0 && max_density <= 1.0,
                      "max_density: expected a fraction in [0, 1], got ", max_density);
        Product p = product_operands("matmul_skip_zeros", a_obj, b_obj, trans_a, trans_b, out);
        const float* ap = p.a.data();
        const float* bp = p.b.data();
        float* cp = p.c.mutable_data();
        const int64_t lda = p.a.shape(1), ldb = p.b.shape(1), M = p.M, N = p.N, K = p.K;
        bool skipped;
        {
          py::gil_scoped_release release;
          skipped = trans_a ? cpu::sgemm_at_b_skip_zeros(K, M, N, ap, lda, bp, ldb, cp, N, max_density)
                            : cpu::sgemm_a_b_skip_zeros(trans_b, M, K, N, ap, lda, bp, ldb, cp, N, nullptr,
                                                        max_density);
        }
        return py::make_tuple(p.c, skipped);
      },
      py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("max_density") = 1.0,
      py::arg("out") = py::none());

  m.def(
      "linear",
      [](const py::object& x_obj, const py::object& w_obj, const py::object& b_obj, const std::string& activation,
         float negative_slope, double p, const py::object& seed, const py::object& stream, bool return_mask,
         const py::object& out) -> py::object {
        auto x = require_matrix(x_obj, "x");
        auto w = require_matrix(w_obj, "w");
        const int64_t M = x.shape(0), K = x.shape(1), N = w.shape(0);
        DROPNET_CHECK(w.shape(1) == K, "w: expected shape (out_features, ", K, ") to match x of shape ", shape_str(x),
                      ", got ", shape_str(w));
        Array bias;
        if (!b_obj.is_none()) {
          bias = require_array<float>(b_obj, "b");
          DROPNET_CHECK(bias.ndim() == 1 && bias.shape(0) == N, "b: expected shape (", N, ",) to match w of shape ",
                        shape_str(w), ", got ", shape_str(bias));
        }
        cpu::GemmEpilogue ep = linear_epilogue(b_obj.is_none() ? nullptr : bias.data(), activation, negative_slope, p,
                                               seed, stream);
        py::array_t<uint64_t> mask;
        if (return_mask) {
          mask = py::array_t<uint64_t>((M * N + 63) / 64);
          uint64_t* mp = mask.mutable_data();
          // Bits past element M*N stay 0; without dropout every element is kept.
          for (int64_t i = 0; i < mask.size(); ++i) mp[i] = ep.dropout ? 0 : ~uint64_t{0};
          if (ep.dropout) ep.mask_bits = mp;
          else if (M * N % 64) mp[mask.size() - 1] = (uint64_t{1} << (M * N % 64)) - 1;
        }
        Array y = output(out, M, N);
        require_no_overlap(y, "out", x, "x");
        require_no_overlap(y, "out", w, "w");
        if (ep.bias) require_no_overlap(y, "out", bias, "b");
        const float* xp = x.data();
        const float* wp = w.data();
        float* yp = y.mutable_data();
        const bool fused = ep.bias || ep.activation != cpu::Activation::identity || ep.dropout;
        {
          py::gil_scoped_release release;  // raw buffers only from here on
          cpu::sgemm(false, true, M, N, K, 1.f, xp, K, wp, K, 0.f, yp, N, fused ? &ep : nullptr);
        }
        if (return_mask) return py::make_tuple(y, mask);
        return std::move(y);
      },
      py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::arg("activation") = "identity",
      py::arg("negative_slope") = 0.01f, py::arg("dropout") = 0.0, py::arg("seed") = py::none(),
      py::arg("stream") = py::none(), py::arg("return_mask") = false, py::arg("out") = py::none());
}

}  // namespace bindings
}  // namespace dropnet

// Bindings of the convolution, pooling and batch-norm kernels (dropnet._core.ops). Argument
// parsing (padding="same", int-or-pair) lives in python/dropnet/ops/_conv.py; here every array is
// checked (dtype, contiguity, shape) before a pointer is taken, then the GIL is released around the
// kernel: from there on only raw buffers are touched, no Python object.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <tuple>
#include <vector>

#include "array_args.h"
#include "dropnet/core/checked_int.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/pooling.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using Pair = std::tuple<int64_t, int64_t>;
using Pads = std::tuple<int64_t, int64_t, int64_t, int64_t>;  // top, bottom, left, right

// Scratch for im2col columns and weight-gradient partials, one per calling Python thread so
// concurrent calls never share it; it grows to the largest layer and stays (no page faults per call).
std::vector<float>& workspace(int64_t floats) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer;
}

void require_ndim(const py::array& a, const char* name, py::ssize_t ndim, const char* layout) {
  DROPNET_CHECK(a.ndim() == ndim, name, ": expected a ", ndim, "-D array ", layout, ", got shape ", shape_str(a));
}

void require_shape(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape) {
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; same && i < shape.size(); ++i) same = a.shape(i) == shape[i];
  if (!same) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : "");
    if (shape.size() == 1) s += ",";
    throw ValueError(str_concat(name, ": expected shape ", s, "), got ", shape_str(a)));
  }
}

// out= if given (checked), else a fresh array of `shape`.
FloatArray output(const py::object& out, const char* name, const std::vector<py::ssize_t>& shape) {
  if (out.is_none()) return FloatArray(shape);
  FloatArray o = require_writeable<float>(out, name);
  require_shape(o, name, shape);
  return o;
}

const float* optional_data(const py::object& obj, const char* name, int64_t length, FloatArray* keep) {
  if (obj.is_none()) return nullptr;
  *keep = require_array<float>(obj, name);
  require_shape(*keep, name, {static_cast<py::ssize_t>(length)});
  return keep->data();
}

// One spatial axis of a sliding window (convolution or pooling).
struct Axis {
  const char* name;  // "height" / "width", for messages
  int64_t extent, pad_lo, pad_hi, kernel, dilation, stride;
};

// Every window argument is bounded by kMaxWindowArg (2**40: far beyond any array that fits in
// memory), so that the kernels' index arithmetic (oh * stride - pad + i * dilation and the like,
// sums and products of two such values) cannot overflow int64; the few formulas here are checked.
constexpr int64_t kMaxWindowArg = int64_t{1} << 40;

// Number of window positions along one axis: (extent + pads - span) / stride + 1, where
// span = dilation * (kernel - 1) + 1 must fit the padded extent. The one place both the
// convolution and the pooling geometry go through.
int64_t window_outputs(const Axis& a, const char* pad_name, const char* kernel_name) {
  DROPNET_CHECK(a.kernel >= 1 && a.kernel <= kMaxWindowArg, kernel_name, ": expected a ", a.name,
                " in [1, 2**40], got ", a.kernel);
  DROPNET_CHECK(a.stride >= 1 && a.stride <= kMaxWindowArg, "stride: expected values in [1, 2**40], got ", a.stride,
                " (", a.name, ")");
  DROPNET_CHECK(a.dilation >= 1 && a.dilation <= kMaxWindowArg, "dilation: expected values in [1, 2**40], got ",
                a.dilation, " (", a.name, ")");
  DROPNET_CHECK(a.pad_lo >= 0 && a.pad_hi >= 0 && a.pad_lo <= kMaxWindowArg && a.pad_hi <= kMaxWindowArg, pad_name,
                ": expected values in [0, 2**40], got (", a.pad_lo, ", ", a.pad_hi, ") (", a.name, ")");
  const int64_t span = checked_add(checked_mul(a.dilation, a.kernel - 1, "dilation * (kernel - 1)"), 1, "window span");
  const int64_t padded = checked_add(checked_add(a.extent, a.pad_lo, "padded input"), a.pad_hi, "padded input");
  DROPNET_CHECK(span <= padded, kernel_name, ": the window (kernel ", a.kernel, ", dilation ", a.dilation, ") spans ",
                span, " along the ", a.name, ", which is larger than the padded input (", padded, ")");
  return (padded - span) / a.stride + 1;
}

cpu::ConvGeometry conv_geometry(const py::array& x, const py::array& w, Pair stride, Pads pads, Pair dilation,
                                int64_t groups) {
  require_ndim(x, "x", 4, "(N, C, H, W)");
  require_ndim(w, "w", 4, "(F, C / groups, kh, kw)");
  DROPNET_CHECK(groups >= 1, "groups: expected >= 1, got ", groups);
  DROPNET_CHECK(x.shape(1) % groups == 0, "groups: expected a divisor of the input channels ", x.shape(1), ", got ",
                groups);
  DROPNET_CHECK(w.shape(0) % groups == 0, "groups: expected a divisor of the filters ", w.shape(0), ", got ", groups);
  DROPNET_CHECK(checked_mul(w.shape(1), groups, "groups") == x.shape(1), "w: expected ", x.shape(1) / groups,
                " input channels per group (x has shape ", shape_str(x), ", groups = ", groups, "), got w of shape ",
                shape_str(w));
  const auto [sh, sw] = stride;
  const auto [dh, dw] = dilation;
  const auto [pt, pb, pl, pr] = pads;
  DROPNET_CHECK(w.shape(0) >= 1 && w.shape(2) >= 1 && w.shape(3) >= 1, "w: expected F, kh, kw >= 1, got shape ",
                shape_str(w));
  cpu::ConvGeometry g;
  g.C = x.shape(1);
  g.groups = groups;
  g.H = x.shape(2);
  g.W = x.shape(3);
  g.kh = w.shape(2);
  g.kw = w.shape(3);
  g.stride_h = sh;
  g.stride_w = sw;
  g.pad_top = pt;
  g.pad_left = pl;
  g.dil_h = dh;
  g.dil_w = dw;
  g.OH = window_outputs(Axis{"height", g.H, pt, pb, g.kh, dh, sh}, "padding", "w");
  g.OW = window_outputs(Axis{"width", g.W, pl, pr, g.kw, dw, sw}, "padding", "w");
  // The im2col columns of one image (K x P floats) and the output must be addressable.
  checked_mul(checked_mul(g.col_rows() + 1, g.col_cols(), "conv2d columns"), 2 * sizeof(float), "conv2d columns");
  checked_mul(checked_mul(checked_mul(x.shape(0), w.shape(0), "out"), g.col_cols(), "out"), sizeof(float), "out");
  return g;
}

cpu::PoolGeometry pool_geometry(const py::array& x, Pair kernel, Pair stride, Pair padding) {
  require_ndim(x, "x", 4, "(N, C, H, W)");
  const auto [kh, kw] = kernel;
  const auto [sh, sw] = stride;
  const auto [ph, pw] = padding;
  DROPNET_CHECK(kh >= 1 && kw >= 1, "kernel_size: expected values >= 1, got (", kh, ", ", kw, ")");
  DROPNET_CHECK(ph >= 0 && pw >= 0 && ph <= kh / 2 && pw <= kw / 2,
                "padding: expected values >= 0 and at most half the kernel (", kh, ", ", kw, "), got (", ph, ", ", pw,
                ")");
  cpu::PoolGeometry g;
  g.H = x.shape(2);
  g.W = x.shape(3);
  g.kh = kh;
  g.kw = kw;
  g.stride_h = sh;
  g.stride_w = sw;
  g.pad_h = ph;
  g.pad_w = pw;
  g.OH = window_outputs(Axis{"height", g.H, ph, ph, kh, 1, sh}, "padding", "kernel_size");
  g.OW = window_outputs(Axis{"width", g.W, pw, pw, kw, 1, sw}, "padding", "kernel_size");
  // The window size is the average's divisor: kh * kw must be exact (and the output addressable).
  checked_mul(kh, kw, "kernel_size");
  checked_mul(checked_mul(checked_mul(x.shape(0), x.shape(1), "out"), checked_mul(g.OH, g.OW, "out"), "out"),
              sizeof(float), "out");
  return g;
}

// The (N, C, H, W) a pooling backward writes, from the user's input_shape.
std::vector<py::ssize_t> input_shape_4d(const std::vector<int64_t>& shape) {
  DROPNET_CHECK(shape.size() == 4, "input_shape: expected 4 values (N, C, H, W), got ", shape.size());
  DROPNET_CHECK(shape[0] >= 0 && shape[1] >= 0 && shape[2] >= 1 && shape[3] >= 1,
                "input_shape: expected N, C >= 0 and H, W >= 1, got (", shape[0], ", ", shape[1], ", ", shape[2], ", ",
                shape[3], ")");
  return std::vector<py::ssize_t>(shape.begin(), shape.end());
}

}  // namespace

void register_conv(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](const py::object& x_obj, const py::object& w_obj, const py::object& b_obj, Pair stride, Pads pads,
         Pair dilation, int64_t groups, const py::object& activation, float leaky_slope, const py::object& out) {
        FloatArray x = require_array<float>(x_obj, "x"), w = require_array<float>(w_obj, "w"), b;
        const cpu::ConvGeometry g = conv_geometry(x, w, stride, pads, dilation, groups);
        const int64_t N = x.shape(0), F = w.shape(0);
        const float* bias = optional_data(b_obj, "b", F, &b);
        const cpu::Activation act = parse_activation(activation);
        FloatArray y = output(out, "out", {N, F, g.OH, g.OW});
        require_no_overlap(y, "out", x, "x");
        require_no_overlap(y, "out", w, "w");
        if (bias) require_no_overlap(y, "out", b, "b");
        const int threads = get_num_threads();
        const int64_t ws = cpu::conv2d_forward_workspace(g, F, bias != nullptr, threads);
        float* scratch = workspace(ws).data();
        const float *xp = x.data(), *wp = w.data();
        float* yp = y.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::conv2d_forward(xp, N, g, wp, F, bias, act, leaky_slope, yp, scratch, ws);
        }
        return y;
      },
      py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      py::arg("groups") = 1, py::arg("activation") = py::none(), py::arg("leaky_slope") = 0.01f, py::arg("out") = py::none());

  m.def(
      "conv2d_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& w_obj, Pair stride, Pads pads,
         Pair dilation, int64_t groups, bool need_input_grad, bool need_bias_grad, const py::object& dx_out,
         const py::object& dw_out, const py::object& db_out) {
        FloatArray x = require_array<float>(x_obj, "x"), w = require_array<float>(w_obj, "w");
        FloatArray dy = require_array<float>(dy_obj, "grad_out");
        const cpu::ConvGeometry g = conv_geometry(x, w, stride, pads, dilation, groups);
        const int64_t N = x.shape(0), F = w.shape(0);
        require_shape(dy, "grad_out", {N, F, g.OH, g.OW});
        DROPNET_CHECK(need_input_grad || dx_out.is_none(), "dx_out: given, but need_input_grad is False");
        DROPNET_CHECK(need_bias_grad || db_out.is_none(), "db_out: given, but need_bias_grad is False");
        // Outputs: the caller's (out= arrays, checked and overwritten) or new ones.
        py::object dx_obj = py::none(), db_obj = py::none();
        FloatArray dx, db;
        FloatArray dw = output(dw_out, "dw_out", shape_of(w));
        std::fill(dw.mutable_data(), dw.mutable_data() + dw.size(), 0.f);
        if (need_input_grad) {
          dx = output(dx_out, "dx_out", shape_of(x));
          dx_obj = dx;
        }
        if (need_bias_grad) {
          db = output(db_out, "db_out", std::vector<py::ssize_t>{F});
          std::fill(db.mutable_data(), db.mutable_data() + F, 0.f);
          db_obj = db;
        }
        for (const auto& [out, name] : {std::pair<const FloatArray*, const char*>{&dw, "dw_out"},
                                        {need_input_grad ? &dx : nullptr, "dx_out"},
                                        {need_bias_grad ? &db : nullptr, "db_out"}}) {
          if (!out) continue;
          require_no_overlap(*out, name, dy, "grad_out");
          require_no_overlap(*out, name, x, "x");
          require_no_overlap(*out, name, w, "w");
        }
        if (need_input_grad) require_no_overlap(dx, "dx_out", dw, "dw_out");
        if (need_input_grad && need_bias_grad) require_no_overlap(dx, "dx_out", db, "db_out");
        if (need_bias_grad) require_no_overlap(db, "db_out", dw, "dw_out");
        const int64_t ws = cpu::conv2d_backward_workspace(g, N, F, get_num_threads());
        float* scratch = workspace(ws).data();
        const float *dyp = dy.data(), *xp = x.data(), *wp = w.data();
        float* dxp = need_input_grad ? dx.mutable_data() : nullptr;
        float* dwp = dw.mutable_data();
        float* dbp = need_bias_grad ? db.mutable_data() : nullptr;
        {
          py::gil_scoped_release release;
          cpu::conv2d_backward(dyp, xp, N, g, wp, F, dxp, dwp, dbp, scratch, ws);
        }
        return py::make_tuple(dx_obj, dw, db_obj);
      },
      py::arg("grad_out"), py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      py::arg("groups") = 1, py::arg("need_input_grad") = true, py::arg("need_bias_grad") = true,
      py::arg("dx_out") = py::none(), py::arg("dw_out") = py::none(), py::arg("db_out") = py::none());

  m.def(
      "max_pool2d_forward",
      [](const py::object& x_obj, Pair kernel, Pair stride, Pair padding, bool return_indices, const py::object& out,
         const py::object& indices_out) {
        FloatArray x = require_array<float>(x_obj, "x");
        const cpu::PoolGeometry g = pool_geometry(x, kernel, stride, padding);
        const int64_t N = x.shape(0), C = x.shape(1);
        DROPNET_CHECK(g.H * g.W <= INT32_MAX, "x: planes of more than 2**31 - 1 elements do not fit int32 indices");
        FloatArray y = output(out, "out", {N, C, g.OH, g.OW});
        require_no_overlap(y, "out", x, "x");
        py::array_t<int32_t> idx;
        py::object idx_obj = py::none();
        if (return_indices) {
          const std::vector<py::ssize_t> shape{N, C, g.OH, g.OW};
          if (indices_out.is_none()) {
            idx = py::array_t<int32_t>(shape);
          } else {
            idx = require_writeable<int32_t>(indices_out, "indices_out");
            require_shape(idx, "indices_out", shape);
            require_no_overlap(idx, "indices_out", x, "x");
            require_no_overlap(idx, "indices_out", y, "out");
          }
          idx_obj = idx;
        }
        const float* xp = x.data();
        float* yp = y.mutable_data();
        int32_t* ip = return_indices ? idx.mutable_data() : nullptr;
        {
          py::gil_scoped_release release;
          cpu::max_pool2d_forward(xp, N * C, g, yp, ip);
        }
        return py::make_tuple(y, idx_obj);
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("return_indices") = true,
      py::arg("out") = py::none(), py::arg("indices_out") = py::none());

  m.def(
      "max_pool2d_backward",
      [](const py::object& dy_obj, const py::object& idx_obj, const std::vector<int64_t>& input_shape,
         const py::object& out) {
        FloatArray dy = require_array<float>(dy_obj, "grad");
        auto idx = require_array<int32_t>(idx_obj, "indices");
        const std::vector<py::ssize_t> in_shape = input_shape_4d(input_shape);
        require_ndim(dy, "grad", 4, "(N, C, OH, OW)");
        require_same_shape(dy, "grad", idx, "indices");
        DROPNET_CHECK(dy.shape(0) == in_shape[0] && dy.shape(1) == in_shape[1], "grad: expected N, C = ", in_shape[0],
                      ", ", in_shape[1], " (from input_shape), got shape ", shape_str(dy));
        cpu::PoolGeometry g;
        g.H = in_shape[2];
        g.W = in_shape[3];
        g.OH = dy.shape(2);
        g.OW = dy.shape(3);
        const int32_t* ip = idx.data();
        const int64_t plane = g.H * g.W, count = static_cast<int64_t>(idx.size());
        // A bad index would write outside dx: check them all (a branch-free pass), name the first.
        DROPNET_CHECK(plane <= INT32_MAX, "input_shape: H*W = ", plane, " does not fit int32 indices");
        const uint32_t limit = static_cast<uint32_t>(plane);
        uint32_t out_of_range = 0;  // negative indices wrap to >= limit as uint32
        for (int64_t i = 0; i < count; ++i) out_of_range |= static_cast<uint32_t>(static_cast<uint32_t>(ip[i]) >= limit);
        if (out_of_range) {
          int64_t i = 0;
          while (ip[i] >= 0 && ip[i] < plane) ++i;
          throw ValueError(str_concat("indices: expected values in [0, H*W = ", plane, "), got ", ip[i],
                                      " at flat position ", i));
        }
        FloatArray dx = output(out, "out", in_shape);
        require_no_overlap(dx, "out", dy, "grad");
        require_no_overlap(dx, "out", idx, "indices");
        const float* dyp = dy.data();
        float* dxp = dx.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::max_pool2d_backward(dyp, ip, in_shape[0] * in_shape[1], g, dxp);
        }
        return dx;
      },
      py::arg("grad"), py::arg("indices"), py::arg("input_shape"), py::arg("out") = py::none());

  m.def(
      "avg_pool2d_forward",
      [](const py::object& x_obj, Pair kernel, Pair stride, Pair padding, bool count_include_pad,
         const py::object& out) {
        FloatArray x = require_array<float>(x_obj, "x");
        const cpu::PoolGeometry g = pool_geometry(x, kernel, stride, padding);
        const int64_t N = x.shape(0), C = x.shape(1);
        FloatArray y = output(out, "out", {N, C, g.OH, g.OW});
        require_no_overlap(y, "out", x, "x");
        const float* xp = x.data();
        float* yp = y.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::avg_pool2d_forward(xp, N * C, g, count_include_pad, yp);
        }
        return y;
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("count_include_pad") = true,
      py::arg("out") = py::none());

  m.def(
      "avg_pool2d_backward",
      [](const py::object& dy_obj, const std::vector<int64_t>& input_shape, Pair kernel, Pair stride, Pair padding,
         bool count_include_pad, const py::object& out) {
        FloatArray dy = require_array<float>(dy_obj, "grad");
        const std::vector<py::ssize_t> in_shape = input_shape_4d(input_shape);
        FloatArray probe(in_shape);  // geometry of the forward input, for the checks below
        const cpu::PoolGeometry g = pool_geometry(probe, kernel, stride, padding);
        require_shape(dy, "grad", {in_shape[0], in_shape[1], g.OH, g.OW});
        FloatArray dx = out.is_none() ? probe : output(out, "out", in_shape);
        require_no_overlap(dx, "out", dy, "grad");
        const float* dyp = dy.data();
        float* dxp = dx.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::avg_pool2d_backward(dyp, in_shape[0] * in_shape[1], g, count_include_pad, dxp);
        }
        return dx;
      },
      py::arg("grad"), py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("count_include_pad") = true, py::arg("out") = py::none());

  m.def(
      "global_avg_pool2d_forward",
      [](const py::object& x_obj) {
        FloatArray x = require_array<float>(x_obj, "x");
        require_ndim(x, "x", 4, "(N, C, H, W)");
        FloatArray y(std::vector<py::ssize_t>{x.shape(0), x.shape(1)});
        const int64_t planes = x.shape(0) * x.shape(1), hw = x.shape(2) * x.shape(3);
        DROPNET_CHECK(hw >= 1, "x: expected H, W >= 1, got shape ", shape_str(x));
        const float* xp = x.data();
        float* yp = y.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::global_avg_pool2d_forward(xp, planes, hw, yp);
        }
        return y;
      },
      py::arg("x"));

  m.def(
      "global_avg_pool2d_backward",
      [](const py::object& dy_obj, const std::vector<int64_t>& input_shape) {
        FloatArray dy = require_array<float>(dy_obj, "grad");
        const std::vector<py::ssize_t> in_shape = input_shape_4d(input_shape);
        require_shape(dy, "grad", {in_shape[0], in_shape[1]});
        FloatArray dx(in_shape);
        const float* dyp = dy.data();
        float* dxp = dx.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::global_avg_pool2d_backward(dyp, in_shape[0] * in_shape[1], in_shape[2] * in_shape[3], dxp);
        }
        return dx;
      },
      py::arg("grad"), py::arg("input_shape"));

  m.def(
      "batch_norm_forward",
      [](const py::object& x_obj, const py::object& gamma_obj, const py::object& beta_obj, const py::object& rm_obj,
         const py::object& rv_obj, bool training, float momentum, float eps, bool relu, const py::object& out) {
        FloatArray x = require_array<float>(x_obj, "x"), gamma, beta;
        DROPNET_CHECK(x.ndim() == 2 || x.ndim() == 4, "x: expected a 2-D (N, C) or 4-D (N, C, H, W) array, got shape ",
                      shape_str(x));
        const int64_t N = x.shape(0), C = x.shape(1), HW = x.ndim() == 4 ? x.shape(2) * x.shape(3) : 1;
        DROPNET_CHECK(eps > 0.f, "eps: expected > 0, got ", eps);
        DROPNET_CHECK(momentum >= 0.f && momentum <= 1.f, "momentum: expected a value in [0, 1], got ", momentum);
        const float* g = optional_data(gamma_obj, "gamma", C, &gamma);
        const float* b = optional_data(beta_obj, "beta", C, &beta);
        FloatArray rm, rv;
        float *rmp = nullptr, *rvp = nullptr;
        DROPNET_CHECK(rm_obj.is_none() == rv_obj.is_none(),
                      "running_mean, running_var: expected both arrays or both None, got one of each");
        if (!rm_obj.is_none()) {
          rm = require_writeable<float>(rm_obj, "running_mean");
          rv = require_writeable<float>(rv_obj, "running_var");
          require_shape(rm, "running_mean", {C});
          require_shape(rv, "running_var", {C});
          require_no_overlap(rv, "running_var", rm, "running_mean");
          for (const auto& [in, in_name] : {std::pair<const FloatArray&, const char*>{x, "x"}, {gamma, "gamma"}, {beta, "beta"}}) {
            require_no_overlap(rm, "running_mean", in, in_name);
            require_no_overlap(rv, "running_var", in, in_name);
          }
          rmp = rm.mutable_data();
          rvp = rv.mutable_data();
        }
        DROPNET_CHECK(training || rmp, "running_mean: inference (training=False) needs the running statistics, got None");
        if (training) DROPNET_CHECK(N * HW >= 2, "x: training needs more than 1 value per channel, got shape ", shape_str(x));
        FloatArray y = output(out, "out", shape_of(x));
        // Each element is read before its own output is written: out may be x itself (in place).
        require_no_overlap(y, "out", x, "x", /*in_place_ok=*/true);
        if (g) require_no_overlap(y, "out", gamma, "gamma");
        if (b) require_no_overlap(y, "out", beta, "beta");
        if (rmp) {
          require_no_overlap(y, "out", rm, "running_mean");
          require_no_overlap(y, "out", rv, "running_var");
        }
        FloatArray mean(std::vector<py::ssize_t>{C}), invstd(std::vector<py::ssize_t>{C});
        const float* xp = x.data();
        float *yp = y.mutable_data(), *mp = mean.mutable_data(), *ip = invstd.mutable_data();
        {
          py::gil_scoped_release release;
          if (training) {
            cpu::batchnorm_forward_training(xp, N, C, HW, g, b, eps, momentum, rmp, rvp, relu, yp, mp, ip);
          } else {
            cpu::batchnorm_forward_inference(xp, N, C, HW, g, b, rmp, rvp, eps, relu, yp, ip);
            std::copy(rmp, rmp + C, mp);
          }
        }
        return py::make_tuple(y, mean, invstd);
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"), py::arg("running_var"),
      py::arg("training"), py::arg("momentum") = 0.1f, py::arg("eps") = 1e-5f, py::arg("relu") = false,
      py::arg("out") = py::none());

  m.def(
      "batch_norm_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& gamma_obj, const py::object& mean_obj,
         const py::object& invstd_obj, const py::object& y_obj, bool training, const py::object& out) {
        FloatArray x = require_array<float>(x_obj, "x"), dy = require_array<float>(dy_obj, "grad"), gamma, yr;
        DROPNET_CHECK(x.ndim() == 2 || x.ndim() == 4, "x: expected a 2-D (N, C) or 4-D (N, C, H, W) array, got shape ",
                      shape_str(x));
        require_same_shape(x, "x", dy, "grad");
        const int64_t N = x.shape(0), C = x.shape(1), HW = x.ndim() == 4 ? x.shape(2) * x.shape(3) : 1;
        const float* g = optional_data(gamma_obj, "gamma", C, &gamma);
        FloatArray mean = require_array<float>(mean_obj, "saved_mean");
        FloatArray invstd = require_array<float>(invstd_obj, "saved_invstd");
        require_shape(mean, "saved_mean", {C});
        require_shape(invstd, "saved_invstd", {C});
        const float* yp = nullptr;
        if (!y_obj.is_none()) {
          yr = require_array<float>(y_obj, "y");
          require_same_shape(x, "x", yr, "y");
          yp = yr.data();
        }
        FloatArray dx = output(out, "out", shape_of(x));
        // dx is written after the channel's sums, element by element: out may be grad (in place).
        require_no_overlap(dx, "out", dy, "grad", /*in_place_ok=*/true);
        require_no_overlap(dx, "out", x, "x");
        if (yp) require_no_overlap(dx, "out", yr, "y");
        if (g) require_no_overlap(dx, "out", gamma, "gamma");
        require_no_overlap(dx, "out", mean, "saved_mean");
        require_no_overlap(dx, "out", invstd, "saved_invstd");
        FloatArray dgamma(std::vector<py::ssize_t>{C}), dbeta(std::vector<py::ssize_t>{C});
        std::fill(dgamma.mutable_data(), dgamma.mutable_data() + C, 0.f);
        std::fill(dbeta.mutable_data(), dbeta.mutable_data() + C, 0.f);
        const float *dyp = dy.data(), *xp = x.data(), *mp = mean.data(), *ip = invstd.data();
        float *dxp = dx.mutable_data(), *dgp = dgamma.mutable_data(), *dbp = dbeta.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::batchnorm_backward(dyp, xp, yp, N, C, HW, g, mp, ip, training, dxp, dgp, dbp);
        }
        return py::make_tuple(dx, dgamma, dbeta);
      },
      py::arg("grad"), py::arg("x"), py::arg("gamma"), py::arg("saved_mean"), py::arg("saved_invstd"),
      py::arg("y") = py::none(), py::arg("training") = true, py::arg("out") = py::none());
}

}  // namespace bindings
}  // namespace dropnet

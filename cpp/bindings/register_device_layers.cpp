// dropnet._core.device, the layer ops on device pointers: convolution, pooling, batch norm and the
// dense product of dropnet.ops for CUDA arrays. Each runs through the device's Backend
// (kernels/backend.h), the interface a device network calls, so an op and a network on the same
// GPU take the same kernels and give the same bits. python/dropnet/ops/_device_layers.py checks
// every argument (against the CPU binding, on an empty batch) and computes the geometry; here the
// pointers and sizes are trusted.
//
// device -1 names the CPU's backend over host memory: tests/test_device_arrays.py runs these
// bindings on it, with numpy arrays standing in for device memory, so the argument plumbing from
// Python to the Backend is tested on machines without a GPU (the CUDA kernels themselves are
// tested against the CPU's over simulated grids, cpp/tests).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "array_args.h"
#include "dropnet/kernels/backend.h"
#include "dropnet/kernels/cuda/backend.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

// One backend per GPU for the process: a DeviceBackend keeps a grow-only workspace for the dense
// product, so ops share it rather than build one per call. Calls hold the GIL, which serialises
// them (the backend is not for concurrent use).
const Backend& backend_for(int device) {
  if (device < 0) return cpu_backend();
  // Never destroyed: freeing a GPU's workspace after the CUDA runtime has shut down at exit would fail.
  static auto* const backends = new std::map<int, std::shared_ptr<const Backend>>();
  std::shared_ptr<const Backend>& b = (*backends)[device];
  if (!b) b = cuda::cuda_backend(device);
  return *b;
}

// Scratch of `floats` floats in the backend's memory for one call (stream-ordered on a GPU: freed
// after the kernels queued before it).
class Scratch {
 public:
  Scratch(const Backend& be, int64_t floats)
      : be_(be), p_(static_cast<float*>(be.alloc(static_cast<size_t>(floats) * sizeof(float)))) {}
  ~Scratch() { be_.free(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* get() const { return p_; }

 private:
  const Backend& be_;
  float* p_;
};

template <class T = float>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

// (C, H, W, groups, kh, kw, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w, OH, OW)
ConvGeometry conv_geometry(const std::vector<int64_t>& v) {
  DROPNET_CHECK(v.size() == 14, "geometry: expected 14 values, got ", v.size());
  ConvGeometry g;
  g.C = v[0];
  g.H = v[1];
  g.W = v[2];
  g.groups = v[3];
  g.kh = v[4];
  g.kw = v[5];
  g.stride_h = v[6];
  g.stride_w = v[7];
  g.pad_top = v[8];
  g.pad_left = v[9];
  g.dil_h = v[10];
  g.dil_w = v[11];
  g.OH = v[12];
  g.OW = v[13];
  return g;
}

// (H, W, kh, kw, stride_h, stride_w, pad_h, pad_w, OH, OW)
PoolGeometry pool_geometry(const std::vector<int64_t>& v) {
  DROPNET_CHECK(v.size() == 10, "geometry: expected 10 values, got ", v.size());
  PoolGeometry g;
  g.H = v[0];
  g.W = v[1];
  g.kh = v[2];
  g.kw = v[3];
  g.stride_h = v[4];
  g.stride_w = v[5];
  g.pad_h = v[6];
  g.pad_w = v[7];
  g.OH = v[8];
  g.OW = v[9];
  return g;
}

}  // namespace

void register_device_layers(py::module_& m) {
  using P = std::uintptr_t;
  m.def(
      "conv2d_forward",
      [](int device, P x, int64_t N, const std::vector<int64_t>& geometry, P w, int64_t F, P b,
         const py::object& activation, float leaky_slope, P y) {
        const Backend& be = backend_for(device);
        const ConvGeometry g = conv_geometry(geometry);
        const int64_t floats = be.conv2d_forward_workspace(g, F, b != 0);
        const Scratch ws(be, floats);
        be.conv2d_forward(ptr(x), N, g, ptr(w), F, ptr(b), parse_activation(activation), leaky_slope, ptr(y),
                          ws.get(), floats);
      },
      py::arg("device"), py::arg("x"), py::arg("n"), py::arg("geometry"), py::arg("w"), py::arg("f"), py::arg("b"),
      py::arg("activation"), py::arg("leaky_slope"), py::arg("y"));
  m.def(
      "conv2d_backward",
      [](int device, P dy, P x, int64_t N, const std::vector<int64_t>& geometry, P w, int64_t F, P dx, P dw, P db) {
        const Backend& be = backend_for(device);
        const ConvGeometry g = conv_geometry(geometry);
        const int64_t floats = be.conv2d_backward_workspace(g, N, F);
        const Scratch ws(be, floats);
        // The backward adds into dw and db: they start at zero, as the CPU binding's do.
        be.zero(ptr(dw), static_cast<size_t>(F * g.group_channels() * g.kh * g.kw) * sizeof(float));
        if (db) be.zero(ptr(db), static_cast<size_t>(F) * sizeof(float));
        be.conv2d_backward(ptr(dy), ptr(x), N, g, ptr(w), F, ptr(dx), ptr(dw), ptr(db), ws.get(), floats);
      },
      py::arg("device"), py::arg("dy"), py::arg("x"), py::arg("n"), py::arg("geometry"), py::arg("w"), py::arg("f"),
      py::arg("dx"), py::arg("dw"), py::arg("db"));

  m.def(
      "max_pool2d_forward",
      [](int device, P x, int64_t planes, const std::vector<int64_t>& geometry, P y, P indices) {
        backend_for(device).max_pool2d_forward(ptr(x), planes, pool_geometry(geometry), ptr(y), ptr<int32_t>(indices));
      },
      py::arg("device"), py::arg("x"), py::arg("planes"), py::arg("geometry"), py::arg("y"), py::arg("indices"));
  m.def(
      "max_pool2d_backward",
      [](int device, P dy, P indices, int64_t planes, const std::vector<int64_t>& geometry, P dx) {
        backend_for(device).max_pool2d_backward(ptr(dy), ptr<int32_t>(indices), planes, pool_geometry(geometry),
                                                ptr(dx));
      },
      py::arg("device"), py::arg("dy"), py::arg("indices"), py::arg("planes"), py::arg("geometry"), py::arg("dx"));
  m.def(
      "avg_pool2d_forward",
      [](int device, P x, int64_t planes, const std::vector<int64_t>& geometry, bool count_include_pad, P y) {
        backend_for(device).avg_pool2d_forward(ptr(x), planes, pool_geometry(geometry), count_include_pad, ptr(y));
      },
      py::arg("device"), py::arg("x"), py::arg("planes"), py::arg("geometry"), py::arg("count_include_pad"),
      py::arg("y"));
  m.def(
      "avg_pool2d_backward",
      [](int device, P dy, int64_t planes, const std::vector<int64_t>& geometry, bool count_include_pad, P dx) {
        backend_for(device).avg_pool2d_backward(ptr(dy), planes, pool_geometry(geometry), count_include_pad, ptr(dx));
      },
      py::arg("device"), py::arg("dy"), py::arg("planes"), py::arg("geometry"), py::arg("count_include_pad"),
      py::arg("dx"));
  m.def(
      "global_avg_pool2d_forward",
      [](int device, P x, int64_t planes, int64_t hw, P y) {
        backend_for(device).global_avg_pool2d_forward(ptr(x), planes, hw, ptr(y));
      },
      py::arg("device"), py::arg("x"), py::arg("planes"), py::arg("hw"), py::arg("y"));
  m.def(
      "global_avg_pool2d_backward",
      [](int device, P dy, int64_t planes, int64_t hw, P dx) {
        backend_for(device).global_avg_pool2d_backward(ptr(dy), planes, hw, ptr(dx));
      },
      py::arg("device"), py::arg("dy"), py::arg("planes"), py::arg("hw"), py::arg("dx"));

  m.def(
      "batch_norm_forward",
      [](int device, P x, int64_t N, int64_t C, int64_t HW, P gamma, P beta, P running_mean, P running_var,
         bool training, float momentum, float eps, bool relu, P y, P saved_mean, P saved_invstd) {
        const Backend& be = backend_for(device);
        if (training) {
          be.batchnorm_forward_training(ptr(x), N, C, HW, ptr(gamma), ptr(beta), eps, momentum, ptr(running_mean),
                                        ptr(running_var), relu, ptr(y), ptr(saved_mean), ptr(saved_invstd));
        } else {
          be.batchnorm_forward_inference(ptr(x), N, C, HW, ptr(gamma), ptr(beta), ptr(running_mean),
                                         ptr(running_var), eps, relu, ptr(y), ptr(saved_invstd));
          be.copy(ptr(saved_mean), ptr(running_mean), static_cast<size_t>(C) * sizeof(float));
        }
      },
      py::arg("device"), py::arg("x"), py::arg("n"), py::arg("c"), py::arg("hw"), py::arg("gamma"), py::arg("beta"),
      py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum"), py::arg("eps"),
      py::arg("relu"), py::arg("y"), py::arg("saved_mean"), py::arg("saved_invstd"));
  m.def(
      "batch_norm_backward",
      [](int device, P dy, P x, P y_relu, int64_t N, int64_t C, int64_t HW, P gamma, P saved_mean, P saved_invstd,
         bool training, P dx, P dgamma, P dbeta) {
        const Backend& be = backend_for(device);
        // The backward adds into dgamma and dbeta: zero first, as the CPU binding does.
        be.zero(ptr(dgamma), static_cast<size_t>(C) * sizeof(float));
        be.zero(ptr(dbeta), static_cast<size_t>(C) * sizeof(float));
        be.batchnorm_backward(ptr(dy), ptr(x), ptr(y_relu), N, C, HW, ptr(gamma), ptr(saved_mean), ptr(saved_invstd),
                              training, ptr(dx), ptr(dgamma), ptr(dbeta));
      },
      py::arg("device"), py::arg("dy"), py::arg("x"), py::arg("y_relu"), py::arg("n"), py::arg("c"), py::arg("hw"),
      py::arg("gamma"), py::arg("saved_mean"), py::arg("saved_invstd"), py::arg("training"), py::arg("dx"),
      py::arg("dgamma"), py::arg("dbeta"));

  m.def(
      "linear",
      [](int device, int64_t M, int64_t N, int64_t K, P x, P w, P b, const std::string& activation,
         float negative_slope, double p, const py::object& seed, const py::object& stream, P mask_bits, P y) {
        GemmEpilogue ep = linear_epilogue(ptr(b), activation, negative_slope, p, seed, stream);
        const Backend& be = backend_for(device);
        if (ep.dropout && mask_bits) {
          // The epilogue sets the bits of kept elements: the words start at zero (bits past M·N stay 0).
          be.zero(ptr(mask_bits), static_cast<size_t>((M * N + 63) / 64) * sizeof(uint64_t));
          ep.mask_bits = ptr<uint64_t>(mask_bits);
        }
        const bool fused = ep.bias || ep.activation != Activation::identity || ep.dropout;
        be.gemm(false, true, M, N, K, ptr(x), K, ptr(w), K, ptr(y), N, fused ? &ep : nullptr, -1.0);
      },
      py::arg("device"), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("x"), py::arg("w"), py::arg("b"),
      py::arg("activation"), py::arg("negative_slope"), py::arg("dropout"), py::arg("seed"), py::arg("stream"),
      py::arg("mask_bits"), py::arg("y"));
  m.def(
      "matmul",
      [](int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, P a, P b, P c) {
        // lda / ldb: the operands' own row lengths (C-contiguous); never skipping zeros, so a
        // CPU backend gives cpu::sgemm's product, as ops.matmul on numpy arrays does.
        backend_for(device).gemm(trans_a, trans_b, M, N, K, ptr(a), trans_a ? M : K, ptr(b), trans_b ? K : N, ptr(c),
                                 N, nullptr, -1.0);
      },
      py::arg("device"), py::arg("trans_a"), py::arg("trans_b"), py::arg("m"), py::arg("n"), py::arg("k"),
      py::arg("a"), py::arg("b"), py::arg("c"));
}

}  // namespace bindings
}  // namespace dropnet

// Bindings of the image augmentation kernel (dropnet._core.ops.augment_images): argument checks,
// output allocation, the kernel called with the GIL released. No maths here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "array_args.h"
#include "dropnet/kernels/cpu/augment.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

void register_augment(py::module_& m) {
  m.def(
      "augment_images",
      [](const py::object& x, int64_t pad, bool flip, double erase_p, double erase_max, const py::object& seed,
         const py::object& stream) {
        auto xa = require_array<float>(x, "x");
        DROPNET_CHECK(xa.ndim() == 4, "x: expected float32 images of shape (N, C, H, W), got ", shape_str(xa));
        DROPNET_CHECK(pad >= 0, "padding: expected an int >= 0, got ", pad);
        DROPNET_CHECK(erase_p >= 0.0 && erase_p <= 1.0, "erase: expected a probability in [0, 1], got ", erase_p);
        DROPNET_CHECK(erase_p == 0.0 || (erase_max > 0.0 && erase_max <= 1.0),
                      "erase_max: expected a fraction in (0, 1], got ", erase_max);
        cpu::AugmentSpec spec;
        spec.pad = pad;
        spec.flip = flip;
        spec.erase_p = erase_p;
        spec.erase_max = erase_max;
        const uint64_t s = require_u64(seed, "seed"), st = require_u64(stream, "stream");
        py::array_t<float> out(shape_of(xa));
        const float* xp = xa.data();
        float* op = out.mutable_data();
        const int64_t n = xa.shape(0), c = xa.shape(1), h = xa.shape(2), w = xa.shape(3);
        {
          py::gil_scoped_release release;  // raw buffers of xa / out, both alive in this frame
          cpu::augment_images(xp, op, n, c, h, w, spec, s, st);
        }
        return out;
      },
      py::arg("x"), py::arg("pad"), py::arg("flip"), py::arg("erase_p"), py::arg("erase_max"), py::arg("seed"),
      py::arg("stream"),
      "Random crop with zero padding, horizontal flip and random erasing of NCHW float32 images; sample i "
      "draws words 8i..8i+7 of the Philox stream (seed, stream). See kernels/cpu/augment.h.");
}

}  // namespace bindings
}  // namespace dropnet

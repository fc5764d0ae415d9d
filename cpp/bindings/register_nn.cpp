// dropnet._core.nn: the Network that runs whole training steps, bound for the Python API.
// Parsing and argument checks happen here with the GIL held; the maths runs in nn::Network with
// the GIL released (it touches only raw buffers of arrays this frame keeps alive).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "array_args.h"
#include "test_devices.h"
#include "dropnet/kernels/cpu/finite_check.h"
#include "dropnet/kernels/cuda/backend.h"
#include "dropnet/nn/network.h"

namespace py = pybind11;

namespace dropnet {
namespace bindings {

namespace {

using nn::LayerSpec;
using nn::LayerType;

std::string type_name_of(const py::handle& o) { return py::str(py::type::of(o).attr("__name__")).cast<std::string>(); }

std::string repr_of(const py::handle& o) { return py::repr(o).cast<std::string>(); }

// Python ints and numpy integer scalars (anything with __index__), never bools.
bool is_int_like(const py::handle& o) {
  return !py::isinstance<py::bool_>(o) && !PyBool_Check(o.ptr()) && PyIndex_Check(o.ptr());
}
// Python and numpy real numbers, never bools or strings.
bool is_number(const py::handle& o) {
  return !PyBool_Check(o.ptr()) && !py::isinstance<py::str>(o) &&
         (PyFloat_Check(o.ptr()) || PyIndex_Check(o.ptr()) || py::hasattr(o, "__float__"));
}
double to_double(const py::handle& o) { return PyFloat_AsDouble(py::float_(py::reinterpret_borrow<py::object>(o)).ptr()); }
py::int_ to_int(const py::handle& o) { return py::reinterpret_steal<py::int_>(PyNumber_Index(o.ptr())); }
// require_u64 for Python ints and numpy integer scalars alike.
uint64_t require_u64_like(const py::handle& o, const char* name) {
  return require_u64(is_int_like(o) ? py::object(to_int(o)) : py::reinterpret_borrow<py::object>(o), name);
}

// Typed lookups in a config dict, naming "<where>['key']" in every error.
class DictReader {
 public:
  DictReader(const py::handle& obj, std::string where) : where_(std::move(where)) {
    if (!py::isinstance<py::dict>(obj))
      throw TypeError(str_concat(where_, ": expected a dict, got ", type_name_of(obj)));
    d_ = py::reinterpret_borrow<py::dict>(obj);
  }
  std::string name(const char* key) const { return str_concat(where_, "['", key, "']"); }
  bool has(const char* key) const { return d_.contains(key) && !d_[key].is_none(); }
  py::object get(const char* key) const { return d_[key]; }

  double number(const char* key, double dflt) const {
    if (!has(key)) return dflt;
    py::object v = get(key);
    if (!is_number(v)) throw TypeError(str_concat(name(key), ": expected a number, got ", type_name_of(v)));
    return to_double(v);
  }
  int64_t integer(const char* key) const {
    if (!d_.contains(key)) throw ValueError(str_concat(name(key), ": missing"));
    py::object v = get(key);
    if (!is_int_like(v)) throw TypeError(str_concat(name(key), ": expected an int, got ", type_name_of(v)));
    return to_int(v).cast<int64_t>();
  }
  bool boolean(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    py::object v = get(key);
    if (!py::isinstance<py::bool_>(v) && !py::isinstance(v, py::module_::import("numpy").attr("bool_")))
      throw TypeError(str_concat(name(key), ": expected a bool, got ", type_name_of(v)));
    return PyObject_IsTrue(v.ptr()) == 1;
  }
  // An int or a pair of ints (height, width) into out[2]; dflt when absent.
  void pair(const char* key, int64_t dflt, int64_t* out) const {
    out[0] = out[1] = dflt;
    if (!has(key)) return;
    py::object v = get(key);
    if (is_int_like(v)) {
      out[0] = out[1] = to_int(v).cast<int64_t>();
      return;
    }
    const auto bad = [&] {
      return TypeError(str_concat(name(key), ": expected an int or a pair of ints, got ", repr_of(v)));
    };
    if (!py::isinstance<py::sequence>(v) || py::isinstance<py::str>(v)) throw bad();
    py::sequence seq = py::reinterpret_borrow<py::sequence>(v);
    if (seq.size() != 2) throw ValueError(str_concat(name(key), ": expected 2 ints (height, width), got ", repr_of(v)));
    for (size_t i = 0; i < 2; ++i) {
      if (!is_int_like(seq[i])) throw bad();
      out[i] = to_int(seq[i]).cast<int64_t>();
    }
  }
  std::optional<std::string> text(const char* key) const {
    if (!has(key)) return std::nullopt;
    py::object v = get(key);
    if (!py::isinstance<py::str>(v)) throw TypeError(str_concat(name(key), ": expected a str, got ", type_name_of(v)));
    return v.cast<std::string>();
  }
  // Keys outside `allowed` are typos the user would never notice: reject them.
  void only(std::initializer_list<const char*> allowed) const {
    std::set<std::string> ok(allowed.begin(), allowed.end());
    for (auto item : d_) {
      const std::string k = py::str(item.first).cast<std::string>();
      if (!ok.count(k)) {
        std::string list;
        for (const auto& a : ok) list += (list.empty() ? "" : ", ") + a;
        throw ValueError(str_concat(where_, ": unknown key '", k, "' (expected some of: ", list, ")"));
      }
    }
  }

 private:
  py::dict d_;
  std::string where_;
};

cpu::ActivationKind activation_of(const DictReader& r, const char* key) {
  auto name = r.text(key);
  if (!name) return cpu::ActivationKind::identity;
  return nn::parse_activation(*name, r.name(key).c_str());
}

nn::InitKind parse_init(const DictReader& r) {
  const auto init = r.text("init");
  if (!init) return nn::InitKind::automatic;
  if (*init == "he_uniform") return nn::InitKind::he_uniform;
  if (*init == "glorot_uniform") return nn::InitKind::glorot_uniform;
  if (*init == "torch_uniform") return nn::InitKind::torch_uniform;
  throw ValueError(str_concat(r.name("init"), ": expected 'he_uniform', 'glorot_uniform', 'torch_uniform' or None, got '",
                              *init, "'"));
}

// "valid" (0), "same" (Keras: ceil(size / stride) outputs), an int or a pair of ints.
void parse_padding(const DictReader& r, LayerSpec* s) {
  if (r.has("padding") && py::isinstance<py::str>(r.get("padding"))) {
    const std::string p = r.get("padding").cast<std::string>();
    if (p == "same") s->same_padding = true;
    else if (p != "valid")
      throw ValueError(str_concat(r.name("padding"), ": expected 'valid', 'same', an int or a pair of ints, got '", p,
                                  "'"));
    return;
  }
  r.pair("padding", 0, s->padding);
}

LayerSpec parse_layer(const py::handle& obj, size_t index) {
  const DictReader r(obj, str_concat("layers[", index, "]"));
  const auto type = r.text("type");
  if (!type) throw ValueError(str_concat(r.name("type"), ": missing"));
  LayerSpec s;
  if (*type == "dense") {
    r.only({"type", "name", "units", "activation", "use_bias", "l1", "l2", "init", "dropout", "drop_connect"});
    s.type = LayerType::dense;
    s.units = r.integer("units");
    s.activation = activation_of(r, "activation");
    s.use_bias = r.boolean("use_bias", true);
    s.l1 = static_cast<float>(r.number("l1", 0.0));
    s.l2 = static_cast<float>(r.number("l2", 0.0));
    s.rate = r.number("dropout", 0.0);
    s.drop_connect = r.number("drop_connect", 0.0);
    s.init = parse_init(r);
  } else if (*type == "dropout" || *type == "alpha_dropout") {
    r.only({"type", "name", "rate"});
    s.type = *type == "dropout" ? LayerType::dropout : LayerType::alpha_dropout;
    if (!r.has("rate")) throw ValueError(str_concat(r.name("rate"), ": missing"));
    s.rate = r.number("rate", 0.0);
  } else if (*type == "activation") {
    r.only({"type", "name", "activation", "slope"});
    s.type = LayerType::activation;
    s.activation = activation_of(r, "activation");
    s.slope = static_cast<float>(r.number("slope", nn::kLeakySlope));
  } else if (*type == "reshape") {
    r.only({"type", "name", "shape"});
    s.type = LayerType::reshape;
    py::object shape = r.get("shape");
    if (!py::isinstance<py::sequence>(shape) || py::isinstance<py::str>(shape))
      throw TypeError(str_concat(r.name("shape"), ": expected a tuple of ints, got ", type_name_of(shape)));
    for (auto d : py::reinterpret_borrow<py::sequence>(shape)) {
      if (!is_int_like(d)) throw TypeError(str_concat(r.name("shape"), ": expected a tuple of ints, got ", repr_of(shape)));
      s.target_shape.push_back(to_int(d).cast<int64_t>());
    }
  } else if (*type == "augment") {
    r.only({"type", "name", "pad", "flip", "erase_p", "erase_max"});
    s.type = LayerType::augment;
    s.augment.pad = r.has("pad") ? r.integer("pad") : 0;
    s.augment.flip = r.boolean("flip", false);
    s.augment.erase_p = r.number("erase_p", 0.0);
    s.augment.erase_max = r.number("erase_max", 0.0);
  } else if (*type == "flatten") {
    r.only({"type", "name"});
    s.type = LayerType::flatten;
  } else if (*type == "conv2d") {
    r.only({"type", "name", "filters", "kernel_size", "strides", "padding", "dilation", "activation", "use_bias", "l1",
            "l2", "init"});
    s.type = LayerType::conv2d;
    s.units = r.integer("filters");
    if (!r.has("kernel_size")) throw ValueError(str_concat(r.name("kernel_size"), ": missing"));
    r.pair("kernel_size", 1, s.kernel);
    r.pair("strides", 1, s.strides);
    r.pair("dilation", 1, s.dilation);
    parse_padding(r, &s);
    s.activation = activation_of(r, "activation");
    s.use_bias = r.boolean("use_bias", true);
    s.l1 = static_cast<float>(r.number("l1", 0.0));
    s.l2 = static_cast<float>(r.number("l2", 0.0));
    s.init = parse_init(r);
  } else if (*type == "max_pool2d" || *type == "avg_pool2d") {
    if (*type == "avg_pool2d") r.only({"type", "name", "pool_size", "strides", "padding", "count_include_pad"});
    else r.only({"type", "name", "pool_size", "strides", "padding"});
    s.type = *type == "max_pool2d" ? LayerType::max_pool2d : LayerType::avg_pool2d;
    r.pair("pool_size", 2, s.kernel);
    if (r.has("strides")) r.pair("strides", 1, s.strides);
    else s.strides[0] = s.kernel[0], s.strides[1] = s.kernel[1];
    parse_padding(r, &s);
    s.count_include_pad = r.boolean("count_include_pad", true);
  } else if (*type == "global_avg_pool2d") {
    r.only({"type", "name"});
    s.type = LayerType::global_avg_pool2d;
  } else if (*type == "batch_norm") {
    r.only({"type", "name", "momentum", "epsilon", "relu", "max_pool"});
    s.type = LayerType::batch_norm;
    s.momentum = r.number("momentum", 0.1);
    s.epsilon = r.number("epsilon", 1e-5);
    s.relu = r.boolean("relu", false);
    s.max_pool = r.boolean("max_pool", false);
  } else if (*type == "spatial_dropout2d") {
    r.only({"type", "name", "rate"});
    s.type = LayerType::spatial_dropout2d;
    if (!r.has("rate")) throw ValueError(str_concat(r.name("rate"), ": missing"));
    s.rate = r.number("rate", 0.0);
  } else {
    throw ValueError(str_concat(r.name("type"), ": expected 'dense', 'dropout', 'alpha_dropout', 'activation', "
                                                "'flatten', 'conv2d', 'max_pool2d', 'avg_pool2d', "
                                                "'global_avg_pool2d', 'batch_norm', 'spatial_dropout2d', 'reshape' or "
                                                "'augment', got '",
                                *type, "'"));
  }
  return s;
}

nn::OptimizerConfig parse_optimizer(const py::handle& obj) {
  const DictReader r(obj, "config");
  const auto type = r.text("type");
  if (!type) throw ValueError("config['type']: missing (expected 'sgd', 'adam' or 'adamw')");
  nn::OptimizerConfig c;
  if (*type == "sgd") {
    r.only({"type", "lr", "momentum", "nesterov", "weight_decay"});
    c.type = nn::OptimizerType::sgd;
    c.lr = r.number("lr", 0.01);
    c.momentum = r.number("momentum", 0.0);
    c.nesterov = r.boolean("nesterov", false);
    c.weight_decay = r.number("weight_decay", 0.0);
  } else if (*type == "adam" || *type == "adamw") {
    r.only({"type", "lr", "beta_1", "beta_2", "epsilon", "weight_decay"});
    c.type = *type == "adam" ? nn::OptimizerType::adam : nn::OptimizerType::adamw;
    c.lr = r.number("lr", 0.001);
    c.beta1 = r.number("beta_1", 0.9);
    c.beta2 = r.number("beta_2", 0.999);
    c.epsilon = r.number("epsilon", 1e-7);
    c.weight_decay = r.number("weight_decay", *type == "adamw" ? 0.01 : 0.0);
  } else {
    throw ValueError(str_concat("config['type']: expected 'sgd', 'adam' or 'adamw', got '", *type, "'"));
  }
  nn::validate_optimizer_config(c);
  return c;
}

py::dict optimizer_dict(const nn::OptimizerConfig& c) {
  py::dict d;
  if (c.type == nn::OptimizerType::sgd) {
    d["type"] = "sgd";
    d["lr"] = c.lr;
    d["momentum"] = c.momentum;
    d["nesterov"] = c.nesterov;
  } else {
    d["type"] = c.type == nn::OptimizerType::adam ? "adam" : "adamw";
    d["lr"] = c.lr;
    d["beta_1"] = c.beta1;
    d["beta_2"] = c.beta2;
    d["epsilon"] = c.epsilon;
  }
  d["weight_decay"] = c.weight_decay;
  return d;
}

py::tuple shape_tuple(const nn::Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = s[i];
  return t;
}

std::vector<py::ssize_t> to_ssize(const nn::Shape& s) { return std::vector<py::ssize_t>(s.begin(), s.end()); }

std::string expected_shape(const char* lead, const nn::Shape& rest) {
  std::string r = str_concat("(", lead);
  for (int64_t d : rest) r += str_concat(", ", d);
  return r + ")";
}

// x: float32 (B, *input_shape), C-contiguous. Returns B.
py::array_t<float, py::array::c_style> require_batch(const nn::Network& net, const py::handle& obj, const char* name) {
  auto x = require_array<float>(obj, name);
  const nn::Shape& in = net.input_shape();
  bool ok = x.ndim() == static_cast<py::ssize_t>(in.size()) + 1;
  for (size_t i = 0; ok && i < in.size(); ++i) ok = x.shape(static_cast<py::ssize_t>(i + 1)) == in[i];
  if (!ok) throw ValueError(str_concat(name, ": expected shape ", expected_shape("B", in), ", got ", shape_str(x)));
  if (x.shape(0) < 1) throw ValueError(str_concat(name, ": expected at least one sample, got shape ", shape_str(x)));
  return x;
}

// Holds whichever targets array y is, and points Targets at it.
struct TargetArrays {
  py::array keep, keep_weights;
  nn::Targets t;
};

TargetArrays require_targets(const nn::Network& net, const py::handle& obj, int64_t rows, const char* name,
                             const py::handle& sample_weight = py::none()) {
  TargetArrays r;
  if (!sample_weight.is_none()) {
    auto w = require_array<float>(sample_weight, "sample_weight");
    if (w.ndim() != 1 || w.shape(0) != rows)
      throw ValueError(str_concat("sample_weight: expected float32 weights of shape (", rows,
                                  ",) (one per sample of x), got ", shape_str(w)));
    r.t.weights = w.data();
    r.keep_weights = w;
  }
  if (net.loss() == nn::LossKind::sparse_categorical_crossentropy) {
    auto y = require_array<int64_t>(obj, name);
    if (y.ndim() != 1 || y.shape(0) != rows)
      throw ValueError(str_concat(name, ": expected int64 labels of shape (", rows, ",) (one per sample of x), got ",
                                  shape_str(y)));
    r.t.labels = y.data();
    r.keep = y;
  } else {
    auto y = require_array<float>(obj, name);
    if (y.ndim() != 2 || y.shape(0) != rows || y.shape(1) != net.n_outputs())
      throw ValueError(str_concat(name, ": expected float32 targets of shape (", rows, ", ", net.n_outputs(),
                                  ") (one row per sample of x), got ", shape_str(y)));
    r.t.dense = y.data();
    r.keep = y;
  }
  return r;
}

// a must have exactly the shape `want`; the message names `name` and, if given, what the shape is of.
void require_shape(const py::array& a, const nn::Shape& want, const std::string& name, const std::string& of = "") {
  bool ok = a.ndim() == static_cast<py::ssize_t>(want.size());
  for (size_t d = 0; ok && d < want.size(); ++d) ok = a.shape(static_cast<py::ssize_t>(d)) == want[d];
  if (!ok)
    throw ValueError(str_concat(name, ": expected shape ", nn::shape_to_string(want), of.empty() ? "" : " (" + of + ")",
                                ", got ", shape_str(a)));
}

// Arrays of the parameters' exact shapes and dtype float32, checked all before any is used.
std::vector<py::array_t<float, py::array::c_style>> require_param_arrays(const nn::Network& net, const py::handle& obj,
                                                                        const char* name, int64_t count,
                                                                        int64_t (*param_of)(const nn::Network&, int64_t)) {
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw TypeError(str_concat(name, ": expected a list of numpy arrays, got ", type_name_of(obj)));
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (static_cast<int64_t>(seq.size()) != count)
    throw ValueError(str_concat(name, ": expected ", count, " arrays, got ", seq.size()));
  std::vector<py::array_t<float, py::array::c_style>> arrays;
  for (int64_t i = 0; i < count; ++i) {
    const std::string item = str_concat(name, "[", i, "]");
    auto a = require_array<float>(seq[static_cast<size_t>(i)], item.c_str());
    require_shape(a, net.param(param_of(net, i)).shape, item);
    arrays.push_back(a);
  }
  return arrays;
}

int64_t param_identity(const nn::Network&, int64_t i) { return i; }
int64_t param_of_slot(const nn::Network& net, int64_t k) { return net.slot_param(k); }

// An int in [0, count) named `name`.
int64_t require_index(const py::handle& obj, const char* name, int64_t count) {
  if (!is_int_like(obj)) throw TypeError(str_concat(name, ": expected an int, got ", type_name_of(obj)));
  const int64_t i = to_int(obj).cast<int64_t>();
  if (i < 0 || i >= count) throw ValueError(str_concat(name, ": expected an int in [0, ", count, "), got ", i));
  return i;
}

int64_t require_param_index(const nn::Network& net, const py::handle& obj) {
  return require_index(obj, "param_index", net.n_params());
}

py::array_t<float> param_array(const nn::Network& net, int64_t i) {
  return py::array_t<float>(to_ssize(net.param(i).shape));
}

}  // namespace

void register_nn(py::module_& m) {
  m.attr("test_devices") = py::tuple(py::cast(test_device_names()));
  py::class_<nn::Network>(m, "Network", R"doc(
A sequential network whose training step (forward, loss, backward, optimizer update) runs in one
native call. See dropnet.models for the user-facing API.

Network(layers: list[dict], input_shape: tuple[int, ...], loss: str, seed: int, device: str = "cpu")
device: "cpu" or "cuda:<index>" (dropnet.cuda.parse_device gives these).
)doc")
      .def(py::init([](const py::object& layers, const py::object& input_shape, const std::string& loss,
                       const py::object& seed, const std::string& device) {
             if (!py::isinstance<py::sequence>(layers) || py::isinstance<py::str>(layers))
               throw TypeError(str_concat("layers: expected a list of dicts, got ", type_name_of(layers)));
             std::vector<LayerSpec> specs;
             py::sequence seq = py::reinterpret_borrow<py::sequence>(layers);
             for (size_t i = 0; i < seq.size(); ++i) specs.push_back(parse_layer(seq[i], i));
             if (!py::isinstance<py::sequence>(input_shape) || py::isinstance<py::str>(input_shape))
               throw TypeError(str_concat("input_shape: expected a tuple of ints, got ", type_name_of(input_shape)));
             nn::Shape shape;
             for (auto d : py::reinterpret_borrow<py::sequence>(input_shape)) {
               if (!is_int_like(d))
                 throw TypeError(str_concat("input_shape: expected a tuple of ints, got ", repr_of(input_shape)));
               shape.push_back(to_int(d).cast<int64_t>());
             }
             const uint64_t s = require_u64_like(seed, "seed");
             std::shared_ptr<const Backend> backend;
             if (device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() < 15 &&
                 device.find_first_not_of("0123456789", 5) == std::string::npos)
               backend = cuda::cuda_backend(std::stoi(device.substr(5)));
             else if (device != "cpu" && !(backend = test_device(device)))
               throw ValueError(str_concat("device: expected 'cpu' or 'cuda:<index>', got '", device, "'"));
             return std::make_unique<nn::Network>(specs, shape, nn::parse_loss(loss), s, std::move(backend));
           }),
           py::arg("layers"), py::arg("input_shape"), py::arg("loss"), py::arg("seed") = 0, py::arg("device") = "cpu")
      .def_property_readonly(
          "device", [](const nn::Network& n) { return n.backend().name(); },
          "Where the network's parameters live and its steps run: 'cpu' or 'cuda:<index>'.")
      .def("__repr__",
           [](const nn::Network& n) {
             int64_t total = 0;
             for (const auto& i : n.layer_info()) total += i.n_params;
             return str_concat("<dropnet._core.nn.Network ", n.layer_info().size(), " layers, input ",
                               nn::shape_to_string(n.input_shape()), ", output ",
                               nn::shape_to_string(n.output_shape()), ", ", total, " parameters, seed ", n.seed(),
                               ">");
           })
      .def_property_readonly("input_shape", [](const nn::Network& n) { return shape_tuple(n.input_shape()); })
      .def_property_readonly("output_shape", [](const nn::Network& n) { return shape_tuple(n.output_shape()); })
      .def_property_readonly("softmax_fused", &nn::Network::softmax_fused,
                             "True when the final softmax is fused into the crossentropy loss (forward returns "
                             "probabilities, training works on logits)")
      .def("layer_info",
           [](const nn::Network& n) {
             py::list out;
             for (const auto& i : n.layer_info()) {
               py::dict d;
               d["type"] = i.type;
               d["output_shape"] = shape_tuple(i.output_shape);
               d["n_params"] = i.n_params;
               out.append(d);
             }
             return out;
           })
      .def_property_readonly("last_batch_correct", &nn::Network::last_batch_correct,
                             "Correct argmax predictions in the last train_step's batch (dropout on); -1 without classes.")
      .def(
          "train_step",
          [](nn::Network& n, const py::object& x, const py::object& y, const py::object& sample_weight) {
            auto xa = require_batch(n, x, "x");
            const int64_t rows = xa.shape(0);
            TargetArrays t = require_targets(n, y, rows, "y", sample_weight);
            const float* xp = xa.data();
            py::gil_scoped_release release;  // raw buffers of xa / t.keep only, both alive in this frame
            return n.train_step(xp, rows, t.t);
          },
          py::arg("x"), py::arg("y"), py::arg("sample_weight") = py::none(),
          "One training step on a batch: x float32 (B, *input_shape), y int64 (B,) labels or float32 (B, n_out), "
          "sample_weight float32 (B,) or None. Returns the batch's mean loss (sum of weighted losses / B) plus "
          "weight penalties.")
      .def(
          "train_steps",
          [](nn::Network& n, const py::object& x, const py::object& y, const py::object& order, int64_t batch_size,
             int64_t step0, int64_t step1, const py::object& sample_weight) {
            auto xa = require_batch(n, x, "x");
            const int64_t rows = xa.shape(0);
            TargetArrays t = require_targets(n, y, rows, "y", sample_weight);
            py::array_t<int64_t, py::array::c_style> oa;
            const int64_t* op = nullptr;
            int64_t n_order = rows;
            if (!order.is_none()) {
              oa = require_array<int64_t>(order, "order");
              DROPNET_CHECK(oa.ndim() == 1, "order: expected a 1-D int64 array of row indices, got shape ",
                            shape_str(oa));
              op = oa.data();
              n_order = oa.shape(0);
              for (int64_t i = 0; i < n_order; ++i)
                DROPNET_CHECK(op[i] >= 0 && op[i] < rows, "order: expected row indices in [0, ", rows, "), got ",
                              op[i], " at position ", i);
            }
            DROPNET_CHECK(step1 >= step0, "steps: expected step1 >= step0, got [", step0, ", ", step1, ")");
            py::array_t<double> losses(step1 - step0);
            py::array_t<int64_t> correct(step1 - step0);
            const float* xp = xa.data();
            double* lp = losses.mutable_data();
            int64_t* cp = correct.mutable_data();
            {
              py::gil_scoped_release release;  // raw buffers of arrays alive in this frame only
              n.train_steps(xp, rows, t.t, op, n_order, batch_size, step0, step1, lp, cp);
            }
            return py::make_tuple(losses, correct);
          },
          py::arg("x"), py::arg("y"), py::arg("order"), py::arg("batch_size"), py::arg("step0"), py::arg("step1"),
          py::arg("sample_weight") = py::none(),
          "Training steps [step0, step1) of an epoch over the whole dataset: step s trains on rows "
          "order[s*batch_size : (s+1)*batch_size] of x and y (order None: rows in sequence), gathered natively; "
          "exactly train_step on each batch. Returns (losses float64, correct int64), one entry per step.")
      .def(
          "keep_dataset",
          [](nn::Network& n, const py::object& x, const py::object& y, const py::object& sample_weight) {
            auto xa = require_batch(n, x, "x");
            const int64_t rows = xa.shape(0);
            TargetArrays t = require_targets(n, y, rows, "y", sample_weight);
            const float* xp = xa.data();
            py::gil_scoped_release release;  // x and y are copied before this returns
            return n.keep_dataset(xp, rows, t.t);
          },
          py::arg("x"), py::arg("y"), py::arg("sample_weight") = py::none(),
          "Copy x, y (labels or dense targets) and sample_weight to the network's device, checked once, so "
          "that train_steps on these very arrays gathers its batches there and fetches its losses, correct "
          "counts and penalties once per call. False on the CPU (nothing copied). Raises when the device "
          "has no room; the network is unchanged. Held until release_dataset or the next keep_dataset.")
      .def("release_dataset", &nn::Network::release_dataset, "Free the device copy made by keep_dataset.")
      .def(
          "compute_gradients",
          [](nn::Network& n, const py::object& x, const py::object& y, const py::object& row_offset,
             const py::object& grad_rows, const py::object& sample_weight) {
            auto xa = require_batch(n, x, "x");
            const int64_t rows = xa.shape(0);
            TargetArrays t = require_targets(n, y, rows, "y", sample_weight);
            const uint64_t offset = require_u64_like(row_offset, "row_offset");
            int64_t total = rows;
            if (!grad_rows.is_none()) {
              if (!py::isinstance<py::int_>(grad_rows) || py::isinstance<py::bool_>(grad_rows))
                throw TypeError(str_concat("grad_rows: expected an int or None, got ",
                                           std::string(py::str(py::type::of(grad_rows).attr("__name__")))));
              total = grad_rows.cast<int64_t>();
            }
            const float* xp = xa.data();
            double loss_sum;
            {
              py::gil_scoped_release release;  // raw buffers of xa / t.keep only, both alive in this frame
              loss_sum = n.compute_gradients(xp, rows, t.t, offset, total);
            }
            return py::make_tuple(loss_sum, n.last_batch_correct());
          },
          py::arg("x"), py::arg("y"), py::arg("row_offset") = 0, py::arg("grad_rows") = py::none(),
          py::arg("sample_weight") = py::none(),
          "First half of train_step: forward (dropout element indices counted from global row row_offset), "
          "loss and backward into grad_buffer, each gradient that of (sum of the rows' weighted losses) / grad_rows "
          "(default: the rows of x). Every layer runs dense. Returns (loss_sum, correct); correct is -1 when "
          "targets have no class. Parameters, optimizer state and rng_offset are unchanged.")
      .def(
          "apply_gradients",
          [](nn::Network& n) {
            py::gil_scoped_release release;  // touches only the network's own buffers
            return n.apply_gradients();
          },
          "Second half of train_step: weight penalties' gradients, the optimizer update from grad_buffer, "
          "rng_offset advanced past the last compute_gradients' dropout streams. Returns the penalty value.")
      .def_property_readonly(
          "grad_buffer",
          [](py::object self) {
            nn::Network& n = self.cast<nn::Network&>();
            DROPNET_CHECK(n.backend().host_memory(), "grad_buffer: data-parallel training runs on the CPU only, "
                          "not on device '", n.backend().name(), "'");
            // A view of the network's arena (no copy), kept alive by the network object.
            return py::array_t<float>({n.grad_arena_size()}, {static_cast<py::ssize_t>(sizeof(float))},
                                      n.grad_arena(), self);
          },
          "Every parameter's gradient in one flat float32 array (a writable view, no copy): parameter i "
          "at grad_offsets[i] with get_params()[i].size entries; padding between them is 0. "
          "Sum it across processes in place between compute_gradients and apply_gradients.")
      .def(
          "set_batchnorm_sync",
          [](nn::Network& n, const py::object& sum) {
            if (sum.is_none()) return n.set_batchnorm_sum(nullptr);
            if (!PyCallable_Check(sum.ptr()))
              throw TypeError(str_concat("sum: expected a callable or None, got ",
                                         std::string(py::str(py::type::of(sum).attr("__name__")))));
            // Held by the network; dropped (with the GIL, like the network itself) when replaced.
            auto fn = std::make_shared<py::object>(sum);
            n.set_batchnorm_sum([fn](double* data, int64_t count) {
              py::gil_scoped_acquire gil;  // called from compute_gradients, which released it
              py::capsule no_owner(data, [](void*) {});
              (*fn)(py::array_t<double>({count}, {static_cast<py::ssize_t>(sizeof(double))}, data, no_owner));
            });
          },
          py::arg("sum"),
          "Synchronised batch norm for compute_gradients: sum(a) must replace the float64 array a by its sum "
          "over the processes, in place (e.g. an MPI allreduce); batch statistics then cover every process's "
          "batch. None: each process uses its own batch (the default).")
      .def_property_readonly(
          "grad_offsets",
          [](const nn::Network& n) {
            py::list out;
            for (int64_t i = 0; i < n.n_params(); ++i) out.append(n.grad_offset(i));
            return out;
          },
          "Start of each parameter's gradient in grad_buffer.")
      .def(
          "forward",
          [](nn::Network& n, const py::object& x, bool training, const py::object& stream_offset, bool bn_training) {
            auto xa = require_batch(n, x, "x");
            const int64_t rows = xa.shape(0);
            std::optional<uint64_t> offset;
            if (!stream_offset.is_none()) offset = require_u64_like(stream_offset, "stream_offset");
            py::array_t<float> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(n.n_outputs())});
            const float* xp = xa.data();
            float* op = out.mutable_data();
            {
              py::gil_scoped_release release;
              n.forward(xp, rows, training, offset, op, bn_training);
            }
            return out;
          },
          py::arg("x"), py::arg("training") = false, py::arg("stream_offset") = py::none(),
          py::arg("bn_training") = false,
          "Outputs float32 (B, n_out). training=True applies dropout with streams from stream_offset (the "
          "network's counter is left alone) or, when None, from the counter (which advances). Batch norm uses "
          "its running statistics unless bn_training=True (batch statistics, running ones updated as in a "
          "training step); so training=True alone is Monte Carlo dropout.")
      .def(
          "evaluate",
          [](nn::Network& n, const py::object& x, const py::object& y, const py::object& batch_size,
             const py::object& sample_weight) {
            auto xa = require_batch(n, x, "x");
            const int64_t rows = xa.shape(0);
            TargetArrays t = require_targets(n, y, rows, "y", sample_weight);
            if (!is_int_like(batch_size))
              throw TypeError(str_concat("batch_size: expected an int >= 1, got ", type_name_of(batch_size)));
            const int64_t bs = to_int(batch_size).cast<int64_t>();
            const float* xp = xa.data();
            double loss_sum = 0.0, correct = 0.0, weight_sum = 0.0;
            {
              py::gil_scoped_release release;
              n.evaluate(xp, rows, t.t, bs, &loss_sum, &correct, &weight_sum);
            }
            if (sample_weight.is_none())
              return py::tuple(py::make_tuple(loss_sum, static_cast<int64_t>(correct)));
            return py::tuple(py::make_tuple(loss_sum, correct, weight_sum));
          },
          py::arg("x"), py::arg("y"), py::arg("batch_size") = 256, py::arg("sample_weight") = py::none(),
          "Inference over x in batches: (sum of per-sample losses without penalties, number of correct argmax "
          "predictions; binary_crossentropy: correct outputs). With sample_weight (float32 (N,)): (sum of "
          "weighted losses, weighted count of correct predictions, sum of the weights).")
      .def(
          "set_trainable",
          [](nn::Network& n, const py::object& i, bool trainable) { n.set_trainable(require_param_index(n, i), trainable); },
          py::arg("param_index"), py::arg("trainable"),
          "Freeze (False) or unfreeze a parameter: the optimizer and weight penalties leave a frozen one alone.")
      .def(
          "set_max_norm",
          [](nn::Network& n, const py::object& i, double max_norm) {
            n.set_max_norm(require_param_index(n, i), static_cast<float>(max_norm));
          },
          py::arg("param_index"), py::arg("max_norm"),
          "Max-norm constraint on the weight of a dense or conv2d layer (0 removes it): after each update every "
          "row of W (a unit's incoming weights, a filter) whose L2 norm exceeds max_norm is scaled back to it.")
      .def_property_readonly("sigmoid_fused", &nn::Network::sigmoid_fused,
                             "True when the final sigmoid is fused into binary_crossentropy (forward returns "
                             "probabilities, training works on logits)")
      .def("get_params",
           [](const nn::Network& n) {
             py::list out;
             for (int64_t i = 0; i < n.n_params(); ++i) {
               auto a = param_array(n, i);
               n.copy_param(i, a.mutable_data());
               out.append(a);
             }
             return out;
           })
      .def(
          "set_params",
          [](nn::Network& n, const py::object& params) {
            auto arrays = require_param_arrays(n, params, "params", n.n_params(), param_identity);
            std::vector<const float*> ptrs;
            for (auto& a : arrays) ptrs.push_back(a.data());
            py::gil_scoped_release release;
            n.set_params(ptrs);
          },
          py::arg("params"))
      .def("get_state",
           [](const nn::Network& n) {
             py::list out;
             for (int64_t i = 0; i < n.n_state(); ++i) {
               py::array_t<float> a(to_ssize(n.state(i).shape));
               n.copy_state(i, a.mutable_data());
               out.append(a);
             }
             return out;
           },
           "Non-trainable state (copies): for each batch_norm layer in order, running_mean then running_var (C,).")
      .def(
          "set_state",
          [](nn::Network& n, const py::object& state) {
            if (!py::isinstance<py::sequence>(state) || py::isinstance<py::str>(state))
              throw TypeError(str_concat("state: expected a list of numpy arrays, got ", type_name_of(state)));
            py::sequence seq = py::reinterpret_borrow<py::sequence>(state);
            if (static_cast<int64_t>(seq.size()) != n.n_state())
              throw ValueError(str_concat("state: expected ", n.n_state(), " arrays, got ", seq.size()));
            std::vector<py::array_t<float, py::array::c_style>> arrays;
            std::vector<const float*> ptrs;
            for (int64_t i = 0; i < n.n_state(); ++i) {
              const std::string item = str_concat("state[", i, "]");
              auto a = require_array<float>(seq[static_cast<size_t>(i)], item.c_str());
              require_shape(a, n.state(i).shape, item);
              const int64_t bad = cpu::first_non_finite(a.data(), n.state(i).size);
              if (bad >= 0) throw ValueError(str_concat(item, ": expected finite values, got ", a.data()[bad]));
              arrays.push_back(a);
              ptrs.push_back(a.data());
            }
            n.set_state(ptrs);
          },
          py::arg("state"), "Replace the batch norm running statistics (get_state's order and shapes).")
      .def("get_grads",
           [](const nn::Network& n) {
             py::list out;
             for (int64_t i = 0; i < n.n_params(); ++i) {
               auto a = param_array(n, i);
               n.copy_grad(i, a.mutable_data());
               out.append(a);
             }
             return out;
           })
      .def("set_optimizer", [](nn::Network& n, const py::object& config) { n.set_optimizer(parse_optimizer(config)); },
           py::arg("config"))
      .def("get_optimizer_config", [](const nn::Network& n) { return optimizer_dict(n.optimizer_config()); })
      .def_property(
          "lr", [](const nn::Network& n) { return n.lr(); },
          [](nn::Network& n, const py::object& v) {
            if (!is_number(v)) throw TypeError(str_concat("lr: expected a number, got ", type_name_of(v)));
            n.set_lr(to_double(v));
          })
      .def("get_optimizer_state",
           [](const nn::Network& n) {
             py::list slots;
             for (int64_t k = 0; k < n.n_optimizer_slots(); ++k) {
               auto a = param_array(n, n.slot_param(k));
               n.copy_slot(k, a.mutable_data());
               slots.append(a);
             }
             py::dict d;
             d["step"] = n.optimizer_step();
             d["slots"] = slots;
             return d;
           })
      .def(
          "set_optimizer_state",
          [](nn::Network& n, const py::object& state) {
            const DictReader r(state, "state");
            r.only({"step", "slots"});
            const int64_t step = r.integer("step");
            if (!r.has("slots")) throw ValueError("state['slots']: missing");
            auto arrays = require_param_arrays(n, r.get("slots"), "state['slots']", n.n_optimizer_slots(), param_of_slot);
            std::vector<const float*> ptrs;
            for (auto& a : arrays) ptrs.push_back(a.data());
            n.set_optimizer_state(step, ptrs);
          },
          py::arg("state"))
      .def(
          "set_optimizer_slot",
          [](nn::Network& n, const py::object& index, const py::object& values) {
            const int64_t k = require_index(index, "slot", n.n_optimizer_slots());
            auto a = require_array<float>(values, "values");
            require_shape(a, n.param(n.slot_param(k)).shape, "values", str_concat("params[", n.slot_param(k), "]"));
            n.set_optimizer_slot(k, a.data());
          },
          py::arg("slot"), py::arg("values"),
          "Replace optimizer slot `slot` (get_optimizer_state()['slots'] order) with `values`, of its parameter's "
          "shape; masked entries become 0. set_optimizer_step sets the step count.")
      .def_property_readonly("n_optimizer_slots", &nn::Network::n_optimizer_slots)
      .def_property_readonly(
          "param_shapes",
          [](const nn::Network& n) {
            py::list out;
            for (int64_t i = 0; i < n.n_params(); ++i) out.append(py::tuple(py::cast(to_ssize(n.param(i).shape))));
            return out;
          },
          "Shapes of get_params()'s arrays, without copying them.")
      .def(
          "set_optimizer_step",
          [](nn::Network& n, const py::object& step) {
            if (!is_int_like(step)) throw TypeError(str_concat("step: expected an int, got ", type_name_of(step)));
            const int64_t s = to_int(step).cast<int64_t>();
            if (s < 0) throw ValueError(str_concat("step: expected an int >= 0, got ", s));
            n.set_optimizer_step(s);
          },
          py::arg("step"))
      .def_property(
          "rng_offset", [](const nn::Network& n) { return n.rng_offset(); },
          [](nn::Network& n, const py::object& v) {
            n.set_rng_offset(require_u64_like(v, "rng_offset"));
          })
      .def_property_readonly("seed", &nn::Network::seed)
      .def(
          "set_mask",
          [](nn::Network& n, const py::object& index, const py::object& mask) {
            const int64_t i = require_param_index(n, index);
            if (mask.is_none()) return n.set_mask(i, nullptr);
            auto a = require_array<float>(mask, "mask");
            require_shape(a, n.param(i).shape, "mask", str_concat("params[", i, "]"));
            n.set_mask(i, a.data());
          },
          py::arg("param_index"), py::arg("mask"),
          "0/1 float32 mask of params[param_index]'s shape (None removes it): the weight, its gradient and its "
          "optimizer state are zeroed where the mask is 0, now and after every step.")
      .def(
          "get_mask",
          [](const nn::Network& n, const py::object& index) -> py::object {
            const int64_t i = require_param_index(n, index);
            if (!n.has_mask(i)) return py::none();
            auto a = param_array(n, i);
            n.copy_mask(i, a.mutable_data());
            return std::move(a);
          },
          py::arg("param_index"))
      .def(
          "set_sparse_mode",
          [](nn::Network& n, const py::object& index, const py::object& mode) {
            const int64_t i = require_param_index(n, index);
            if (!py::isinstance<py::str>(mode))
              throw TypeError(str_concat("mode: expected 'auto', 'sparse' or 'dense', got ", type_name_of(mode)));
            const std::string m = mode.cast<std::string>();
            nn::SparseMode sm;
            if (m == "auto") sm = nn::SparseMode::automatic;
            else if (m == "sparse") sm = nn::SparseMode::sparse;
            else if (m == "dense") sm = nn::SparseMode::dense;
            else throw ValueError(str_concat("mode: expected 'auto', 'sparse' or 'dense', got '", m, "'"));
            n.set_sparse_mode(i, sm);
          },
          py::arg("param_index"), py::arg("mode"),
          "How the dense or conv2d layer owning params[param_index] (its weight or bias) runs once its weight has "
          "a mask: 'sparse' (compressed weight in forward, backward and the optimizer), 'dense' (masked dense "
          "GEMM) or 'auto' (sparse when the mask's density is below the break-even measured for the layer's shape "
          "and batch size).")
      .def(
          "sparse_info",
          [](const nn::Network& n) {
            py::list out;
            for (const auto& i : n.sparse_info()) {
              py::dict d;
              d["layer"] = i.layer;
              d["param_index"] = i.param_index;
              d["density"] = i.density;
              d["mode"] = nn::sparse_mode_name(i.mode);
              d["sparse"] = i.sparse;
              if (i.break_even.batch > 0) {
                d["break_even_density"] = i.break_even.density;
                d["inference_break_even_density"] = i.break_even.inference_density;
                d["break_even_batch"] = i.break_even.batch;
                d["dense_seconds"] = i.break_even.dense_seconds;
              } else {
                d["break_even_density"] = py::none();
                d["inference_break_even_density"] = py::none();
                d["break_even_batch"] = py::none();
                d["dense_seconds"] = py::none();
              }
              out.append(d);
            }
            return out;
          },
          "Per dense and conv2d layer: layer index, weight param_index, density of its mask (1.0 without one), mode "
          "('auto'|'sparse'|'dense'), sparse (whether the last step or forward ran it sparse), "
          "break_even_density (training step) / inference_break_even_density (forward) / break_even_batch / "
          "dense_seconds (seconds of a dense training step of the layer): the calibration 'auto' used last; None "
          "before it ran.");
}

}  // namespace bindings
}  // namespace dropnet

"""Layer specifications for ``dropnet.Sequential``.

A layer here holds only its configuration; the native Network owns parameters and does the
arithmetic. ``Sequential`` turns the list into the Network's layer dicts, fusing every
``Dense`` that is directly followed by a ``Dropout`` into one native dense layer with dropout
applied after its activation (one pass over the activations instead of two; same numbers).

Shapes: inputs are ``(B, *input_shape)``; ``Dense`` needs a flat input ``(B, n)`` (put a
``Flatten`` first for images). Image layers (``Conv2D``, pooling, ``SpatialDropout2D``) take
channels-first samples ``(C, H, W)`` (batches NCHW, as PyTorch).

Every layer takes ``name=`` (default: Keras-style, given by the model: ``dense``, ``dense_1``,
``conv2d``, ...; see ``Sequential.get_layer``) and ``trainable=`` (False freezes its parameters:
the optimizer and weight penalties leave them alone, gradients still flow through).
"""
from __future__ import annotations

import functools
import math
import re

import numpy as np
from typing import Dict, Optional, Sequence, Tuple, Type, Union

from . import constraints as _constraints
from . import regularizers as _regularizers

Shape = Tuple[int, ...]

ACTIVATIONS = ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu", "softmax")
INITIALIZERS = ("he_uniform", "glorot_uniform", "torch_uniform")


def _check_activation(name: Optional[str], arg: str = "activation") -> Optional[str]:
    if name is None:
        return None
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"{arg}: expected None or one of {ACTIVATIONS}, got {name!r}")
    name = name.lower()
    return None if name == "linear" else name


def _check_rate(rate: object, name: str = "rate") -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"{name}: expected a float in [0, 1), got {type(rate).__name__}")
    rate = float(rate)
    if not (math.isfinite(rate) and 0.0 <= rate < 1.0):
        raise ValueError(f"{name}: expected a float in [0, 1), got {rate}")
    return rate


#: Largest size a layer argument (units, filters, kernel, stride, input dimension) may have: the
#: native network indexes with int32, and anything larger could never be allocated anyway.
MAX_SIZE = 2**31 - 1


def check_shape(shape: object, name: str = "input_shape") -> Shape:
    """A tuple of positive ints from an int or a sequence of ints."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name}: expected a tuple of positive ints, got {shape!r}") from None
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_SIZE for d in dims):
        raise ValueError(f"{name}: expected a non-empty tuple of ints in [1, 2**31 - 1], got {shape!r}")
    return dims


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _check_name(name: object) -> Optional[str]:
    if name is None:
        return None
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"name: expected None or an identifier-like str (letters, digits, _ . -), got {name!r}")
    return name


def _check_trainable(trainable: object) -> bool:
    if not isinstance(trainable, (bool, np.bool_)):
        raise TypeError(f"trainable: expected a bool, got {type(trainable).__name__}")
    return bool(trainable)


def default_name(cls: type) -> str:
    """Keras' base name of a layer class: ``Dense`` -> ``dense``, ``Conv2D`` -> ``conv2d``,
    ``MaxPool2D`` -> ``max_pool2d``, ``BatchNormalization`` -> ``batch_normalization``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])|(?<=[a-z])(?=[A-Z])", "_", cls.__name__.lstrip("_")).lower()


class Layer:
    """Base of the layer specs: ``output_shape``, ``n_params`` and ``get_config`` (JSON-safe).

    ``name`` and ``trainable`` are keyword arguments of every layer (see the module docstring)."""

    name: Optional[str] = None
    trainable: bool = True

    def __init__(self, *, name: Optional[str] = None, trainable: bool = True) -> None:
        self.name = _check_name(name)
        self.trainable = _check_trainable(trainable)

    def __init_subclass__(cls, **kwargs) -> None:
        # Every subclass constructor also takes name= and trainable= (Keras' base-layer keywords).
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_takes_base_kwargs", False):
            return

        @functools.wraps(init)
        def __init__(self, *args, name: Optional[str] = None, trainable: bool = True, **kw) -> None:
            init(self, *args, **kw)
            self.name = _check_name(name)
            self.trainable = _check_trainable(trainable)

        __init__._takes_base_kwargs = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[misc]

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def n_params(self, input_shape: Shape) -> int:
        return 0

    def get_config(self) -> dict:
        return {}

    def describe(self) -> str:
        """Short text for ``summary()``."""
        cfg = self.get_config()
        return f"{type(self).__name__}({', '.join(str(v) for v in cfg.values())})" if cfg else type(self).__name__

    def to_config(self) -> dict:
        out = {"class": type(self).__name__, "config": self.get_config()}
        if self.name is not None:
            out["name"] = self.name
        if not self.trainable:
            out["trainable"] = False
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        if self.name is not None:
            args = f"{args}, name={self.name!r}" if args else f"name={self.name!r}"
        return f"{type(self).__name__}({args})"


class Input(Layer):
    """Declares the input shape (without the batch axis); only valid as the first layer."""

    def __init__(self, shape: Union[int, Sequence[int]]) -> None:
        self.shape = check_shape(shape, "shape")

    def get_config(self) -> dict:
        return {"shape": list(self.shape)}


class Dense(Layer):
    """Fully connected layer ``y = activation(x @ W.T + b)``; W is (units, in).

    kernel_initializer: ``'torch_uniform'`` (the default, None: PyTorch's ``nn.Linear`` /
    ``nn.Conv2d`` draw, weight and bias U(±1 / sqrt(fan_in))), ``'he_uniform'``
    (U(±sqrt(6 / fan_in))) or ``'glorot_uniform'`` (U(±sqrt(6 / (fan_in + fan_out))), Keras'
    default); He and Glorot start biases at 0. kernel_regularizer: ``dropnet.regularizers``.
    kernel_constraint: ``dropnet.constraints.MaxNorm(c)``: after every update each unit's incoming
    weights (a row of W) are scaled back to L2 norm ``c`` when longer (Srivastava et al. 2014 pair
    it with dropout).
    """

    def __init__(self, units: int, activation: Optional[str] = None,
                 kernel_regularizer: Optional[_regularizers.L1L2] = None, use_bias: bool = True,
                 kernel_initializer: Optional[str] = None,
                 kernel_constraint: Optional[_constraints.MaxNorm] = None) -> None:
        if isinstance(units, bool) or not isinstance(units, int):
            raise TypeError(f"units: expected a positive int, got {type(units).__name__}")
        if not 0 < units <= MAX_SIZE:
            raise ValueError(f"units: expected an int in [1, 2**31 - 1], got {units}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected a bool, got {type(use_bias).__name__}")
        if kernel_initializer is not None and kernel_initializer not in INITIALIZERS:
            raise ValueError(f"kernel_initializer: expected None or one of {INITIALIZERS}, "
                             f"got {kernel_initializer!r}")
        self.units = units
        self.activation = _check_activation(activation)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.kernel_constraint = _constraints.get(kernel_constraint)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"Dense({self.units}): expected a flat input (n,), got {input_shape}; "
                             "add a Flatten() layer before it")
        return (self.units,)

    def n_params(self, input_shape: Shape) -> int:
        return input_shape[0] * self.units + (self.units if self.use_bias else 0)

    def get_config(self) -> dict:
        reg = self.kernel_regularizer.get_config() if self.kernel_regularizer else None
        cfg = {"units": self.units, "activation": self.activation, "kernel_regularizer": reg,
               "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer}
        if self.kernel_constraint is not None:
            cfg["kernel_constraint"] = self.kernel_constraint.get_config()
        return cfg

    def describe(self) -> str:
        return f"Dense({self.units}, {self.activation or 'linear'})"

    def native(self, dropout: float = 0.0) -> dict:
        reg = self.kernel_regularizer
        return {"type": "dense", "units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "l1": reg.l1 if reg else 0.0, "l2": reg.l2 if reg else 0.0, "init": self.kernel_initializer,
                "dropout": dropout}


class Dropout(Layer):
    """Inverted dropout: in training each element is zeroed with probability ``rate`` and the rest
    scaled by ``1/(1 - rate)``; identity at inference. Masks come from Philox streams of the
    model's seed (bit-reproducible across threads and devices)."""

    def __init__(self, rate: float) -> None:
        self.rate = _check_rate(rate)

    def get_config(self) -> dict:
        return {"rate": self.rate}

    def native(self) -> dict:
        return {"type": "dropout", "rate": self.rate}


class AlphaDropout(Layer):
    """Dropout for SELU networks: dropped units take SELU's negative saturation value and an
    affine correction keeps mean and variance (Klambauer et al. 2017)."""

    def __init__(self, rate: float) -> None:
        self.rate = _check_rate(rate)

    def get_config(self) -> dict:
        return {"rate": self.rate}

    def native(self) -> dict:
        return {"type": "alpha_dropout", "rate": self.rate}


class Activation(Layer):
    """An elementwise activation (or softmax over the last axis) as its own layer."""

    def __init__(self, activation: str) -> None:
        if activation is None:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got None")
        self.activation = _check_activation(activation) or "linear"

    def get_config(self) -> dict:
        return {"activation": self.activation}

    def native(self) -> dict:
        return {"type": "activation", "activation": self.activation}


class Flatten(Layer):
    """(B, d1, d2, ...) -> (B, d1 * d2 * ...)."""

    def output_shape(self, input_shape: Shape) -> Shape:
        n = 1
        for d in input_shape:
            n *= d
        return (n,)

    def native(self) -> dict:
        return {"type": "flatten"}


# ---------------------------------------------------------------------------------- images (NCHW)
Pair = Tuple[int, int]
_CONV_FUSABLE = (None, "relu", "leaky_relu", "tanh", "sigmoid")


def _pair(value: object, name: str, minimum: int = 1) -> Pair:
    """(h, w) from an int or a pair of ints, each >= minimum."""
    vals = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        vals = tuple(vals)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}") from None
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if any(v < minimum or v > MAX_SIZE for v in vals):
        raise ValueError(f"{name}: expected ints in [{minimum}, 2**31 - 1], got {value!r}")
    return int(vals[0]), int(vals[1])


def _padding(value: object, allow_same: bool = True) -> Union[str, Pair]:
    if isinstance(value, str):
        ok = ("valid", "same") if allow_same else ("valid",)
        if value.lower() not in ok:
            raise ValueError(f"padding: expected one of {ok} or an int or pair of ints, got {value!r}")
        return value.lower()
    return _pair(value, "padding", minimum=0)


def _require_image(layer: Layer, input_shape: Shape) -> Tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"{layer.describe()}: expected an image input (channels, height, width), got {input_shape}")
    return input_shape  # type: ignore[return-value]


def _window_out(layer: Layer, size: int, pad_total: int, span: int, stride: int, axis: str) -> int:
    if span > size + pad_total:
        raise ValueError(f"{layer.describe()}: the window ({span} along {axis}) is larger than the padded input "
                         f"({size + pad_total})")
    return (size + pad_total - span) // stride + 1


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as PyTorch) on NCHW images: (C, H, W) -> (filters, OH, OW).

    Weights are (filters, C, kh, kw) and bias (filters,), PyTorch's ``nn.Conv2d`` layout, so
    ``get_weights``/``set_weights`` move them to and from torch unchanged. padding: ``'valid'``,
    ``'same'`` (Keras: ceil(size / stride) outputs, an odd padding cell at the bottom/right), an
    int or an (h, w) pair of symmetric zero padding. activation: relu, leaky_relu, tanh and
    sigmoid are fused into the convolution; other activations run as a separate layer.
    kernel_initializer: as ``Dense`` (fans are C·kh·kw and filters·kh·kw). From the default
    ``'torch_uniform'`` the small CNN of the benchmarks ends about a point more accurate than from
    He or Glorot.
    """

    def __init__(self, filters: int, kernel_size: Union[int, Pair], strides: Union[int, Pair] = 1,
                 padding: Union[str, int, Pair] = "valid", dilation_rate: Union[int, Pair] = 1,
                 activation: Optional[str] = None, use_bias: bool = True,
                 kernel_regularizer: Optional[_regularizers.L1L2] = None,
                 kernel_initializer: Optional[str] = None,
                 kernel_constraint: Optional[_constraints.MaxNorm] = None) -> None:
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)):
            raise TypeError(f"filters: expected a positive int, got {type(filters).__name__}")
        if not 0 < filters <= MAX_SIZE:
            raise ValueError(f"filters: expected an int in [1, 2**31 - 1], got {filters}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected a bool, got {type(use_bias).__name__}")
        if kernel_initializer is not None and kernel_initializer not in INITIALIZERS:
            raise ValueError(f"kernel_initializer: expected None or one of {INITIALIZERS}, "
                             f"got {kernel_initializer!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.activation = _check_activation(activation)
        self.use_bias = use_bias
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.kernel_initializer = kernel_initializer
        self.kernel_constraint = _constraints.get(kernel_constraint)

    def output_shape(self, input_shape: Shape) -> Shape:
        _, h, w = _require_image(self, input_shape)
        out = []
        for a, size in enumerate((h, w)):
            span = self.dilation_rate[a] * (self.kernel_size[a] - 1) + 1
            stride = self.strides[a]
            if self.padding == "same":
                n = -(-size // stride)
                pad_total = max((n - 1) * stride + span - size, 0)
            else:
                pad_total = 0 if self.padding == "valid" else 2 * self.padding[a]  # type: ignore[index]
            out.append(_window_out(self, size, pad_total, span, stride, "height" if a == 0 else "width"))
        return (self.filters, out[0], out[1])

    def n_params(self, input_shape: Shape) -> int:
        c = input_shape[0]
        return self.filters * c * self.kernel_size[0] * self.kernel_size[1] + (self.filters if self.use_bias else 0)

    def get_config(self) -> dict:
        reg = self.kernel_regularizer.get_config() if self.kernel_regularizer else None
        return {"filters": self.filters, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
                "dilation_rate": list(self.dilation_rate), "activation": self.activation, "use_bias": self.use_bias,
                "kernel_regularizer": reg, "kernel_initializer": self.kernel_initializer,
                **({"kernel_constraint": self.kernel_constraint.get_config()} if self.kernel_constraint else {})}

    def describe(self) -> str:
        kh, kw = self.kernel_size
        return f"Conv2D({self.filters}, {kh}x{kw}, {self.activation or 'linear'})"

    def native_list(self) -> list:
        reg = self.kernel_regularizer
        fused = self.activation in _CONV_FUSABLE
        conv = {"type": "conv2d", "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
                "dilation": list(self.dilation_rate), "activation": self.activation if fused else None,
                "use_bias": self.use_bias, "l1": reg.l1 if reg else 0.0, "l2": reg.l2 if reg else 0.0,
                "init": self.kernel_initializer}
        return [conv] if fused else [conv, {"type": "activation", "activation": self.activation}]


class _Pool2D(Layer):
    _native_type = ""

    def __init__(self, pool_size: Union[int, Pair] = 2, strides: Union[int, Pair, None] = None,
                 padding: Union[str, int, Pair] = "valid") -> None:
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "strides")
        self.padding = _padding(padding, allow_same=False)
        if not isinstance(self.padding, str) and any(2 * p > k for p, k in zip(self.padding, self.pool_size)):
            raise ValueError(f"padding: expected at most half the pool size {self.pool_size}, got {padding!r}")

    def output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = _require_image(self, input_shape)
        pads = (0, 0) if self.padding == "valid" else self.padding
        oh = _window_out(self, h, 2 * pads[0], self.pool_size[0], self.strides[0], "height")  # type: ignore[index]
        ow = _window_out(self, w, 2 * pads[1], self.pool_size[1], self.strides[1], "width")  # type: ignore[index]
        return (c, oh, ow)

    def get_config(self) -> dict:
        return {"pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding)}

    def describe(self) -> str:
        return f"{type(self).__name__}({self.pool_size[0]}x{self.pool_size[1]})"

    def native(self) -> dict:
        return {"type": self._native_type, "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding)}


class MaxPool2D(_Pool2D):
    """Max pooling over (C, H, W) images, PyTorch floor mode; strides default to pool_size;
    padding 'valid' or symmetric ints (at most half the window; padding never wins)."""

    _native_type = "max_pool2d"


class AveragePooling2D(_Pool2D):
    """Average pooling (PyTorch floor mode; padded cells count in the divisor, as PyTorch's default)."""

    _native_type = "avg_pool2d"


class GlobalAveragePooling2D(Layer):
    """(C, H, W) -> (C,): the mean of each channel."""

    def output_shape(self, input_shape: Shape) -> Shape:
        return (_require_image(self, input_shape)[0],)

    def native(self) -> dict:
        return {"type": "global_avg_pool2d"}


class BatchNormalization(Layer):
    """Batch normalisation over the batch (for (n,) inputs) or over batch, height and width (for
    (C, H, W) images), per channel: gamma (C,) and beta (C,) trainable, running mean and variance
    (C,) non-trainable (``Sequential.get_state``).

    momentum follows PyTorch's convention: ``running = (1 - momentum) * running + momentum * batch``
    (default 0.1; Keras' momentum=0.99 is PyTorch's 0.01). The running variance is the unbiased
    (Bessel-corrected) batch variance, as in PyTorch. Training steps use batch statistics;
    ``predict``/``evaluate`` and Monte Carlo dropout use the running ones. A following
    ``Activation('relu')`` is fused into this layer, and so is a ``MaxPool2D(2)`` (2x2, stride 2,
    no padding) after that ReLU on images: one native layer that never writes the full-size
    normalised output, with the same results as the three layers apart.
    """

    def __init__(self, momentum: float = 0.1, epsilon: float = 1e-5) -> None:
        for name, v in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)):
                raise TypeError(f"{name}: expected a float, got {type(v).__name__}")
        if not (math.isfinite(momentum) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"momentum: expected a float in [0, 1] (PyTorch convention), got {momentum}")
        if not (math.isfinite(epsilon) and epsilon > 0.0):
            raise ValueError(f"epsilon: expected a float > 0, got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) not in (1, 3):
            raise ValueError(f"BatchNormalization: expected an input (n,) or (C, H, W), got {input_shape}")
        return input_shape

    def n_params(self, input_shape: Shape) -> int:
        return 2 * input_shape[0]

    def n_state(self, input_shape: Shape) -> int:
        return 2 * input_shape[0]

    def get_config(self) -> dict:
        return {"momentum": self.momentum, "epsilon": self.epsilon}

    def native(self, relu: bool = False, max_pool: bool = False) -> dict:
        d = {"type": "batch_norm", "momentum": self.momentum, "epsilon": self.epsilon, "relu": relu}
        if max_pool:
            d["max_pool"] = True
        return d


class SpatialDropout2D(Layer):
    """Dropout of whole channels of (C, H, W) images: in training each (sample, channel) plane is
    zeroed with probability ``rate`` and the rest scaled by ``1/(1 - rate)``; identity at inference."""

    def __init__(self, rate: float) -> None:
        self.rate = _check_rate(rate)

    def output_shape(self, input_shape: Shape) -> Shape:
        _require_image(self, input_shape)
        return input_shape

    def get_config(self) -> dict:
        return {"rate": self.rate}

    def native(self) -> dict:
        return {"type": "spatial_dropout2d", "rate": self.rate}


class GlobalMaxPooling2D(Layer):
    """(C, H, W) -> (C,): the maximum of each channel (runs as an H×W max pooling plus a flatten)."""

    def output_shape(self, input_shape: Shape) -> Shape:
        return (_require_image(self, input_shape)[0],)

    def native_list(self, input_shape: Shape) -> list:
        _, h, w = _require_image(self, input_shape)
        return [{"type": "max_pool2d", "pool_size": [h, w], "strides": [h, w], "padding": "valid"},
                {"type": "flatten"}]


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (same number of values, C order), e.g. (784,) ->
    (1, 28, 28). No data moves."""

    def __init__(self, target_shape: Sequence[int]) -> None:
        self.target_shape = check_shape(target_shape, "target_shape")

    def output_shape(self, input_shape: Shape) -> Shape:
        if int(np.prod(input_shape)) != int(np.prod(self.target_shape)):
            raise ValueError(f"Reshape{self.target_shape}: cannot reshape {input_shape} "
                             f"({int(np.prod(input_shape))} values) to {self.target_shape} "
                             f"({int(np.prod(self.target_shape))} values)")
        return self.target_shape

    def get_config(self) -> dict:
        return {"target_shape": list(self.target_shape)}

    def native(self) -> dict:
        return {"type": "reshape", "shape": list(self.target_shape)}


class LeakyReLU(Layer):
    """``max(x, 0) + alpha * min(x, 0)``; alpha defaults to Keras' 0.3 (PyTorch's is 0.01)."""

    def __init__(self, alpha: float = 0.3) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"alpha: expected a float, got {type(alpha).__name__}")
        if not math.isfinite(alpha):
            raise ValueError(f"alpha: expected a finite float, got {alpha}")
        self.alpha = float(alpha)

    def get_config(self) -> dict:
        return {"alpha": self.alpha}

    def native(self) -> dict:
        return {"type": "activation", "activation": "leaky_relu", "slope": self.alpha}


class ELU(Layer):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise (Clevert et al. 2016; alpha 1 as in
    Keras and PyTorch)."""

    def __init__(self, alpha: float = 1.0) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"alpha: expected a float, got {type(alpha).__name__}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha: expected a finite float > 0, got {alpha}")
        self.alpha = float(alpha)

    def get_config(self) -> dict:
        return {"alpha": self.alpha}

    def native(self) -> dict:
        return {"type": "activation", "activation": "elu", "slope": self.alpha}


class Softmax(Layer):
    """Softmax over the features of a flat sample (B, n); with a crossentropy loss a final
    ``Softmax`` is fused into the loss like ``Dense(..., activation='softmax')``."""

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"Softmax: expected a flat input (n,), got {input_shape}; add Flatten() first")
        return input_shape

    def native(self) -> dict:
        return {"type": "activation", "activation": "softmax"}


class DropConnect(Dense):
    """A ``Dense`` layer with DropConnect (Wan et al. 2013): in training each weight is zeroed with
    probability ``rate`` and the rest scaled by ``1/(1 - rate)``, a new mask every step from the
    model's Philox streams (the element contract of ``ops.drop_connect`` over W's flat index);
    inference uses W itself. It always runs dense (``set_sparse_execution`` cannot switch it).
    Other arguments: those of ``Dense``."""

    def __init__(self, units: int, rate: float = 0.5, activation: Optional[str] = None, **kwargs) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.rate = _check_rate(rate)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}

    def describe(self) -> str:
        return f"DropConnect({self.units}, {self.rate}, {self.activation or 'linear'})"

    def native(self, dropout: float = 0.0) -> dict:
        return {**super().native(dropout), "drop_connect": self.rate}


class _Augmentation(Layer):
    """Base of the augmentation layers: active in training only (identity in predict/evaluate),
    before any layer with parameters; each takes one Philox stream per training batch."""

    def output_shape(self, input_shape: Shape) -> Shape:
        _require_image(self, input_shape)
        return input_shape


class RandomCrop(_Augmentation):
    """Pad each (C, H, W) image with ``padding`` zeros on every side and crop a random H×W window
    (torchvision's ``RandomCrop(size, padding)``; the classic CIFAR augmentation with padding=4).
    See ``dropnet.ops.random_crop`` for the exact draw."""

    def __init__(self, padding: int = 4) -> None:
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 1:
            raise ValueError(f"padding: expected an int >= 1, got {padding!r}")
        self.padding = int(padding)

    def get_config(self) -> dict:
        return {"padding": self.padding}

    def native(self) -> dict:
        return {"type": "augment", "pad": self.padding}


class RandomFlip(_Augmentation):
    """Flip each image left-right with probability 1/2 (Keras' ``RandomFlip("horizontal")``)."""

    def __init__(self, mode: str = "horizontal") -> None:
        if mode != "horizontal":
            raise ValueError(f"mode: expected 'horizontal' (the only mode), got {mode!r}")
        self.mode = mode

    def get_config(self) -> dict:
        return {"mode": self.mode}

    def native(self) -> dict:
        return {"type": "augment", "flip": True}


class RandomErasing(_Augmentation):
    """Random erasing (Zhong et al. 2020): with probability ``rate`` zero a random rectangle of
    each image, every channel; its sides are uniform in [1, max_size·H] × [1, max_size·W]. See
    ``dropnet.ops.random_erasing`` for the exact draw."""

    def __init__(self, rate: float = 0.5, max_size: float = 0.5) -> None:
        self.rate = _check_rate(rate)
        if isinstance(max_size, bool) or not isinstance(max_size, (int, float)) or not 0 < max_size <= 1:
            raise ValueError(f"max_size: expected a float in (0, 1], got {max_size!r}")
        self.max_size = float(max_size)

    def get_config(self) -> dict:
        return {"rate": self.rate, "max_size": self.max_size}

    def native(self) -> dict:
        return {"type": "augment", "erase_p": self.rate, "erase_max": self.max_size}


MaxPooling2D = MaxPool2D
AvgPool2D = AveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D


_REGISTRY: Dict[str, Type[Layer]] = {c.__name__: c for c in (Input, Dense, Dropout, AlphaDropout, Activation,
                                                             Flatten, Conv2D, MaxPool2D, AveragePooling2D,
                                                             GlobalAveragePooling2D, BatchNormalization,
                                                             SpatialDropout2D, GlobalMaxPooling2D, Reshape,
                                                             LeakyReLU, ELU, Softmax, DropConnect, RandomCrop,
                                                             RandomFlip, RandomErasing)}


def from_config(entry: dict) -> Layer:
    """Rebuild a layer from ``Layer.to_config()`` output (only the classes above: no code runs)."""
    if not isinstance(entry, dict) or entry.get("class") not in _REGISTRY:
        raise ValueError(f"layer config: expected a known class from {sorted(_REGISTRY)}, got {entry!r}")
    cfg = dict(entry.get("config", {}))
    if cfg.get("kernel_regularizer") is not None:
        cfg["kernel_regularizer"] = _regularizers.L1L2(**cfg["kernel_regularizer"])
    if cfg.get("kernel_constraint") is not None:
        cfg["kernel_constraint"] = _constraints.from_config(cfg["kernel_constraint"])
    return _REGISTRY[entry["class"]](**cfg, name=entry.get("name"), trainable=entry.get("trainable", True))


def native_streams(native: Sequence[dict]) -> int:
    """Philox streams one training forward pass of these layer dicts takes (network.h)."""
    n = 0
    for d in native:
        n += (d.get("dropout", 0) > 0) + (d.get("drop_connect", 0) > 0) + (d.get("rate", 0) > 0)
        n += d.get("type") == "augment"
    return n


# Whether to_native fuses BatchNormalization + ReLU + MaxPool2D(2) (the tests turn it off to hold
# the fused layer to the three layers apart, bit for bit).
_FUSE_BN_RELU_MAX_POOL = True


def fuses_max_pool(bn_input: Optional[Shape], pool: object) -> bool:
    """Whether a ``MaxPool2D`` after ``BatchNormalization`` + ``Activation('relu')`` on inputs of
    ``bn_input`` joins their native layer: 2x2 windows, stride 2, no padding, images of >= 2x2."""
    return (_FUSE_BN_RELU_MAX_POOL and isinstance(pool, MaxPool2D) and pool.pool_size == (2, 2)
            and pool.strides == (2, 2) and pool.padding in ("valid", (0, 0))
            and bn_input is not None and len(bn_input) == 3 and min(bn_input[1:]) >= 2)


def to_native(layers: Sequence[Layer], input_shape: Optional[Shape] = None, fuse_max_pool: bool = True) -> list:
    """The Network's layer dicts, fusing each ``Dense`` + following ``Dropout`` into one dense dict
    (``"dropout": rate``) and each ``BatchNormalization`` + following ``Activation('relu')`` into one
    batch_norm dict (``"relu": True``), with a following 2x2 ``MaxPool2D`` too when
    :func:`fuses_max_pool` (``"max_pool": True``). ``Input`` layers contribute nothing. input_shape
    (of one sample) is needed by layers whose dicts depend on it (``GlobalMaxPooling2D``).
    fuse_max_pool=False keeps the ``MaxPool2D`` a layer of its own (a CUDA device has no twin of
    the fused pooling; the numbers are the same)."""
    out = []
    specs = [layer for layer in layers if not isinstance(layer, Input)]
    shapes = []
    shape = input_shape
    for layer in specs:
        shapes.append(shape)
        shape = layer.output_shape(shape) if shape is not None else None
    i = 0
    while i < len(specs):
        layer = specs[i]
        if isinstance(layer, Dense):
            nxt = specs[i + 1] if i + 1 < len(specs) else None
            if isinstance(nxt, Dropout):
                out.append(layer.native(dropout=nxt.rate))
                i += 2
                continue
            out.append(layer.native())
        elif isinstance(layer, Conv2D):
            out.extend(layer.native_list())
        elif isinstance(layer, GlobalMaxPooling2D):
            if shapes[i] is None:
                raise ValueError("GlobalMaxPooling2D: the input shape is needed to build the network")
            out.extend(layer.native_list(shapes[i]))
        elif isinstance(layer, BatchNormalization):
            nxt = specs[i + 1] if i + 1 < len(specs) else None
            if isinstance(nxt, Activation) and nxt.activation == "relu":
                after = specs[i + 2] if i + 2 < len(specs) else None
                pooled = fuse_max_pool and fuses_max_pool(shapes[i], after)
                out.append(layer.native(relu=True, max_pool=pooled))
                i += 3 if pooled else 2
                continue
            out.append(layer.native())
        else:
            out.append(layer.native())  # type: ignore[attr-defined]
        i += 1
    return out

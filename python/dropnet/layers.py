"""Layer specifications for ``dropnet.Sequential``.

A layer here holds only its configuration; the native Network owns parameters and does the
arithmetic. ``Sequential`` turns the list into the Network's layer dicts, fusing every
``Dense`` that is directly followed by a ``Dropout`` into one native dense layer with dropout
applied after its activation (one pass over the activations instead of two; same numbers).

Shapes: inputs are ``(B, *input_shape)``; ``Dense`` needs a flat input ``(B, n)`` (put a
``Flatten`` first for images).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Type, Union

from . import regularizers as _regularizers

Shape = Tuple[int, ...]

ACTIVATIONS = ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu", "softmax")
INITIALIZERS = ("he_uniform", "glorot_uniform")


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


def check_shape(shape: object, name: str = "input_shape") -> Shape:
    """A tuple of positive ints from an int or a sequence of ints."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name}: expected a tuple of positive ints, got {shape!r}") from None
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"{name}: expected a non-empty tuple of positive ints, got {shape!r}")
    return dims


class Layer:
    """Base of the layer specs: ``output_shape``, ``n_params`` and ``get_config`` (JSON-safe)."""

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
        return {"class": type(self).__name__, "config": self.get_config()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Input(Layer):
    """Declares the input shape (without the batch axis); only valid as the first layer."""

    def __init__(self, shape: Union[int, Sequence[int]]) -> None:
        self.shape = check_shape(shape, "shape")

    def get_config(self) -> dict:
        return {"shape": list(self.shape)}


class Dense(Layer):
    """Fully connected layer ``y = activation(x @ W.T + b)``; W is (units, in).

    kernel_initializer: ``'he_uniform'``, ``'glorot_uniform'`` or None (the Network picks He for
    ReLU-like activations and Glorot otherwise). kernel_regularizer: ``dropnet.regularizers``.
    """

    def __init__(self, units: int, activation: Optional[str] = None,
                 kernel_regularizer: Optional[_regularizers.L1L2] = None, use_bias: bool = True,
                 kernel_initializer: Optional[str] = None) -> None:
        if isinstance(units, bool) or not isinstance(units, int):
            raise TypeError(f"units: expected a positive int, got {type(units).__name__}")
        if units <= 0:
            raise ValueError(f"units: expected a positive int, got {units}")
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

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"Dense({self.units}): expected a flat input (n,), got {input_shape}; "
                             "add a Flatten() layer before it")
        return (self.units,)

    def n_params(self, input_shape: Shape) -> int:
        return input_shape[0] * self.units + (self.units if self.use_bias else 0)

    def get_config(self) -> dict:
        reg = self.kernel_regularizer.get_config() if self.kernel_regularizer else None
        return {"units": self.units, "activation": self.activation, "kernel_regularizer": reg,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer}

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


_REGISTRY: Dict[str, Type[Layer]] = {c.__name__: c for c in (Input, Dense, Dropout, AlphaDropout, Activation,
                                                             Flatten)}


def from_config(entry: dict) -> Layer:
    """Rebuild a layer from ``Layer.to_config()`` output (only the classes above: no code runs)."""
    if not isinstance(entry, dict) or entry.get("class") not in _REGISTRY:
        raise ValueError(f"layer config: expected a known class from {sorted(_REGISTRY)}, got {entry!r}")
    cfg = dict(entry.get("config", {}))
    if entry["class"] == "Dense" and cfg.get("kernel_regularizer") is not None:
        cfg["kernel_regularizer"] = _regularizers.L1L2(**cfg["kernel_regularizer"])
    return _REGISTRY[entry["class"]](**cfg)


def to_native(layers: Sequence[Layer]) -> list:
    """The Network's layer dicts, fusing each ``Dense`` + following ``Dropout`` into one dense dict
    (``"dropout": rate``). ``Input`` layers contribute nothing."""
    out = []
    specs = [layer for layer in layers if not isinstance(layer, Input)]
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
        else:
            out.append(layer.native())  # type: ignore[attr-defined]
        i += 1
    return out

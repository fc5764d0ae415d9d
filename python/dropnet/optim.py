"""Optimizers: configuration objects handed to the native Network, which runs the update.

Defaults follow PyTorch (``torch.optim.SGD/Adam/AdamW``) except Adam's ``epsilon``, which follows
Keras (1e-7) because the rest of the API is Keras-like; pass ``epsilon=1e-8`` to match torch.

- ``SGD``: ``g += weight_decay * p; buf = momentum * buf + g; step = g + momentum * buf`` if
  ``nesterov`` else ``buf``; ``p -= lr * step`` (torch semantics).
- ``Adam``: bias-corrected Adam; ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2).
- ``AdamW``: decoupled weight decay ``p *= 1 - lr * weight_decay`` before the Adam step.
"""
from __future__ import annotations

import abc
import math
from typing import Optional, Union


def _positive(value: object, name: str, *, allow_zero: bool = False, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0) and value < upper
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        extra = f" and < {upper:g}" if upper != math.inf else ""
        raise ValueError(f"{name}: expected a finite float {bound}{extra}, got {value}")
    return value


class Optimizer(abc.ABC):
    """Base: holds ``lr`` and turns into the config dict ``Network.set_optimizer`` takes."""

    type_name = ""

    def __init__(self, lr: float) -> None:
        self.lr = _positive(lr, "lr")

    @abc.abstractmethod
    def get_config(self) -> dict:
        """The dict ``Network.set_optimizer`` takes (``type``, ``lr`` and the rest)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    type_name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = _positive(momentum, "momentum", allow_zero=True, upper=1.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov: expected a bool, got {type(nesterov).__name__}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0, got momentum=0")
        self.nesterov = nesterov
        self.weight_decay = _positive(weight_decay, "weight_decay", allow_zero=True)

    def get_config(self) -> dict:
        return {"type": "sgd", "lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is L2 added to the gradient."""

    type_name = "adam"
    _default_weight_decay = 0.0

    def __init__(self, lr: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 weight_decay: Optional[float] = None) -> None:
        super().__init__(lr)
        self.beta_1 = _positive(beta_1, "beta_1", allow_zero=True, upper=1.0)
        self.beta_2 = _positive(beta_2, "beta_2", allow_zero=True, upper=1.0)
        self.epsilon = _positive(epsilon, "epsilon")
        wd = self._default_weight_decay if weight_decay is None else weight_decay
        self.weight_decay = _positive(wd, "weight_decay", allow_zero=True)

    def get_config(self) -> dict:
        return {"type": self.type_name, "lr": self.lr, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); default ``weight_decay=0.01`` as torch."""

    type_name = "adamw"
    _default_weight_decay = 0.01


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(value: Union[str, dict, Optimizer]) -> Optimizer:
    """An optimizer from a name (``'sgd'``, ``'adam'``, ``'adamw'``: defaults), a config dict or an
    instance (returned as is)."""
    if isinstance(value, Optimizer):
        return value
    if isinstance(value, str):
        key = value.lower()
        if key not in _BY_NAME:
            raise ValueError(f"optimizer: expected one of {sorted(_BY_NAME)}, got {value!r}")
        return _BY_NAME[key]()
    if isinstance(value, dict):
        cfg = dict(value)
        kind = cfg.pop("type", None)
        if kind not in _BY_NAME:
            raise ValueError(f"optimizer config: 'type' must be one of {sorted(_BY_NAME)}, got {kind!r}")
        return _BY_NAME[kind](**cfg)
    raise TypeError(f"optimizer: expected a name, a config dict or a dropnet.optim.Optimizer, "
                    f"got {type(value).__name__}")

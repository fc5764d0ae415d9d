"""Weight penalties added to the training loss: ``l1 * sum|W| + l2 * sum W**2`` per kernel.

Same definition as Keras (the L2 term has no 1/2, so its gradient is ``2 * l2 * W``). Biases are
never penalised. The penalties are part of the loss ``fit`` reports, not of ``evaluate``.
"""
from __future__ import annotations

import math
from typing import Optional, Union


class L1L2:
    """A kernel penalty ``l1 * sum(|W|) + l2 * sum(W**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check_factor(l1, "l1")
        self.l2 = _check_factor(l2, "l2")

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1:g}, l2={self.l2:g})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, L1L2) and (self.l1, self.l2) == (other.l1, other.l2)


def _check_factor(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float >= 0, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite float >= 0, got {value}")
    return value


def l1(l1: float = 0.01) -> L1L2:
    """L1 penalty ``l1 * sum(|W|)`` (Keras default factor 0.01)."""
    return L1L2(l1=l1)


def l2(l2: float = 0.01) -> L1L2:
    """L2 penalty ``l2 * sum(W**2)`` (Keras default factor 0.01)."""
    return L1L2(l2=l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Both penalties."""
    return L1L2(l1=l1, l2=l2)


def get(value: Union[None, str, dict, L1L2]) -> Optional[L1L2]:
    """A regularizer from ``None``, an ``L1L2``, a config dict or ``'l1'``/``'l2'``/``'l1_l2'``."""
    if value is None or isinstance(value, L1L2):
        return value
    if isinstance(value, dict):
        return L1L2(**value)
    if isinstance(value, str) and value in ("l1", "l2", "l1_l2"):
        return {"l1": l1, "l2": l2, "l1_l2": l1_l2}[value]()
    raise TypeError(f"kernel_regularizer: expected None, 'l1', 'l2', 'l1_l2' or dropnet.regularizers.L1L2, "
                    f"got {value!r}")

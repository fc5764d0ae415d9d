"""Weight constraints applied natively after every optimizer update.

``MaxNorm(max_value)``: each unit's incoming weights -- a row of a ``Dense`` kernel (units, in),
a filter of a ``Conv2D`` kernel (filters, C, kh, kw) -- whose L2 norm exceeds ``max_value`` are
scaled by ``max_value / norm`` (an exact projection onto the ball; rows inside it are left
untouched). The dropout paper (Srivastava et al. 2014, section 5.1) pairs dropout with max-norm
(c between 3 and 4) and a large learning rate.
"""
from __future__ import annotations

import math
from typing import Optional

__all__ = ["MaxNorm", "max_norm", "get", "from_config"]


class MaxNorm:
    """Max-norm constraint on each unit's incoming weights (see the module docstring).

    Keras' ``axis`` argument is not taken: the axis is always the unit's incoming weights, which
    is Keras' default for both Dense (axis=0 of its (in, units) kernel) and Conv2D."""

    def __init__(self, max_value: float = 2.0) -> None:
        if isinstance(max_value, bool) or not isinstance(max_value, (int, float)):
            raise TypeError(f"max_value: expected a float > 0, got {type(max_value).__name__}")
        if not (math.isfinite(max_value) and max_value > 0):
            raise ValueError(f"max_value: expected a finite float > 0, got {max_value}")
        self.max_value = float(max_value)

    def get_config(self) -> dict:
        return {"class": "MaxNorm", "max_value": self.max_value}

    def __repr__(self) -> str:
        return f"MaxNorm(max_value={self.max_value})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaxNorm) and other.max_value == self.max_value


max_norm = MaxNorm


def get(value: object) -> Optional[MaxNorm]:
    """None, a ``MaxNorm``, or the name ``"max_norm"`` (Keras' default max_value=2)."""
    if value is None or isinstance(value, MaxNorm):
        return value
    if isinstance(value, str) and value.lower() in ("max_norm", "maxnorm"):
        return MaxNorm()
    raise TypeError(f"kernel_constraint: expected None or dropnet.constraints.MaxNorm(...), got {value!r}")


def from_config(cfg: dict) -> MaxNorm:
    if not isinstance(cfg, dict) or cfg.get("class") != "MaxNorm":
        raise ValueError(f"kernel_constraint: expected a MaxNorm config, got {cfg!r}")
    return MaxNorm(cfg["max_value"])

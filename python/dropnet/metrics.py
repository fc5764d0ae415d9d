"""Metrics reported by ``fit``/``evaluate``. Only ``accuracy`` exists (classification losses).

The native ``evaluate`` counts correct predictions (argmax of the output against the label, or
against the argmax of a one-hot target); this module validates names and offers the same count
on numpy arrays for outputs you already have.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

ACCURACY = "accuracy"
_ALIASES = {"accuracy": ACCURACY, "acc": ACCURACY, "sparse_categorical_accuracy": ACCURACY,
            "categorical_accuracy": ACCURACY}


def get_list(metrics: Optional[Sequence[str]]) -> List[str]:
    """Canonical metric names (duplicates dropped, order kept)."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        metrics = [metrics]
    out: List[str] = []
    for m in metrics:
        if not isinstance(m, str) or m.lower() not in _ALIASES:
            raise ValueError(f"metrics: expected names from {sorted(_ALIASES)}, got {m!r}")
        if _ALIASES[m.lower()] not in out:
            out.append(_ALIASES[m.lower()])
    return out


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of rows whose argmax of ``y_pred`` (B, C) equals ``y_true`` (B,) int labels or the
    argmax of ``y_true`` (B, C)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_pred.ndim != 2 or len(y_pred) != len(y_true):
        raise ValueError(f"accuracy: expected y_pred (B, C) and y_true (B,) or (B, C), got {y_pred.shape} "
                         f"and {y_true.shape}")
    truth = y_true.argmax(axis=1) if y_true.ndim == 2 else y_true
    return float(np.mean(y_pred.argmax(axis=1) == truth))

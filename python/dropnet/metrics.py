"""Metrics reported by ``fit``/``evaluate``, and the same functions on numpy arrays.

- ``accuracy`` (``acc``, ``sparse_categorical_accuracy``, ``categorical_accuracy``,
  ``binary_accuracy``): counted natively in every step and in ``evaluate``: argmax of the output
  against the label (or the argmax of a one-hot target); with ``binary_crossentropy`` the
  fraction of outputs on the right side of 0.5.
- ``top_k_accuracy`` (k = 5; ``top_<k>_accuracy`` for another k): the label among the k largest
  outputs.
- ``mse``, ``mae``: mean squared / absolute error over all outputs.
- ``precision``, ``recall``: of the positive class of a binary output (predicted positive when
  the output is > 0.5).

``evaluate`` (and the ``val_`` entries of ``fit``) computes every compiled metric; the running
training logs of ``fit`` hold ``loss`` and ``accuracy`` (the others need the outputs of every
batch: use ``callbacks.EvaluateTrainSet`` for train-set values). With sample weights each
sample counts with its weight.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence

import numpy as np

ACCURACY = "accuracy"
_ALIASES = {"accuracy": ACCURACY, "acc": ACCURACY, "sparse_categorical_accuracy": ACCURACY,
            "categorical_accuracy": ACCURACY, "binary_accuracy": ACCURACY,
            "top_k_accuracy": "top_5_accuracy", "sparse_top_k_categorical_accuracy": "top_5_accuracy",
            "top_k_categorical_accuracy": "top_5_accuracy",
            "mse": "mse", "mean_squared_error": "mse", "mae": "mae", "mean_absolute_error": "mae",
            "precision": "precision", "recall": "recall"}
_TOP_K = re.compile(r"^top_(\d+)_accuracy$")


def _canonical(m: object) -> Optional[str]:
    if not isinstance(m, str):
        return None
    key = m.lower()
    if key in _ALIASES:
        return _ALIASES[key]
    match = _TOP_K.match(key)
    if match and int(match.group(1)) >= 1:
        return f"top_{int(match.group(1))}_accuracy"
    return None


def get_list(metrics: Optional[Sequence[str]]) -> List[str]:
    """Canonical metric names (duplicates dropped, order kept)."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        metrics = [metrics]
    out: List[str] = []
    for m in metrics:
        name = _canonical(m)
        if name is None:
            raise ValueError(f"metrics: expected names from {sorted(_ALIASES)} or 'top_<k>_accuracy', got {m!r}")
        if name not in out:
            out.append(name)
    return out


def top_k(name: str) -> Optional[int]:
    """k of a ``top_<k>_accuracy`` metric name, else None."""
    match = _TOP_K.match(name)
    return int(match.group(1)) if match else None


def check_for_loss(metrics: Sequence[str], loss: str) -> None:
    """ValueError for a metric the loss's outputs cannot have."""
    from . import losses as _losses

    for m in metrics:
        if m == ACCURACY and not _losses.is_classification(loss):
            raise ValueError(f"metrics: 'accuracy' needs a crossentropy loss, got loss={loss!r}")
        if top_k(m) and loss not in (_losses.SPARSE_CE, _losses.CATEGORICAL_CE):
            raise ValueError(f"metrics: {m!r} needs a categorical crossentropy loss, got loss={loss!r}")
        if m in ("precision", "recall") and loss != _losses.BINARY_CE:
            raise ValueError(f"metrics: {m!r} is for binary outputs and needs loss='binary_crossentropy', "
                             f"got loss={loss!r}")


def _weights(w: Optional[np.ndarray], n: int) -> np.ndarray:
    return np.ones(n, np.float64) if w is None else np.asarray(w, np.float64)


def _labels(y_true: np.ndarray) -> np.ndarray:
    return y_true.argmax(axis=1) if y_true.ndim == 2 else y_true.astype(np.int64)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of rows whose argmax of ``y_pred`` (B, C) equals ``y_true`` (B,) int labels or the
    argmax of ``y_true`` (B, C)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_pred.ndim != 2 or len(y_pred) != len(y_true):
        raise ValueError(f"accuracy: expected y_pred (B, C) and y_true (B,) or (B, C), got {y_pred.shape} "
                         f"and {y_true.shape}")
    return float(np.mean(y_pred.argmax(axis=1) == _labels(y_true)))


def top_k_accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int = 5,
                   sample_weight: Optional[np.ndarray] = None) -> float:
    """Fraction of rows whose label (``y_true`` (B,) ints or the argmax of (B, C)) is among the k
    largest of ``y_pred`` (B, C); ties count in the label's favour only when it is strictly
    inside the top k (as ``torch.topk`` on distinct values)."""
    y_pred = np.asarray(y_pred, np.float64)
    labels = _labels(np.asarray(y_true))
    if y_pred.ndim != 2 or len(y_pred) != len(labels):
        raise ValueError(f"top_k_accuracy: expected y_pred (B, C) and y_true (B,) or (B, C), got {y_pred.shape} "
                         f"and {np.shape(y_true)}")
    label_score = y_pred[np.arange(len(labels)), labels]
    rank = (y_pred > label_score[:, None]).sum(axis=1)  # outputs strictly above the label's
    hit = rank < min(int(k), y_pred.shape[1])
    w = _weights(sample_weight, len(labels))
    return float((hit * w).sum() / w.sum())


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    d = (np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)).reshape(len(y_pred), -1)
    w = _weights(sample_weight, len(d))
    return float(((d * d).mean(axis=1) * w).sum() / w.sum())


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    d = (np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)).reshape(len(y_pred), -1)
    w = _weights(sample_weight, len(d))
    return float((np.abs(d).mean(axis=1) * w).sum() / w.sum())


def _binary_counts(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray]):
    pred = (np.asarray(y_pred) > 0.5).reshape(len(y_pred), -1)
    true = (np.asarray(y_true) >= 0.5).reshape(len(y_pred), -1)
    w = _weights(sample_weight, len(pred))[:, None]
    tp = float(((pred & true) * w).sum())
    fp = float(((pred & ~true) * w).sum())
    fn = float(((~pred & true) * w).sum())
    return tp, fp, fn


def precision(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """TP / (TP + FP) of binary outputs (probabilities, positive when > 0.5; targets positive when
    >= 0.5); 0 when nothing is predicted positive (Keras' convention)."""
    tp, fp, _ = _binary_counts(y_true, y_pred, sample_weight)
    return tp / (tp + fp) if tp + fp > 0 else 0.0


def recall(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """TP / (TP + FN) of binary outputs; 0 when there is no positive target."""
    tp, _, fn = _binary_counts(y_true, y_pred, sample_weight)
    return tp / (tp + fn) if tp + fn > 0 else 0.0


def compute(name: str, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """The metric ``name`` (canonical, not accuracy) of outputs ``y_pred`` against ``y_true``."""
    k = top_k(name)
    if k:
        return top_k_accuracy(y_true, y_pred, k, sample_weight)
    fn = {"mse": mean_squared_error, "mae": mean_absolute_error, "precision": precision, "recall": recall}[name]
    return fn(y_true, y_pred, sample_weight)

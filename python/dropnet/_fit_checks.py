"""Checks ``Sequential.fit`` makes before its first step, and its divergence warning.

Every error fit can foresee is raised before any weight, optimizer slot, batch-norm statistic or
dropout stream moves: a fit that fails this way leaves the model exactly as it was.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

from . import layers as _layers


def check_batch_norm_batches(rows: Sequence[tuple], n: int, batch_size: int) -> None:
    """Batch norm in training needs more than one value per channel in every batch: a batch of
    ``b`` samples gives ``b * H * W`` values (``b`` for flat inputs). ``rows``: the model's
    ``_shapes`` rows (layer, output shape, n_params); n: training samples."""
    if n == 0:
        return
    smallest = n % batch_size or batch_size  # the last batch is the short one
    for layer, shape, _ in rows:
        if not isinstance(layer, _layers.BatchNormalization):
            continue
        per_sample = math.prod(shape[1:]) if len(shape) > 1 else 1
        if smallest * per_sample < 2:
            which = "every batch has" if smallest == batch_size else "the last batch has"
            raise ValueError(
                f"batch_size: {which} {smallest} sample ({n} samples, batch_size={batch_size}) and "
                f"{layer.describe()} needs more than one value per channel in training; choose a batch_size "
                f"that leaves no batch of 1 sample (e.g. {batch_size + 1} or {batch_size - 1}) or drop one sample")


def warn_if_diverged(epoch: int, loss: float, callbacks: Sequence[object]) -> None:
    """A RuntimeWarning when an epoch's loss is NaN or infinite, unless a TerminateOnNaN callback
    already handles it (it stops at the first such batch)."""
    from .callbacks import TerminateOnNaN

    if math.isfinite(loss) or any(isinstance(cb, TerminateOnNaN) for cb in callbacks):
        return
    warnings.warn(f"fit: the training loss is {loss} in epoch {epoch}: training diverged and the weights may "
                  "no longer be finite (save() refuses such a model). Lower the learning rate, or pass "
                  "callbacks=[dropnet.callbacks.TerminateOnNaN()] to stop at the first non-finite batch.",
                  RuntimeWarning, stacklevel=3)

"""The parts of ``Sequential`` a Keras user reaches for beyond fit/evaluate/predict: layer names
and ``get_layer``, frozen layers and kernel constraints, ``*_on_batch``, ``save_weights`` /
``load_weights``, sample and class weights, and batches from a generator. ``Sequential``
inherits them from ``ModelAPI``; they only call the model's native Network.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import layers as _layers

ArrayLike = Any


def param_count(layer: _layers.Layer, input_shape: Tuple[int, ...]) -> int:
    """How many arrays ``get_weights`` lists for ``layer``: kernel (+ bias), or gamma and beta."""
    if layer.n_params(input_shape) == 0:
        return 0
    if isinstance(layer, _layers.BatchNormalization):
        return 2
    return 2 if getattr(layer, "use_bias", False) else 1


def sample_weights(sample_weight: Optional[ArrayLike], class_weight: Optional[Mapping[int, float]],
                   y: np.ndarray, n: int, loss: str, name: str = "sample_weight") -> Optional[np.ndarray]:
    """Per-sample float32 weights (n,) from ``sample_weight`` and/or ``class_weight`` (their
    product when both are given), or None for neither.

    class_weight maps a class index to its weight: the class of a sample is its label (sparse
    targets), the argmax of its target row (one-hot / categorical), or its 0/1 target
    (binary_crossentropy with one output)."""
    w: Optional[np.ndarray] = None
    if sample_weight is not None:
        arr = np.asarray(sample_weight)
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected one weight per sample, shape ({n},), got {arr.shape}")
        w = np.ascontiguousarray(arr, dtype=np.float32)
        finite = np.isfinite(w)
        if not (finite.all() and (w >= 0).all()):
            raise ValueError(f"{name}: expected finite weights >= 0, got {int(np.size(w) - np.count_nonzero(finite))} "
                             f"NaN/inf and {int(np.count_nonzero(w < 0))} negative")
    if class_weight is not None:
        if not isinstance(class_weight, Mapping):
            raise TypeError(f"class_weight: expected a dict {{class index: weight}}, got {type(class_weight).__name__}")
        if y.ndim == 1:
            classes = y.astype(np.int64)
        elif y.shape[1] == 1:
            classes = (y[:, 0] >= 0.5).astype(np.int64)
        else:
            classes = y.argmax(axis=1)
        n_classes = int(classes.max()) + 1
        table = np.ones(max(n_classes, 1 + max((int(k) for k in class_weight), default=0)), np.float32)
        for k, v in class_weight.items():
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
                raise ValueError(f"class_weight: expected class indices (ints >= 0) as keys, got {k!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or \
                    not (np.isfinite(v) and v >= 0):
                raise ValueError(f"class_weight[{k}]: expected a finite float >= 0, got {v!r}")
            table[int(k)] = float(v)
        cw = table[classes]
        w = cw if w is None else w * cw
    return w


def iterate_batches(data: Iterable, steps: Optional[int], epoch: int) -> Iterator[tuple]:
    """The (x, y[, sample_weight]) batches of one epoch from ``data``: a generator (shared across
    epochs; ``steps`` per epoch, or until it is exhausted) or a re-iterable (a fresh pass each
    epoch)."""
    it = iter(data)
    count = 0
    while steps is None or count < steps:
        try:
            batch = next(it)
        except StopIteration:
            if steps is not None:
                raise ValueError(f"x: the batch generator ran out after {count} of steps_per_epoch={steps} "
                                 f"batches in epoch {epoch}") from None
            if count == 0:
                raise ValueError(f"x: the batch generator gave no batch in epoch {epoch} (a one-shot generator "
                                 "needs steps_per_epoch; or pass a list or another re-iterable of batches)") from None
            return
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise ValueError(f"x: batch {count} of epoch {epoch}: expected a tuple (x, y) or (x, y, sample_weight), "
                             f"got {type(batch).__name__}"
                             + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))
        yield tuple(batch)
        count += 1


def is_batch_source(x: object, y: object) -> bool:
    """True for a generator / iterator / iterable of batches rather than an array of samples: any
    iterable that is not an array, or a list / tuple of batches when y is None."""
    if isinstance(x, (list, tuple)):
        return y is None and len(x) > 0 and all(isinstance(b, (tuple, list)) and len(b) in (2, 3) and
                                                not np.isscalar(b[0]) for b in x)
    if isinstance(x, (np.ndarray, str, bytes)) or hasattr(x, "__array__"):
        return False
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


class ModelAPI:
    """Mixed into ``Sequential`` (which provides ``layers``, ``_net`` and the methods used here)."""

    layers: List[_layers.Layer]

    # ------------------------------------------------------------------ names
    def _assign_name(self, layer: _layers.Layer) -> None:
        """Give ``layer`` a Keras-style name unique in this model (``dense``, ``dense_1``, ...)
        unless it has one; reject a duplicate."""
        taken = {l.name for l in self.layers if l is not layer}
        if layer.name is not None:
            if layer.name in taken:
                raise ValueError(f"name: the model already has a layer named {layer.name!r}; layer names must be "
                                 "unique")
            return
        base = _layers.default_name(type(layer))
        k = 0
        name = base
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        layer.name = name

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> _layers.Layer:
        """The layer called ``name`` (see ``layer.name``), or at position ``index`` of ``model.layers``."""
        if (name is None) == (index is None):
            raise ValueError("get_layer: give exactly one of name= or index=")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"index: expected an int, got {type(index).__name__}")
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"index: expected an int in [{-len(self.layers)}, {len(self.layers)}), got {index}")
            return self.layers[int(index)]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are {[l.name for l in self.layers]}")

    def _layer_params(self) -> List[Tuple[_layers.Layer, range]]:
        """Each layer with the indices of its arrays in ``get_weights``."""
        out, p, shape = [], 0, tuple(self.input_shape)  # type: ignore[attr-defined]
        for layer in self.layers:
            k = param_count(layer, shape)
            out.append((layer, range(p, p + k)))
            p += k
            shape = layer.output_shape(shape)
        return out

    def _sync_layer_flags(self, net: Any = None) -> None:
        """Hand each layer's ``trainable`` and kernel constraint to the native Network (cheap; run
        before training so that ``layer.trainable = False`` takes effect like in Keras); ``net``:
        another network than the model's (``to`` fills one before it replaces the model's)."""
        net = self._net if net is None else net  # type: ignore[attr-defined]
        for layer, idx in self._layer_params():
            for i in idx:
                net.set_trainable(i, bool(layer.trainable))
            constraint = getattr(layer, "kernel_constraint", None)
            if len(idx):
                if constraint is not None:
                    net.set_max_norm(idx[0], constraint.max_value)
                elif isinstance(layer, (_layers.Dense, _layers.Conv2D)):
                    net.set_max_norm(idx[0], 0.0)

    def _name_of_native_layer(self) -> Dict[int, str]:
        """Parameter index of each Dense / Conv2D kernel -> its layer's name."""
        return {idx[0]: layer.name for layer, idx in self._layer_params()
                if isinstance(layer, (_layers.Dense, _layers.Conv2D)) and len(idx)}

    # ------------------------------------------------------------------ single batches
    def train_on_batch(self, x: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                       class_weight: Optional[Mapping[int, float]] = None) -> Dict[str, float]:
        """One training step on (x, y) as given (no shuffling). Returns ``{"loss": ...}`` (the
        batch's weighted mean loss plus penalties) and, when compiled with it, ``"accuracy"`` of
        this batch with dropout on."""
        x, y = self._prepare(x, y)  # type: ignore[attr-defined]
        w = sample_weights(sample_weight, class_weight, y, len(x), self.loss)  # type: ignore[attr-defined]
        self._sync_layer_flags()
        net = self._net  # type: ignore[attr-defined]
        loss = float(net.train_step(x, y, w))
        out = {"loss": loss}
        correct = int(net.last_batch_correct)
        if "accuracy" in self.metrics and correct >= 0:  # type: ignore[attr-defined]
            out["accuracy"] = correct / (len(x) * self._accuracy_units())  # type: ignore[attr-defined]
        return out

    def test_on_batch(self, x: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> Dict[str, float]:
        """``evaluate`` on one batch (dropout off): ``{"loss": ..., <metrics>}``."""
        return self.evaluate(x, y, batch_size=max(1, len(x)), sample_weight=sample_weight)  # type: ignore

    def predict_on_batch(self, x: ArrayLike) -> np.ndarray:
        """``predict`` on one batch (dropout off)."""
        return self.predict(x, batch_size=max(1, len(x)))  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ weights files
    def save_weights(self, path: str) -> None:
        """Write parameters, pruning masks and batch norm statistics to ``path`` (npz without
        pickle, SHA-256, atomic); see ``dropnet.io.save_weights``."""
        from . import io as _io

        _io.save_weights(self, path)

    def load_weights(self, path: str) -> None:
        """Read ``save_weights`` output into this (built) model; nothing changes unless every array
        fits."""
        from . import io as _io

        _io.load_weights(self, path)

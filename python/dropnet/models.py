"""``Sequential``: a Keras-like model whose every batch runs in the native core in one call.

Python validates the data once per ``fit``/``evaluate``/``predict`` call, slices batches and
calls ``Network.train_step`` / ``forward`` / ``evaluate``; all arithmetic, dropout masks and
optimizer updates happen natively.

Reproducibility: the model ``seed`` fixes the initial weights and the dropout streams (Philox
streams taken in order from the network's ``rng_offset``); the data order of epoch ``e`` is a
permutation from ``numpy.random.default_rng([shuffle_seed, e])`` with ``shuffle_seed`` the
``seed`` given to ``fit`` (default: the model seed). Same seeds and data therefore give the same
weights bit for bit, whatever the number of threads, and a run resumed from a checkpoint with
``initial_epoch`` continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import _fit_checks
from . import callbacks as _callbacks
from . import cuda as _cuda
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optim as _optim
from ._model_api import ModelAPI, is_batch_source, iterate_batches, sample_weights
from ._progress import EpochProgress

ArrayLike = Any

_U63 = 1 << 63
# Monte Carlo dropout draws its streams far above any training stream (training counts up from 0).
_MC_STREAM_BASE = 1 << 62
_MC_SEED_LIMIT = 1 << 30


def _network_class():
    nn = getattr(_core, "nn", None)
    if nn is None or not hasattr(nn, "Network"):
        raise RuntimeError("dropnet._core.nn.Network is missing: this build of dropnet has no native Network")
    return nn.Network


def _check_seed(seed: object, name: str = "seed", limit: int = _U63) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name}: expected an int in [0, {limit}), got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < limit:
        raise ValueError(f"{name}: expected an int in [0, {limit}), got {seed}")
    return seed


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size: expected a positive int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    return int(batch_size)


def as_inputs(x: ArrayLike, input_shape: Optional[Tuple[int, ...]], name: str = "x") -> np.ndarray:
    """``x`` as a C-contiguous float32 array of shape ``(N, *input_shape)``, N > 0, all finite.

    float32 input is used as is (no copy when already contiguous); other real dtypes (float64,
    integers) are converted once here. Raises TypeError for non-numeric data, ValueError for
    shape, emptiness or NaN/inf."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as e:  # ragged nested lists
            raise ValueError(f"{name}: expected a rectangular array of numbers ({e})") from None
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected real numbers convertible to float32, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected shape (N, {_shape_text(input_shape)}), got {arr.shape}")
    if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{name}: expected shape (N, {_shape_text(input_shape)}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not _all_finite(arr):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    return arr


def _all_finite(arr: np.ndarray) -> bool:
    """True when no entry is NaN/inf. A sum of finite values is finite unless it overflows, and
    any NaN/inf makes the sum non-finite: one pass without a boolean temporary; the exact check
    only runs when the sum is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(arr.sum(dtype=np.float32)):
            return True
    return bool(np.isfinite(arr).all())


def _shape_text(shape: Optional[Sequence[int]]) -> str:
    return "..." if shape is None else ", ".join(str(d) for d in shape)


def as_targets(y: ArrayLike, n: int, loss: str, n_out: int, name: str = "y",
               output_shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """Targets for ``loss``: int64 (n,) labels in [0, n_out) for sparse crossentropy, float32
    (n, n_out) for categorical crossentropy; for the elementwise losses (mse, mae, huber,
    binary_crossentropy) float32 ``(n, *output_shape)`` flattened to (n, n_out) ((n,) accepted when
    n_out == 1)."""
    arr = np.asarray(y)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected numeric targets, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} targets (one per sample of x), got shape {arr.shape}")
    if loss == _losses.SPARSE_CE:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name}: expected integer labels of shape ({n},) for {loss}, got shape {arr.shape} "
                             "(one-hot targets need loss='categorical_crossentropy')")
        if np.issubdtype(arr.dtype, np.floating):
            if not (np.isfinite(arr).all() and np.array_equal(arr, np.floor(arr))):
                raise TypeError(f"{name}: expected integer class labels, got non-integral {arr.dtype} values")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n_out:
            raise ValueError(f"{name}: expected labels in [0, {n_out}) for a {n_out}-unit output, "
                             f"got values in [{lo}, {hi}]")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if _losses.is_elementwise(loss):
        if arr.ndim == 1 and n_out == 1:
            arr = arr[:, None]
        elif output_shape is not None and len(output_shape) > 1 and tuple(arr.shape[1:]) == tuple(output_shape):
            arr = arr.reshape(n, n_out)
    if arr.shape != (n, n_out):
        want = (n, *output_shape) if output_shape is not None and len(output_shape) > 1 else (n, n_out)
        raise ValueError(f"{name}: expected targets of shape {want} for {loss}, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite targets, got NaN/inf")
    if loss == _losses.BINARY_CE and not ((arr >= 0) & (arr <= 1)).all():
        raise ValueError(f"{name}: expected targets in [0, 1] for binary_crossentropy, got values in "
                         f"[{arr.min()}, {arr.max()}]")
    return arr


class Sequential(ModelAPI):
    """A stack of layers trained end to end.

    >>> from dropnet import Sequential, layers
    >>> model = Sequential([layers.Dense(300, activation="relu"), layers.Dropout(0.5),
    ...                     layers.Dense(10, activation="softmax")], input_shape=(784,), seed=0)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    input_shape: shape of one sample (no batch axis); also given by a leading ``layers.Input`` or
    taken from the data at the first ``fit``. seed: fixes initial weights, dropout masks and the
    default data order; None draws one from the OS (see ``model.seed``).

    A ``Dense`` followed directly by ``Dropout`` runs as one fused native layer (dropout applied
    after the activation in the same pass); the numbers are those of the two layers.

    device: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:<index>"``: where parameters, optimizer
    state and activations live and the training steps run; ``fit``, ``evaluate``, ``predict``,
    ``get_weights`` and ``save`` take and give numpy arrays on either. A CUDA device that cannot be
    used raises ``RuntimeError`` naming what is missing; a layer or option that only the CPU runs
    raises ``ValueError`` naming it when the model is built (see :meth:`to`).
    """

    def __init__(self, layers: Optional[Sequence[_layers.Layer]] = None,
                 input_shape: Optional[Union[int, Sequence[int]]] = None, seed: Optional[int] = None,
                 name: str = "sequential", device: str = "cpu") -> None:
        self._device = _cuda.parse_device(device)
        self.layers: List[_layers.Layer] = []
        self.input_shape: Optional[Tuple[int, ...]] = (
            None if input_shape is None else _layers.check_shape(input_shape))
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) % (1 << 32)
        self.seed = _check_seed(seed)
        self.name = name
        self.optimizer: Optional[_optim.Optimizer] = None
        self.loss: Optional[str] = None
        self.metrics: List[str] = []
        self.stop_training = False
        self.history: Optional[_callbacks.History] = None
        self._net = None
        self._sparse_modes: Dict[int, str] = {}  # Dense/Conv2D ordinal -> native mode, kept across rebuilds
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ building
    def add(self, layer: _layers.Layer) -> None:
        """Append a layer (before compile)."""
        if not isinstance(layer, _layers.Layer):
            raise TypeError(f"layer: expected a dropnet.layers.Layer, got {type(layer).__name__}")
        if self._net is not None:
            raise ValueError("add: the model is already built; add layers before compile()/fit()")
        if isinstance(layer, _layers.Input):
            if self.layers:
                raise ValueError("Input: only valid as the first layer")
            if self.input_shape is not None and self.input_shape != layer.shape:
                raise ValueError(f"Input: shape {layer.shape} contradicts input_shape={self.input_shape}")
            self.input_shape = layer.shape
        self._assign_name(layer)
        self.layers.append(layer)
        if self.input_shape is not None:
            self._shapes(self.input_shape)  # fail now on a shape mismatch, naming the layer

    def _shapes(self, input_shape: Tuple[int, ...]) -> List[Tuple[_layers.Layer, Tuple[int, ...], int]]:
        rows = []
        shape = input_shape
        for layer in self.layers:
            n_params = layer.n_params(shape)
            shape = layer.output_shape(shape)
            rows.append((layer, shape, n_params))
        return rows

    @property
    def output_shape(self) -> Optional[Tuple[int, ...]]:
        if self.input_shape is None:
            return None
        rows = self._shapes(self.input_shape)
        return rows[-1][1] if rows else self.input_shape

    @property
    def built(self) -> bool:
        return self._net is not None

    @property
    def device(self) -> str:
        """Where the model runs: ``'cpu'`` or ``'cuda:<index>'``."""
        return self._device

    def to(self, device: str) -> "Sequential":
        """Move the model to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:<index>"``) and return it.

        Weights, optimizer state (step and slots), learning rate, batch-norm statistics, pruning
        masks and the RNG offset move with it, so training continues as it would have on the old
        device (the same dropout masks; floats within the tolerance of the two devices' kernels).
        Raises before anything changes: ``RuntimeError`` naming what is missing for a CUDA device
        that cannot be used, ``ValueError`` naming a layer or option the device does not run.
        """
        target = _cuda.parse_device(device)
        if target == self._device:
            return self
        if self._net is None:
            self._device = target
            return self
        old = self._net
        new = self._new_network(tuple(self.input_shape), target)  # type: ignore[arg-type]
        new.set_optimizer(old.get_optimizer_config())
        new.set_params(old.get_params())
        new.set_state(old.get_state())
        new.set_optimizer_state(old.get_optimizer_state())
        new.rng_offset = old.rng_offset
        for i in range(len(old.param_shapes)):
            mask = old.get_mask(i)
            if mask is not None:
                new.set_mask(i, mask)
        self._sync_layer_flags(new)
        self._net, self._device = new, target
        return self

    @property
    def network(self):
        """The native ``_core.nn.Network`` (after compile with a known input shape, or fit)."""
        return self._require_net()

    def _require_net(self):
        if self._net is None:
            if self.loss is None:
                raise ValueError("model is not compiled: call compile() first")
            raise ValueError("model is not built: give input_shape (or a layers.Input) or call fit()")
        return self._net

    def _build(self, input_shape: Tuple[int, ...]) -> None:
        if not any(isinstance(layer, (_layers.Dense, _layers.Conv2D)) for layer in self.layers):
            raise ValueError("model: needs at least one Dense or Conv2D layer")
        self._shapes(input_shape)
        net = self._new_network(input_shape, self._device)
        self.input_shape = tuple(input_shape)
        self._net = net
        self._sync_layer_flags()

    def _new_network(self, input_shape: Tuple[int, ...], device: str):
        """A native Network of this architecture on ``device`` with the compiled optimizer."""
        # Before compile (predict only): no loss yet; mse leaves every activation in the layers. A
        # device runs no softmax layer of its own, so there the crossentropy absorbs a softmax
        # output (forward() still ends with the softmax).
        loss = self.loss or (_losses.MSE if device == "cpu" else _losses.SPARSE_CE)
        optimizer = self.optimizer or _optim.get("adam")
        native = _layers.to_native(self.layers, tuple(input_shape), fuse_max_pool=device == "cpu")
        net = _network_class()(native, tuple(input_shape), loss, self.seed, device)
        net.set_optimizer(optimizer.get_config())
        info = net.sparse_info()
        for ordinal, mode in self._sparse_modes.items():
            net.set_sparse_mode(info[ordinal]["param_index"], mode)
        return net

    def compile(self, optimizer: Union[str, dict, _optim.Optimizer] = "adam",
                loss: str = _losses.SPARSE_CE, metrics: Optional[Sequence[str]] = None) -> None:
        """Choose optimizer, loss and metrics; builds the native Network when the input shape is
        known. Recompiling a built model keeps its weights and pruning masks and resets the optimizer
        state."""
        optimizer = _optim.get(optimizer)
        loss = _losses.get(loss)
        metrics = _metrics.get_list(metrics)
        _metrics.check_for_loss(metrics, loss)
        if self.output_shape is not None and len(self.output_shape) != 1 and not _losses.is_elementwise(loss):
            raise ValueError(f"model: the output must be flat (n_out,) for {loss}, got {self.output_shape}; add "
                             "Flatten() (mse, mae, huber and binary_crossentropy take outputs of any shape)")
        previous = self._net
        kept = self.optimizer, self.loss, self.metrics
        self.optimizer, self.loss, self.metrics = optimizer, loss, metrics
        self._net = None
        if self.input_shape is not None:
            try:
                self._build(self.input_shape)
            except Exception:  # a loss or layer the device does not run: the model stays as it was
                self.optimizer, self.loss, self.metrics = kept
                self._net = previous
                raise
            if previous is not None:
                self._net.set_params(previous.get_params())
                self._net.set_state(previous.get_state())
                self._net.rng_offset = previous.rng_offset
                for i in range(len(self._net.get_params())):  # pruning masks stay with the weights
                    mask = previous.get_mask(i)
                    if mask is not None:
                        self._net.set_mask(i, mask)

    # ------------------------------------------------------------------ state
    @property
    def lr(self) -> float:
        """Current learning rate of the native optimizer."""
        return float(self._require_net().lr)

    @lr.setter
    def lr(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise TypeError(f"lr: expected a float > 0, got {type(value).__name__}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"lr: expected a finite float > 0, got {value}")
        self._require_net().lr = float(value)

    @property
    def rng_offset(self) -> int:
        """Next Philox stream a dropout layer will take in training."""
        return int(self._require_net().rng_offset)

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the parameters in layer order: Dense W (units, in) then b (units,); Conv2D W
        (filters, C, kh, kw) then b (filters,) (PyTorch layouts); BatchNormalization gamma then beta
        (C,). Running statistics: ``get_state``."""
        return [np.array(p, dtype=np.float32, copy=True) for p in self._require_net().get_params()]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Replace all parameters (same order and shapes as ``get_weights``); nothing changes
        unless every array fits."""
        net = self._require_net()
        shapes = [tuple(s) for s in net.param_shapes]  # not get_params(): that would copy every weight
        if isinstance(weights, np.ndarray) or len(weights) != len(shapes):
            raise ValueError(f"weights: expected a list of {len(shapes)} arrays, got "
                             f"{len(weights) if not isinstance(weights, np.ndarray) else 'one array'}")
        new = []
        for i, (w, shape) in enumerate(zip(weights, shapes)):
            w = np.asarray(w)
            if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)) or w.dtype == np.bool_:
                raise TypeError(f"weights[{i}]: expected float32, got dtype {w.dtype}")
            if w.shape != shape:
                raise ValueError(f"weights[{i}]: expected shape {shape}, got {w.shape}")
            w = np.ascontiguousarray(w, dtype=np.float32)
            if not np.isfinite(w).all():
                raise ValueError(f"weights[{i}]: expected finite values, got NaN/inf")
            new.append(w)
        net.set_params(new)

    # ------------------------------------------------------------------ sparse execution
    _SPARSE_MODES = {"auto": "auto", "on": "sparse", "off": "dense"}

    def set_sparse_execution(self, mode: str = "auto",
                             layers: Optional[Sequence[Union[int, _layers.Layer]]] = None) -> None:
        """How pruned Dense and Conv2D layers run (a layer is pruned once its weight has a mask, e.g.
        from ``dropnet.prune`` or ``network.set_mask``). mode: "on" runs forward, backward and the
        optimizer on a compressed (CSR) weight; "off" multiplies by the masked dense weight;
        "auto" (the default) runs sparse when the mask's density is below the break-even measured
        for the layer's shape (and, for Dense, batch size). Results agree up to float summation
        order; dropout masks are the same bits. "auto" decides from timings, so two runs (or two
        thread counts) may take different paths: use "on" or "off" where identical bits matter.
        On a device (``device="cuda"``) "auto" runs dense (the break-even is measured for the CPU's
        kernels only), "on" runs a Dense layer compressed (cuSPARSE) and is refused for a Conv2D
        layer with a ``ValueError`` (a pruned Conv2D runs dense with its mask there).
        layers: Dense or Conv2D layers (objects or indices into ``model.layers``), None for all."""
        if not isinstance(mode, str) or mode not in self._SPARSE_MODES:
            raise ValueError(f"mode: expected 'auto', 'on' or 'off', got {mode!r}")
        dense = [layer for layer in self.layers if isinstance(layer, (_layers.Dense, _layers.Conv2D))]
        if layers is None:
            ordinals = list(range(len(dense)))
        else:
            if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
                raise TypeError(f"layers: expected a list of Dense / Conv2D layers or layer indices, got "
                                f"{type(layers).__name__}")
            ordinals = []
            for item in layers:
                if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                    if not 0 <= int(item) < len(self.layers):
                        raise ValueError(f"layers: index {int(item)} out of range [0, {len(self.layers)})")
                    item = self.layers[int(item)]
                if not isinstance(item, _layers.Layer) or not any(item is d for d in dense):
                    raise ValueError(f"layers: expected Dense or Conv2D layers of this model, got {item!r}")
                ordinals.append(next(j for j, d in enumerate(dense) if d is item))
        native = self._SPARSE_MODES[mode]
        if self._net is not None:
            info = self._net.sparse_info()
            try:
                for j in ordinals:
                    self._net.set_sparse_mode(info[j]["param_index"], native)
            except ValueError:  # e.g. a Conv2D "on" on a device: put back the modes already changed
                for j in ordinals:
                    self._net.set_sparse_mode(info[j]["param_index"], info[j]["mode"])
                raise
        for j in ordinals:
            self._sparse_modes[j] = native

    def sparse_info(self) -> List[dict]:
        """Per Dense and Conv2D layer: ``name`` and ``layer`` (its position in ``model.layers``),
        density of its weight mask, mode, whether it last ran sparse and the measured break-even
        density (see ``Network.sparse_info``)."""
        info = self._require_net().sparse_info()
        position = {idx[0]: pos for pos, (layer, idx) in enumerate(self._layer_params())
                    if isinstance(layer, (_layers.Dense, _layers.Conv2D)) and len(idx)}
        for row in info:
            row["layer"] = position[row["param_index"]]
            row["name"] = self.layers[row["layer"]].name
        return info

    def count_params(self) -> int:
        """Trainable plus non-trainable (batch norm running statistics) values, as Keras counts."""
        if self.input_shape is None:
            raise ValueError("count_params: the input shape is unknown; give input_shape or call fit()")
        return sum(n + s for _, _, n, s in self._shapes_with_state(self.input_shape))

    def _shapes_with_state(self, input_shape: Tuple[int, ...]) -> List[Tuple[_layers.Layer, Tuple[int, ...], int, int]]:
        """``_shapes`` rows plus each layer's count of non-trainable values."""
        rows, shape = [], input_shape
        for layer, out, n in self._shapes(input_shape):
            n_state = layer.n_state(shape) if hasattr(layer, "n_state") else 0
            rows.append((layer, out, n, n_state))
            shape = out
        return rows

    def get_state(self) -> List[np.ndarray]:
        """Copies of the non-trainable state: for each BatchNormalization, running mean then
        running variance (C,), PyTorch's ``running_mean``/``running_var``."""
        return [np.array(a, dtype=np.float32, copy=True) for a in self._require_net().get_state()]

    def set_state(self, state: Sequence[ArrayLike]) -> None:
        """Replace the running statistics (``get_state`` order and shapes); all arrays are checked
        before any is written."""
        self._require_net().set_state([np.ascontiguousarray(a, dtype=np.float32) for a in state])

    # ------------------------------------------------------------------ description
    def summary(self, print_fn=print) -> None:
        """Print layers, output shapes and parameter counts."""
        print_fn(self._summary_text())

    def _summary_text(self) -> str:
        known = self.input_shape is not None
        rows = self._shapes_with_state(self.input_shape) if known else [(l, None, None, 0) for l in self.layers]
        lines = [f'Model: "{self.name}"  (seed {self.seed})']
        header = f"{'Layer (type)':<46}{'Output Shape':<18}{'Param #':>10}"
        lines += [header, "=" * len(header)]
        fused = False
        for i, (layer, shape, n, n_state) in enumerate(rows):
            nxt = rows[i + 1][0] if i + 1 < len(rows) else None
            tag = ""
            if isinstance(layer, _layers.Dense) and isinstance(nxt, _layers.Dropout):
                tag, fused = " *", True
            if (isinstance(layer, _layers.BatchNormalization) and isinstance(nxt, _layers.Activation)
                    and nxt.activation == "relu"):
                tag, fused = " *", True
            if (i >= 2 and isinstance(rows[i - 2][0], _layers.BatchNormalization)
                    and isinstance(rows[i - 1][0], _layers.Activation) and rows[i - 1][0].activation == "relu"
                    and _layers.fuses_max_pool(rows[i - 3][1] if i >= 3 else self.input_shape, layer)):
                tag = " *"
            shape_txt = "(None, " + ", ".join(map(str, shape)) + ")" if shape is not None else "?"
            label = f"{layer.name} ({layer.describe()}){tag}" if layer.name else layer.describe() + tag
            if not layer.trainable:
                label += " [frozen]"
            lines.append(f"{label:<46}{shape_txt:<18}{'?' if n is None else n + n_state:>10}")
        lines.append("=" * len(header))
        if known:
            trainable = sum(r[2] for r in rows if r[0].trainable)
            frozen = sum(r[3] for r in rows) + sum(r[2] for r in rows if not r[0].trainable)
            lines += [f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
                      f"Non-trainable params: {frozen:,}"]
        else:
            lines.append("Total params: ? (input shape unknown until fit)")
        if fused:
            lines.append("* Dense + following Dropout (BatchNormalization + following ReLU, and a 2x2 MaxPool2D "
                         "after them) run as one fused native layer")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self._summary_text()

    def get_config(self) -> dict:
        """JSON-safe architecture and compile settings (used by ``save``)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [layer.to_config() for layer in self.layers],
            "compile": None if self.loss is None else {
                "optimizer": self.optimizer.get_config(), "loss": self.loss, "metrics": list(self.metrics)},
        }

    # ------------------------------------------------------------------ training
    def _prepare(self, x: ArrayLike, y: ArrayLike, name_x: str = "x", name_y: str = "y"):
        if self.loss is None:
            raise ValueError("model is not compiled: call compile() first")
        x = as_inputs(x, self.input_shape, name_x)
        if self._net is None:
            self._build(tuple(x.shape[1:]))
        y = as_targets(y, len(x), self.loss, int(np.prod(self._net.output_shape)), name_y,
                       tuple(self._net.output_shape))
        return x, y

    def _accuracy_units(self) -> int:
        """Counted units per sample of the native accuracy: one, or every output for binary."""
        return int(np.prod(self._net.output_shape)) if self.loss == _losses.BINARY_CE else 1

    def fit(self, x: ArrayLike, y: Optional[ArrayLike] = None, epochs: int = 1, batch_size: int = 32,
            validation_data: Optional[Tuple[ArrayLike, ...]] = None, validation_split: float = 0.0,
            shuffle: bool = True, seed: Optional[int] = None,
            callbacks: Optional[Sequence[_callbacks.Callback]] = None, verbose: int = 1,
            initial_epoch: int = 0, sample_weight: Optional[ArrayLike] = None,
            class_weight: Optional[Dict[int, float]] = None,
            steps_per_epoch: Optional[int] = None, distributed: Any = False) -> _callbacks.History:
        """Train for epochs ``initial_epoch .. epochs - 1``; one native ``train_step`` per batch.

        x: ``(N, *input_shape)``, converted once to float32 (float64 input is copied; float32 arrays,
        including ``np.memmap`` / ``np.load(mmap_mode="r")``, are used in place: each batch is
        gathered natively from the rows it needs, so a dataset larger than memory is read as it
        trains). y: int labels (N,) for sparse crossentropy, (N, n_out) floats otherwise. The last
        partial batch is used. validation_split: the last fraction of x/y (before shuffling) is held
        out. seed: data-order seed (default: the model seed).

        sample_weight: (N,) weights >= 0; each sample's loss (and gradient) is multiplied by its
        weight and a batch's loss is the weighted sum over the batch size (Keras). class_weight:
        {class index: weight}, multiplied into the sample weights by each sample's class.

        x may instead be a generator or iterable of batches ``(x, y)`` or ``(x, y, sample_weight)``
        (y then None; no shuffling, validation_split or class_weight): a re-iterable (a list, a
        ``Sequence``) gives a fresh pass each epoch; a one-shot generator needs
        ``steps_per_epoch``. Returns a ``History``.

        distributed: data-parallel over the MPI ranks this process was started with (every rank
        calls fit with the same arguments; batch_size is the global batch);
        ``dropnet.distributed.Options(micro_shards=k, sync_batchnorm=...)``: the same with
        gradients summed in a fixed order (the same bits at any world size dividing k) or with
        synchronised batch norm. See docs/distributed.md.

        Every error that can be foreseen (arguments, data, a batch too small for batch norm) is
        raised before the first step, with the model unchanged (with a generator of batches, each
        batch is checked as it comes). A failure during training (an
        exception from a callback, KeyboardInterrupt, MemoryError) stops fit where it happens:
        the model keeps the updates of the steps completed before it (weights, optimizer state,
        batch-norm statistics and ``rng_offset`` move together step by step). A NaN or infinite
        epoch loss gives a RuntimeWarning; ``callbacks.TerminateOnNaN`` stops at the first such
        batch instead.
        """
        if distributed is not False and distributed is not None:
            from . import distributed as _distributed

            if distributed is not True and not isinstance(distributed, _distributed.Options):
                raise TypeError("distributed: expected a bool or dropnet.distributed.Options, got "
                                f"{type(distributed).__name__}")
            options = None if distributed is True else distributed
            return _distributed.fit(self, x, y, options, epochs=epochs, batch_size=batch_size,
                                    validation_data=validation_data, validation_split=validation_split,
                                    shuffle=shuffle, seed=seed, callbacks=callbacks, verbose=verbose,
                                    initial_epoch=initial_epoch, sample_weight=sample_weight,
                                    class_weight=class_weight, steps_per_epoch=steps_per_epoch)
        return self._fit(x, y, epochs, batch_size, validation_data, validation_split, shuffle, seed, callbacks,
                         verbose, initial_epoch, sample_weight, class_weight, steps_per_epoch, None)

    def _fit(self, x, y, epochs, batch_size, validation_data, validation_split, shuffle, seed, callbacks, verbose,
             initial_epoch, sample_weight, class_weight, steps_per_epoch, data_parallel) -> _callbacks.History:
        # data_parallel: dropnet.distributed's per-rank runner, or None for one process.
        epochs = _check_count(epochs, "epochs")
        initial_epoch = _check_count(initial_epoch, "initial_epoch", minimum=0)
        batch_size = _check_batch_size(batch_size)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
        shuffle_seed = self.seed if seed is None else _check_seed(seed)
        if is_batch_source(x, y):
            if data_parallel is not None:
                raise ValueError("distributed: needs arrays x, y (every rank draws its rows of each global batch); "
                                 "got a generator of batches")
            return self._fit_batches(x, y, epochs, validation_data, callbacks, verbose, initial_epoch,
                                     steps_per_epoch, sample_weight, class_weight, validation_split)
        if steps_per_epoch is not None:
            raise ValueError("steps_per_epoch: only for a generator of batches; with arrays every epoch is one pass")
        if y is None:
            raise ValueError("y: expected targets, got None (y is None only when x yields (x, y) batches)")
        x, y = self._prepare(x, y)
        w = sample_weights(sample_weight, class_weight, y, len(x), self.loss)
        if validation_data is not None and validation_split:
            raise ValueError("validation_data and validation_split: give one of them, not both")
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
                raise ValueError("validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, sample_weight)")
            vx, vy = self._prepare(validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]")
            vw = sample_weights(validation_data[2] if len(validation_data) == 3 else None, None, vy, len(vx),
                                self.loss, "validation_data[2]")
            val = (vx, vy, vw)
        elif validation_split:
            if not (isinstance(validation_split, (int, float)) and 0 < validation_split < 1):
                raise ValueError(f"validation_split: expected a float in (0, 1), got {validation_split!r}")
            n_val = int(len(x) * validation_split)
            if n_val == 0 or n_val == len(x):
                raise ValueError(f"validation_split={validation_split} of {len(x)} samples leaves an empty split")
            val = (x[-n_val:], y[-n_val:], None if w is None else w[-n_val:])
            x, y = x[:-n_val], y[:-n_val]
            w = None if w is None else w[:-n_val]
        self._sync_layer_flags()
        if data_parallel is not None:
            verbose, callbacks = data_parallel.start(x, y, w, val, batch_size, epochs, initial_epoch, shuffle,
                                                     shuffle_seed, verbose, callbacks)
        net = self._net
        train_steps = net.train_steps if data_parallel is None else data_parallel.train_steps
        evaluate = self._evaluate_prepared if data_parallel is None else data_parallel.evaluate
        n = len(x)
        _fit_checks.check_batch_norm_batches(self._shapes(self.input_shape), n, batch_size)
        steps = -(-n // batch_size)
        history = _callbacks.History()
        history.params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": n}
        cbs = _callbacks.CallbackList([history, *(callbacks or [])], self)
        self.history = history
        self.stop_training = False
        units = self._accuracy_units()
        kept = self._keep_dataset(x, y, w) if data_parallel is None else False
        cbs.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                lr = float(net.lr)
                bar = EpochProgress(epoch, epochs, steps, verbose)
                bar.start()
                order = np.random.default_rng([shuffle_seed, epoch]).permutation(n) if shuffle else None
                loss_sum = 0.0
                correct_sum = 0  # stays -1 once a batch has no classes to count (mse, not one-hot)
                # Batches are gathered and trained natively, a chunk of steps per call: the whole
                # epoch when nothing looks at single batches, one step at a time for batch
                # callbacks (they may change the learning rate or stop training after any batch),
                # a few steps per redraw of a live progress bar.
                chunk = 1 if cbs.wants_batches else (8 if bar.live else steps)
                hi = 0
                for s0 in range(0, steps, chunk):
                    s1 = min(steps, s0 + chunk)
                    losses, corrects = train_steps(x, y, order, batch_size, s0, s1, w)
                    for i in range(s1 - s0):
                        step = s0 + i
                        lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                        batch_loss = float(losses[i])
                        loss_sum += batch_loss * (hi - lo)
                        batch_correct = int(corrects[i])
                        correct_sum = -1 if batch_correct < 0 or correct_sum < 0 else correct_sum + batch_correct
                        if cbs.wants_batches:
                            cbs.on_batch_end(step, {"loss": batch_loss, "size": hi - lo})
                    bar.update(s1, loss_sum / hi)
                    if self.stop_training:
                        break
                logs: Dict[str, float] = {"loss": loss_sum / max(hi, 1)}
                if "accuracy" in self.metrics and correct_sum >= 0:
                    # Keras semantics: the running accuracy of the training batches, dropout on,
                    # counted natively from the logits each step computed (no extra pass).
                    logs["accuracy"] = correct_sum / (max(hi, 1) * units)
                if data_parallel is not None:
                    data_parallel.end_epoch()  # the same batch norm running statistics on every rank
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in evaluate(val[0], val[1], 256, val[2]).items()})
                logs["lr"] = lr
                if self._finish_epoch(cbs, bar, epoch, logs, callbacks):
                    break
        finally:
            if kept:
                net.release_dataset()
            cbs.on_train_end()
        return history

    def _keep_dataset(self, x: np.ndarray, y: np.ndarray, w: Optional[np.ndarray]) -> bool:
        """On a device, a copy of the training set (and its sample weights) in device memory for the
        length of ``fit``: each batch is then gathered there, and each chunk of steps fetches only its
        losses, correct counts and penalties. Without room on the device every batch is copied in."""
        if self.device == "cpu":
            return False
        try:
            return bool(self._net.keep_dataset(x, y, w))
        except (MemoryError, RuntimeError):
            return False

    def _fit_batches(self, data, y, epochs: int, validation_data, callbacks, verbose: int, initial_epoch: int,
                     steps_per_epoch: Optional[int], sample_weight, class_weight, validation_split) -> _callbacks.History:
        """``fit`` on a generator / iterable of batches: one native train_step per batch as it comes."""
        if y is not None:
            raise ValueError("y: expected None when x is a generator of (x, y) batches, got an array")
        for name, value in (("sample_weight", sample_weight), ("class_weight", class_weight)):
            if value is not None:
                raise ValueError(f"{name}: not with a generator of batches; yield (x, y, sample_weight) batches")
        if validation_split:
            raise ValueError("validation_split: not with a generator of batches; give validation_data")
        if steps_per_epoch is not None:
            steps_per_epoch = _check_count(steps_per_epoch, "steps_per_epoch")
        if self.loss is None:
            raise ValueError("model is not compiled: call compile() first")
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
                raise ValueError("validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, sample_weight)")
        history = _callbacks.History()
        history.params = {"epochs": epochs, "steps": steps_per_epoch, "batch_size": None, "samples": None}
        cbs = _callbacks.CallbackList([history, *(callbacks or [])], self)
        self.history = history
        self.stop_training = False
        cbs.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                bar = EpochProgress(epoch, epochs, steps_per_epoch or 0, verbose)
                bar.start()
                loss_sum, correct_sum, seen, units = 0.0, 0, 0, 1
                lr = None
                for step, batch in enumerate(iterate_batches(data, steps_per_epoch, epoch)):
                    where = f"batch {step} of epoch {epoch}"
                    xb, yb = self._prepare(batch[0], batch[1], f"x ({where}: x)", f"x ({where}: y)")
                    if lr is None:
                        self._sync_layer_flags()
                        lr, units = float(self._net.lr), self._accuracy_units()
                    wb = sample_weights(batch[2] if len(batch) == 3 else None, None, yb, len(xb), self.loss,
                                        f"x ({where}: sample_weight)")
                    batch_loss = float(self._net.train_step(xb, yb, wb))
                    loss_sum += batch_loss * len(xb)
                    seen += len(xb)
                    batch_correct = int(self._net.last_batch_correct)
                    correct_sum = -1 if batch_correct < 0 or correct_sum < 0 else correct_sum + batch_correct
                    cbs.on_batch_end(step, {"loss": batch_loss, "size": len(xb)})
                    if steps_per_epoch:
                        bar.update(step + 1, loss_sum / seen)
                    if self.stop_training:
                        break
                logs: Dict[str, float] = {"loss": loss_sum / max(seen, 1)}
                if "accuracy" in self.metrics and correct_sum >= 0:
                    logs["accuracy"] = correct_sum / (max(seen, 1) * units)
                if validation_data is not None:
                    if val is None:
                        vx, vy = self._prepare(validation_data[0], validation_data[1], "validation_data[0]",
                                               "validation_data[1]")
                        vw = sample_weights(validation_data[2] if len(validation_data) == 3 else None, None, vy,
                                            len(vx), self.loss, "validation_data[2]")
                        val = (vx, vy, vw)
                    logs.update({f"val_{k}": v for k, v in self._evaluate_prepared(*val[:2], 256, val[2]).items()})
                logs["lr"] = float(self._net.lr) if lr is None else lr
                if self._finish_epoch(cbs, bar, epoch, logs, callbacks):
                    break
        finally:
            cbs.on_train_end()
        return history

    def _finish_epoch(self, cbs, bar, epoch: int, logs: Dict[str, float], callbacks) -> bool:
        """The end of an epoch in either fit loop: divergence warning, callbacks' logs, the progress
        line, on_epoch_end. Returns True when training should stop."""
        _fit_checks.warn_if_diverged(epoch, logs["loss"], callbacks or [])
        cbs.on_epoch_logs(epoch, logs)
        bar.finish(logs)
        cbs.on_epoch_end(epoch, logs)
        return bool(self.stop_training)

    def _evaluate_prepared(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                           weights: Optional[np.ndarray] = None) -> Dict[str, float]:
        """Mean loss and compiled metrics on prepared arrays. With weights: loss = Σ w·ℓ / N (the
        training loss's definition), metrics weighted means Σ w·m / Σ w."""
        if weights is None:
            loss_sum, n_correct = self._net.evaluate(x, y, batch_size)
            weight_sum = float(len(x))
        else:
            loss_sum, n_correct, weight_sum = self._net.evaluate(x, y, batch_size, weights)
        out = {"loss": float(loss_sum) / len(x)}
        if _metrics.ACCURACY in self.metrics:
            out["accuracy"] = float(n_correct) / (weight_sum * self._accuracy_units()) if weight_sum > 0 else 0.0
        others = [m for m in self.metrics if m != _metrics.ACCURACY]
        if others:
            pred = self._predict_flat(x, batch_size)
            if self.loss == _losses.BINARY_CE and not self._net.sigmoid_fused:
                # Without a final sigmoid binary_crossentropy reads the outputs as logits.
                pred = 1.0 / (1.0 + np.exp(-pred.astype(np.float64)))
            for m in others:
                out[m] = _metrics.compute(m, y, pred, weights)
        return out

    def evaluate(self, x: ArrayLike, y: ArrayLike, batch_size: int = 256, verbose: int = 0,
                 sample_weight: Optional[ArrayLike] = None, distributed: bool = False) -> Dict[str, float]:
        """Mean loss (without weight penalties) and the compiled metrics with dropout off (batch
        norm on its running statistics).

        sample_weight: (N,) weights >= 0: the loss is Σ w·ℓ / N, as in training; metrics are
        weighted means. verbose: 0 silent, 1 or 2 print one line with the results. Returns a dict
        ``{"loss": ..., "accuracy": ...}`` (Keras returns a list; a dict says what each number is).
        distributed: each MPI rank evaluates its share of the rows and the sums are allreduced
        (every rank passes the same x, y and gets the same dict)."""
        batch_size = _check_batch_size(batch_size)
        _check_verbose(verbose)
        x, y = self._prepare(x, y)
        w = sample_weights(sample_weight, None, y, len(x), self.loss)
        t0 = time.perf_counter()
        if distributed:
            from . import distributed as _distributed

            out = _distributed.evaluate(self, x, y, batch_size, w)
        else:
            out = self._evaluate_prepared(x, y, batch_size, w)
        if verbose:
            print(f"evaluate: {len(x)} samples - {time.perf_counter() - t0:.2f}s - "
                  + " - ".join(f"{k}: {v:.4f}" for k, v in out.items()))
        return out

    def compute_gradients(self, x: ArrayLike, y: ArrayLike, row_offset: int = 0, grad_rows: Optional[int] = None,
                          sample_weight: Optional[ArrayLike] = None) -> Tuple[float, int]:
        """First half of a training step, for custom (e.g. data-parallel) loops.

        Forward with dropout (its element indices counted from global row ``row_offset``), loss and
        backward over the batch x ``(B, *input_shape)``, y ``(B,)`` or ``(B, n_out)``; gradients land in
        ``self.network.grad_buffer`` as those of (sum of the B rows' weighted losses) / grad_rows
        (default B). Returns ``(loss_sum, correct)`` (correct -1 without classes). Weights,
        optimizer state and ``rng_offset`` change only in ``apply_gradients``."""
        x, y = self._prepare(x, y)
        w = sample_weights(sample_weight, None, y, len(x), self.loss)
        loss_sum, correct = self._net.compute_gradients(x, y, row_offset, grad_rows, w)
        return float(loss_sum), int(correct)

    def apply_gradients(self) -> float:
        """Second half of a training step: weight penalties, optimizer update from the gradient
        buffer, dropout streams advanced. Returns the penalty value. ``compute_gradients`` then
        ``apply_gradients`` gives the bits of one ``train_step``."""
        return float(self._require_net().apply_gradients())

    def _predict_flat(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Outputs (N, n_out) of prepared inputs, dropout off."""
        net = self._net
        out = np.empty((len(x), int(np.prod(net.output_shape))), dtype=np.float32)
        for lo in range(0, len(x), batch_size):
            out[lo:lo + batch_size] = net.forward(x[lo:lo + batch_size], training=False)
        return out

    def predict(self, x: ArrayLike, batch_size: int = 256, verbose: int = 0, mc_samples: int = 0,
                seed: Optional[int] = None,
                distributed: bool = False) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Outputs ``(N, *output_shape)`` with dropout off (probabilities after a final softmax or,
        with binary_crossentropy, sigmoid). Works before ``compile`` (as in Keras): the model is
        built from the shape of x.

        mc_samples=k > 0: Monte Carlo dropout. Runs k forward passes with dropout on and returns
        ``(mean, std)`` over them, each ``(N, *output_shape)``. Pass j over batch b uses its own
        Philox streams derived from ``seed`` (default 0), so the result depends only on (model, x,
        batch_size, k, seed) and training's stream offset is left untouched. verbose: 1 or 2
        print one line when done. distributed: each MPI rank predicts its share of the rows; every
        rank gets all N outputs.
        """
        batch_size = _check_batch_size(batch_size)
        _check_verbose(verbose)
        if isinstance(mc_samples, bool) or not isinstance(mc_samples, (int, np.integer)) or mc_samples < 0:
            raise ValueError(f"mc_samples: expected an int >= 0, got {mc_samples!r}")
        x = as_inputs(x, self.input_shape)
        if self._net is None:
            self._build(tuple(x.shape[1:]))
        net = self._net
        t0 = time.perf_counter()
        out_shape = (len(x), *net.output_shape)
        if distributed:
            if mc_samples:
                raise ValueError("mc_samples: Monte Carlo dropout is not distributed; use distributed=False")
            from . import distributed as _distributed

            result = _distributed.predict_flat(self, x, batch_size).reshape(out_shape)
        elif mc_samples == 0:
            result = self._predict_flat(x, batch_size).reshape(out_shape)
        else:
            mean, std = self._predict_mc(x, batch_size, int(mc_samples), seed)
            result = (mean.reshape(out_shape), std.reshape(out_shape))
        if verbose:
            print(f"predict: {len(x)} samples - {time.perf_counter() - t0:.2f}s")
        return result

    def _predict_mc(self, x: np.ndarray, batch_size: int, mc_samples: int,
                    seed: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
        net = self._net
        n = len(x)
        n_out = int(np.prod(net.output_shape))
        mc_seed = 0 if seed is None else _check_seed(seed, "seed", _MC_SEED_LIMIT)
        n_batches = -(-n // batch_size)
        streams = max(1, _layers.native_streams(_layers.to_native(self.layers, self.input_shape)))
        if int(mc_samples) * n_batches * streams >= 1 << 32:
            raise ValueError(f"mc_samples: {mc_samples} passes over {n_batches} batches exceed the 2**32 streams "
                             "reserved per MC seed; use a larger batch_size")
        base = _MC_STREAM_BASE + mc_seed * (1 << 32)
        mean = np.zeros((n, n_out), dtype=np.float64)
        sq = np.zeros((n, n_out), dtype=np.float64)
        for b, lo in enumerate(range(0, n, batch_size)):
            xb = x[lo:lo + batch_size]
            for j in range(int(mc_samples)):
                # Dropout on, batch norm on its running statistics (and they stay as they are).
                out = net.forward(xb, training=True, stream_offset=base + (j * n_batches + b) * streams,
                                  bn_training=False)
                mean[lo:lo + batch_size] += out
                sq[lo:lo + batch_size] += np.square(out, dtype=np.float64)
        mean /= mc_samples
        var = np.maximum(sq / mc_samples - mean * mean, 0.0)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str) -> None:
        """Write architecture, weights, optimizer state and RNG offset to ``path`` (npz without
        pickle, JSON header, SHA-256 over the contents; written atomically). See ``dropnet.io``."""
        from . import io as _io

        _io.save_model(self, path)


def _check_verbose(verbose: object) -> None:
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def load_model(path: str, device: str = "cpu") -> Sequential:
    """Rebuild a model saved with ``Sequential.save`` (see ``dropnet.io.load_model``) on
    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:<index>"``; checked before the file is read)."""
    from . import io as _io

    return _io.load_model(path, device=device)

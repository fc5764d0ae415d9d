"""Pruning: weight masks on a ``Sequential``, magnitude / random / structured pruning and the
lottery-ticket procedure (Frankle & Carbin 2019).

Masks live in the native Network (``Network.set_mask``): a pruned weight, its gradient and its
optimizer state are zero now and after every step, and ``Sequential.save`` stores the masks. The
functions here only decide *which* weights to prune and hand the 0/1 masks over.

Prunable layers
    Every layer that owns a weight tensor: ``Dense`` (kernel (units, in)) and ``Conv2D`` (kernel
    (filters, channels, kh, kw)). They are numbered 0, 1, ... in model order -- that *prunable
    index* (negative values count from the end, so -1 is the output layer) or the layer's name
    (``layer.name``: Keras-style ``"conv2d"``, ``"dense"``, ``"dense_1"``, ... unless given) selects a layer in
    ``exclude`` and ``amounts``. ``sparsity(model)`` prints both. Biases are never pruned by
    ``magnitude`` or ``random``. Pruned Conv2D layers, like Dense ones, run on sparse kernels when
    that is faster (``Sequential.set_sparse_execution``).

Amounts
    ``amount`` is the fraction of the *remaining* (unpruned) weights to prune, in [0, 1); the
    count pruned from ``n`` remaining weights is ``floor(amount * n + 0.5)``. Pruning 0.2 twice
    therefore leaves 0.8 ** 2 = 64 %.

Ties
    Weights of equal score are pruned in order of their flat (row-major) index, layers taken in
    model order for ``scope="global"``: every result is deterministic.

Random masks
    ``random`` scores weight ``i`` of prunable layer ``l`` by the Philox word
    ``dropnet.random.uniform_bits(n_l, seed, stream=l)[i]`` and prunes the lowest scores, so a mask
    depends only on (seed, layer index, shape, previous mask): never on threads, ISA or any global
    generator.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import layers as _layers
from ..models import Sequential
from ..random import uniform_bits

#: Layer classes whose first parameter (the kernel, (out, in, ...)) can be masked.
PRUNABLE_TYPES: Tuple[type, ...] = (_layers.Conv2D, _layers.Dense)

LayerKey = Union[int, str]

__all__ = ["PRUNABLE_TYPES", "PrunableLayer", "prunable_layers", "get_masks", "set_masks", "magnitude", "random",
           "random_masks_like", "rewind", "channels", "sparsity", "SparsityReport", "LotteryTicket",
           "LotteryResults"]


# ---------------------------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class PrunableLayer:
    """One prunable layer of a built model.

    index: prunable index (0 = first prunable layer); name: the layer's name; position: index in
    ``model.layers``; param: index of its kernel in ``model.get_weights()``; bias_param: index of
    its bias or None; shape: kernel shape, (units, in) for Dense, (filters, channels, kh, kw) for
    Conv2D.
    """

    index: int
    name: str
    position: int
    param: int
    bias_param: Optional[int]
    shape: Tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def _require_built(model: object, name: str = "model"):
    if not isinstance(model, Sequential):
        raise TypeError(f"{name}: expected a dropnet Sequential, got {type(model).__name__}")
    if not model.built:
        raise ValueError(f"{name}: not built; compile it with a known input_shape (or fit it) before pruning")
    return model.network


def _param_arrays(layer: _layers.Layer, input_shape: Tuple[int, ...]) -> int:
    """How many arrays ``get_weights`` lists for ``layer``: kernel (+ bias), or gamma and beta."""
    if layer.n_params(input_shape) == 0:
        return 0
    if isinstance(layer, _layers.BatchNormalization):
        return 2
    return 2 if getattr(layer, "use_bias", False) else 1


def prunable_layers(model: Sequential) -> List[PrunableLayer]:
    """The prunable layers of a built ``model`` in order, with the indices of their parameters.

    Parameters are numbered as ``model.get_weights()``: every layer with parameters contributes its
    kernel, then its bias if ``use_bias``."""
    net = _require_built(model)
    shapes = [tuple(s) for s in (np.shape(p) for p in net.get_params())]
    out: List[PrunableLayer] = []
    p = 0
    shape: Tuple[int, ...] = tuple(model.input_shape)
    for pos, layer in enumerate(model.layers):
        arrays = _param_arrays(layer, shape)
        shape = layer.output_shape(shape)
        if isinstance(layer, PRUNABLE_TYPES):
            out.append(PrunableLayer(len(out), layer.name, pos, p, p + 1 if arrays == 2 else None, shapes[p]))
        p += arrays
    return out


def get_masks(model: Sequential) -> List[np.ndarray]:
    """One float32 0/1 mask per prunable layer (kernel shape); all ones where none is set."""
    net = _require_built(model)
    out = []
    for pl in prunable_layers(model):
        m = net.get_mask(pl.param)
        out.append(np.ones(pl.shape, np.float32) if m is None else np.asarray(m, np.float32))
    return out


def set_masks(model: Sequential, masks: Sequence[Optional[np.ndarray]]) -> None:
    """Set the kernel mask of every prunable layer (None removes it); pruned weights become 0.

    masks: one per prunable layer, each of the kernel's shape with values 0 or 1. An all-ones mask
    is stored as no mask (the layer stays dense). All are checked before any is set."""
    net = _require_built(model)
    layers = prunable_layers(model)
    if isinstance(masks, np.ndarray) or len(masks) != len(layers):
        raise ValueError(f"masks: expected a list of {len(layers)} arrays (one per prunable layer), got "
                         f"{'one array' if isinstance(masks, np.ndarray) else len(masks)}")
    checked = []
    for pl, m in zip(layers, masks):
        if m is None:
            checked.append(None)
            continue
        m = np.asarray(m)
        if m.shape != pl.shape:
            raise ValueError(f"masks[{pl.index}]: expected shape {pl.shape} ({pl.name}), got {m.shape}")
        if not ((m == 0) | (m == 1)).all():
            raise ValueError(f"masks[{pl.index}]: expected only 0 and 1 values")
        checked.append(None if m.all() else np.ascontiguousarray(m, dtype=np.float32))
    for pl, m in zip(layers, checked):
        net.set_mask(pl.param, m)


# ---------------------------------------------------------------------------------------------- checks
def _check_amount(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float in [0, 1), got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{name}: expected a float in [0, 1), got {value}")
    return value


def _resolve(key: object, layers: Sequence[PrunableLayer], name: str) -> int:
    """Prunable index of ``key`` (int, negative from the end, or layer name)."""
    if isinstance(key, str):
        for pl in layers:
            if pl.name == key:
                return pl.index
        raise ValueError(f"{name}: unknown layer {key!r} (prunable layers: {[pl.name for pl in layers]})")
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"{name}: expected a prunable layer index (int) or name (str), got {type(key).__name__}")
    n = len(layers)
    if not -n <= int(key) < n:
        raise ValueError(f"{name}: unknown layer index {int(key)} (the model has {n} prunable layers: "
                         f"indices 0..{n - 1} or -{n}..-1)")
    return int(key) % n


def _plan(model: Sequential, amount: object, scope: str, exclude: Optional[Iterable[LayerKey]],
          include_output: bool, amounts: Optional[Mapping[LayerKey, float]]):
    """(layers, per-layer fractions for layers pruned on their own, layer indices of the global pool,
    pool fraction)."""
    layers = prunable_layers(model)
    amount = _check_amount(amount, "amount")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope: expected 'layer' or 'global', got {scope!r}")
    if not isinstance(include_output, bool):
        raise TypeError(f"include_output: expected a bool, got {type(include_output).__name__}")
    if exclude is not None and (isinstance(exclude, (str, int)) or not isinstance(exclude, Iterable)):
        raise TypeError(f"exclude: expected a list of layer indices or names, got {type(exclude).__name__}")
    excluded = {_resolve(k, layers, "exclude") for k in (exclude or [])}
    if not include_output:
        excluded.add(len(layers) - 1)
    own: Dict[int, float] = {}
    if amounts is not None:
        if not isinstance(amounts, Mapping):
            raise TypeError(f"amounts: expected a dict {{layer: fraction}}, got {type(amounts).__name__}")
        for k, v in amounts.items():
            own[_resolve(k, layers, "amounts")] = _check_amount(v, f"amounts[{k!r}]")
    for i in excluded:
        own.pop(i, None)
    rest = [pl.index for pl in layers if pl.index not in excluded and pl.index not in own]
    if scope == "layer":
        own.update({i: amount for i in rest})
        rest = []
    return layers, own, rest, amount


def _n_to_prune(amount: float, remaining: int) -> int:
    return int(math.floor(amount * remaining + 0.5))


def _prune_lowest(scores: np.ndarray, alive: np.ndarray, k: int) -> np.ndarray:
    """Indices (into the flat arrays) of the k lowest ``scores`` among ``alive``, ties by index.

    scores: float (n,); alive: bool (n,)."""
    idx = np.flatnonzero(alive)
    order = np.argsort(scores[idx], kind="stable")
    return idx[order[:k]]


def _apply(model: Sequential, layers: Sequence[PrunableLayer], masks: List[np.ndarray],
           score_of: Callable[[PrunableLayer], np.ndarray], own: Mapping[int, float], pool: Sequence[int],
           pool_amount: float) -> None:
    """Prune by ``score_of`` (flat float64 scores per layer, lowest pruned first): layers in ``own``
    each by their fraction, the layers in ``pool`` together by ``pool_amount``."""
    new = [m.reshape(-1).copy() for m in masks]
    for i, frac in own.items():
        alive = new[i] > 0
        new[i][_prune_lowest(score_of(layers[i]), alive, _n_to_prune(frac, int(alive.sum())))] = 0
    if pool:
        scores = np.concatenate([score_of(layers[i]) for i in pool])
        alive = np.concatenate([new[i] > 0 for i in pool])
        cut = _prune_lowest(scores, alive, _n_to_prune(pool_amount, int(alive.sum())))
        starts = np.cumsum([0] + [layers[i].size for i in pool])
        for j, i in enumerate(pool):
            sel = cut[(cut >= starts[j]) & (cut < starts[j + 1])] - starts[j]
            new[i][sel] = 0
    set_masks(model, [m.reshape(pl.shape) for m, pl in zip(new, layers)])


def magnitude(model: Sequential, amount: float, scope: str = "layer", exclude: Optional[Sequence[LayerKey]] = None,
              include_output: bool = True, amounts: Optional[Mapping[LayerKey, float]] = None) -> Sequential:
    """Prune ``amount`` of the remaining kernel weights with the smallest ``|w|``, in place.

    scope: ``"layer"`` prunes that fraction of every layer; ``"global"`` ranks all included layers
    together. exclude: prunable indices or names left alone; include_output=False excludes the last
    prunable layer. amounts: ``{layer: fraction}`` prunes those layers on their own at their
    fraction (out of the global pool), e.g. ``{-1: 0.1}`` for the output layer at half of 0.2.
    Masks accumulate: already pruned weights stay pruned. Returns ``model``.
    """
    layers, own, pool, frac = _plan(model, amount, scope, exclude, include_output, amounts)
    weights = model.network.get_params()
    _apply(model, layers, get_masks(model),
           lambda pl: np.abs(np.asarray(weights[pl.param], np.float64).reshape(-1)), own, pool, frac)
    return model


def random(model: Sequential, amount: float, seed: int, scope: str = "layer",
           exclude: Optional[Sequence[LayerKey]] = None, include_output: bool = True,
           amounts: Optional[Mapping[LayerKey, float]] = None) -> Sequential:
    """Prune ``amount`` of the remaining kernel weights chosen at random, in place.

    Same arguments as ``magnitude``; the score of weight i of prunable layer l is the Philox word
    ``uniform_bits(size_l, seed, stream=l)[i]`` (see the module docstring), so masks reproduce
    from ``seed`` exactly. With scope="layer" every layer loses exactly
    ``floor(amount * remaining + 0.5)`` weights. Returns ``model``.
    """
    seed = _check_seed(seed)
    layers, own, pool, frac = _plan(model, amount, scope, exclude, include_output, amounts)
    _apply(model, layers, get_masks(model), lambda pl: _random_scores(pl, seed), own, pool, frac)
    return model


def _random_scores(pl: PrunableLayer, seed: int) -> np.ndarray:
    return uniform_bits(pl.size, seed, pl.index).astype(np.float64)


def _check_seed(seed: object, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name}: expected an int in [0, 2**63), got {type(seed).__name__}")
    if not 0 <= int(seed) < 1 << 63:
        raise ValueError(f"{name}: expected an int in [0, 2**63), got {int(seed)}")
    return int(seed)


def random_masks_like(model: Sequential, masks: Sequence[np.ndarray], seed: int) -> List[np.ndarray]:
    """Random masks with exactly as many ones per layer as ``masks`` (kernel shapes of ``model``'s
    prunable layers), scores as in ``random``: the weights with the highest Philox words survive."""
    seed = _check_seed(seed)
    layers = prunable_layers(model)
    if len(masks) != len(layers):
        raise ValueError(f"masks: expected {len(layers)} arrays, got {len(masks)}")
    out = []
    for pl, m in zip(layers, masks):
        keep = int(np.count_nonzero(m))
        flat = np.zeros(pl.size, np.float32)
        order = np.argsort(_random_scores(pl, seed), kind="stable")
        flat[order[pl.size - keep:]] = 1.0
        out.append(flat.reshape(pl.shape))
    return out


def rewind(model: Sequential, weights: Sequence[np.ndarray], masks: Sequence[Optional[np.ndarray]]) -> Sequential:
    """Put ``weights`` (``get_weights`` order) back, then ``masks`` (one per prunable layer): the
    surviving weights equal the saved values bit for bit, the pruned ones are 0. The optimizer
    state is left alone (a model fresh from ``compile`` has a zero state). Returns ``model``."""
    model.set_weights(weights)
    set_masks(model, masks)
    return model


# ---------------------------------------------------------------------------------------------- channels
# Layers a unit (Dense) or channel (Conv2D) passes through unchanged on its way to the next
# prunable layer: removing it removes one input of that layer, and nothing else.
_CHANNEL_WISE = (_layers.Activation, _layers.Dropout, _layers.AlphaDropout, _layers.SpatialDropout2D,
                 _layers.BatchNormalization, _layers._Pool2D)


@dataclass
class _UnitPath:
    """How the units of one prunable layer reach the next: the BatchNormalization parameters and
    running statistics on the way (gamma, beta, mean, var indices), and the columns of the next
    kernel each unit feeds (axis 1 of a Dense W (out, in) or a Conv2D W (F, C, kh, kw))."""
    bn_params: List[int]
    bn_state: List[int]
    per_unit: int  # next-kernel columns per unit: H·W after a Flatten, else 1


def _unit_paths(model: Sequential, layers: List[PrunableLayer]) -> Dict[int, _UnitPath]:
    """For each prunable layer but the last, how its units feed the next one; raises when a layer in
    between mixes units (so they cannot be removed one by one)."""
    shape: Tuple[int, ...] = tuple(model.input_shape)
    p = s = 0
    param_at, state_at, shape_in = {}, {}, {}
    for pos, layer in enumerate(model.layers):
        param_at[pos], state_at[pos], shape_in[pos] = p, s, shape
        p += _param_arrays(layer, shape)
        s += 2 if isinstance(layer, _layers.BatchNormalization) else 0  # running mean, running variance
        shape = layer.output_shape(shape)
    paths: Dict[int, _UnitPath] = {}
    for pl, nxt in zip(layers[:-1], layers[1:]):
        if getattr(model.layers[pl.position], "activation", None) == "softmax":
            raise ValueError(f"channels: cannot remove units of {pl.name}: its softmax mixes them")
        path = _UnitPath([], [], 1)
        flat = False
        for pos in range(pl.position + 1, nxt.position):
            layer = model.layers[pos]
            if isinstance(layer, _layers.BatchNormalization):
                path.bn_params += [param_at[pos], param_at[pos] + 1]
                path.bn_state += [state_at[pos], state_at[pos] + 1]
            elif isinstance(layer, (_layers.Flatten, _layers.GlobalAveragePooling2D)) and not flat:
                flat = True
                if isinstance(layer, _layers.Flatten) and len(shape_in[pos]) == 3:
                    path.per_unit = int(shape_in[pos][1] * shape_in[pos][2])
            elif not isinstance(layer, _CHANNEL_WISE) or getattr(layer, "activation", None) == "softmax":
                raise ValueError(f"channels: cannot remove units of {pl.name}: layer {pos} "
                                 f"({type(layer).__name__}) between it and {nxt.name} mixes them")
        paths[pl.index] = path
    return paths


def channels(model: Sequential, amount: float, criterion: str = "l1",
             exclude: Optional[Sequence[LayerKey]] = None) -> Sequential:
    """Structured pruning: remove ``amount`` of the units of every Dense layer and the filters of
    every Conv2D layer that feed another prunable layer (never the output layer), ranked by the
    norm of their incoming weights (``criterion`` ``"l1"`` or ``"l2"`` of row j of a Dense W, of
    filter j of a Conv2D W; ties by index), and shrink the layers.

    A removed unit is dropped everywhere it went: its bias, the gamma, beta and running statistics
    of a BatchNormalization on the way, and the inputs of the next prunable layer it fed (a
    column of a Dense W; an input channel of a Conv2D W; the H·W columns of its channel after a
    Flatten). Layers in between must act per unit (activations, dropout, spatial dropout, batch
    norm, pooling, one Flatten or global pooling); any other raises.

    The given model is masked in place (the removed weights, biases, BN gamma and beta are zeroed),
    so it computes what the returned model computes. Returns a new, smaller compiled ``Sequential``
    with the surviving weights, running statistics, masks, optimizer settings (fresh optimizer
    state), seed and RNG offset. At least one unit survives in every layer.
    """
    amount = _check_amount(amount, "amount")
    if criterion not in ("l1", "l2"):
        raise ValueError(f"criterion: expected 'l1' or 'l2', got {criterion!r}")
    net = _require_built(model)
    layers = prunable_layers(model)
    if exclude is not None and (isinstance(exclude, (str, int)) or not isinstance(exclude, Iterable)):
        raise TypeError(f"exclude: expected a list of layer indices or names, got {type(exclude).__name__}")
    excluded = {_resolve(k, layers, "exclude") for k in (exclude or [])}
    paths = _unit_paths(model, layers)
    weights = [np.array(w, np.float32) for w in net.get_params()]
    masks: Dict[int, Optional[np.ndarray]] = {i: net.get_mask(i) for i in range(len(weights))}
    keep_units: Dict[int, np.ndarray] = {}  # prunable index -> surviving unit indices (sorted)

    def and_mask(p: int, m: np.ndarray) -> None:
        masks[p] = m if masks[p] is None else masks[p] * m

    for pl, nxt in zip(layers[:-1], layers[1:]):
        if pl.index in excluded:
            continue
        w = np.asarray(weights[pl.param], np.float64).reshape(pl.shape[0], -1)
        score = np.abs(w).sum(axis=1) if criterion == "l1" else np.sqrt(np.square(w).sum(axis=1))
        units = pl.shape[0]
        k = min(_n_to_prune(amount, units), units - 1)
        cut = np.argsort(score, kind="stable")[:k]
        keep_units[pl.index] = np.setdiff1d(np.arange(units), cut)
        path = paths[pl.index]
        # Mask the original: this layer's units, BN's gamma and beta on the way, the next inputs.
        row = np.ones(pl.shape, np.float32)
        row[cut] = 0
        and_mask(pl.param, row)
        per_unit = np.ones(units, np.float32)
        per_unit[cut] = 0
        for p in ([pl.bias_param] if pl.bias_param is not None else []) + path.bn_params:
            and_mask(p, per_unit)
        col = np.ones(nxt.shape, np.float32)
        col[:, np.repeat(cut, path.per_unit) * path.per_unit + np.tile(np.arange(path.per_unit), len(cut))] = 0
        and_mask(nxt.param, col)
    for p, m in masks.items():
        if m is not None:
            net.set_mask(p, np.ascontiguousarray(m, np.float32))
    weights = [np.array(w, np.float32) for w in net.get_params()]
    state = [np.array(a, np.float32) for a in net.get_state()]

    # The smaller model: same layer configs with fewer units, surviving slices of every array.
    rows: Dict[int, np.ndarray] = {}  # param index -> kept entries along axis 0; cols: along axis 1
    cols: Dict[int, np.ndarray] = {}
    state_rows: Dict[int, np.ndarray] = {}
    for pl, nxt in zip(layers[:-1], layers[1:]):
        keep = keep_units.get(pl.index)
        if keep is None:
            continue
        path = paths[pl.index]
        for p in ([pl.param] + ([pl.bias_param] if pl.bias_param is not None else []) + path.bn_params):
            rows[p] = keep
        for si in path.bn_state:
            state_rows[si] = keep
        cols[nxt.param] = (np.repeat(keep, path.per_unit) * path.per_unit
                           + np.tile(np.arange(path.per_unit), len(keep)))
    by_pos = {pl.position: pl for pl in layers}
    new_layers = []
    for pos, layer in enumerate(model.layers):
        layer = _layers.from_config(layer.to_config())
        if pos in by_pos and by_pos[pos].index in keep_units:
            n = int(len(keep_units[by_pos[pos].index]))
            if isinstance(layer, _layers.Dense):
                layer.units = n
            else:
                layer.filters = n
        new_layers.append(layer)
    small = Sequential(new_layers, input_shape=model.input_shape, seed=model.seed, name=model.name)
    small.compile(optimizer=copy.deepcopy(model.optimizer), loss=model.loss, metrics=list(model.metrics))

    def cut_param(p: int, a: np.ndarray) -> np.ndarray:
        if p in rows:
            a = a[rows[p]]
        if p in cols:
            a = a[:, cols[p]]
        return np.ascontiguousarray(a, np.float32)

    small.set_weights([cut_param(p, w) for p, w in enumerate(weights)])
    if state:
        small.set_state([np.ascontiguousarray(a[state_rows[i]] if i in state_rows else a, np.float32)
                         for i, a in enumerate(state)])
    small_net = small.network
    for p, m in masks.items():
        if m is not None:
            cm = cut_param(p, np.asarray(m, np.float32))
            small_net.set_mask(p, None if cm.all() else cm)
    small_net.rng_offset = net.rng_offset
    return small


# ---------------------------------------------------------------------------------------------- report
@dataclass
class SparsityReport:
    """Per prunable layer: name, kernel shape, weights remaining (nnz = ones in the mask), total
    weights and sparsity (pruned fraction); plus the same over all prunable layers."""

    rows: List[Dict[str, Any]]
    nnz: int
    total: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nnz / self.total if self.total else 0.0

    @property
    def remaining(self) -> float:
        """Fraction of prunable weights left."""
        return self.nnz / self.total if self.total else 1.0

    def table(self) -> str:
        head = f"{'#':>3}  {'layer':<12}{'shape':<16}{'nnz':>10}{'total':>10}{'sparsity':>10}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r['index']:>3}  {r['name']:<12}{str(r['shape']):<16}{r['nnz']:>10}{r['total']:>10}"
                         f"{r['sparsity']:>10.4f}")
        lines += ["-" * len(head), f"{'':>3}  {'global':<12}{'':<16}{self.nnz:>10}{self.total:>10}"
                                   f"{self.sparsity:>10.4f}"]
        return "\n".join(lines)

    __str__ = table


def sparsity(model: Sequential) -> SparsityReport:
    """How much of each prunable layer's kernel is pruned (see ``SparsityReport``)."""
    rows = []
    for pl, m in zip(prunable_layers(model), get_masks(model)):
        nnz = int(np.count_nonzero(m))
        rows.append({"index": pl.index, "name": pl.name, "shape": pl.shape, "nnz": nnz, "total": pl.size,
                     "sparsity": 1.0 - nnz / pl.size})
    return SparsityReport(rows, sum(r["nnz"] for r in rows), sum(r["total"] for r in rows))


# ---------------------------------------------------------------------------------------------- lottery
from .lottery import LotteryResults, LotteryTicket  # noqa: E402  (uses the functions above)

"""Data-parallel training over MPI (mpi4py): one process per rank, gradients summed by allreduce.

The per-rank contract is written down in docs/distributed.md. In short: ``batch_size`` is the
global batch; every rank draws the one-process data order and takes a contiguous slice of each
global batch; its dropout element indices start at its rows' global positions, so the masks are
those of the one-process run; the gradients of all parameters live in one flat buffer that one
in-place ``MPI_SUM`` per step adds up; rank 0's model is broadcast first and only rank 0 prints and
writes files.

Start it with ``mpiexec -n R python train.py`` and call ``model.fit(..., distributed=True)``;
``pip install "dropnet[mpi]"`` brings mpi4py and Open MPI. Nothing here runs unless asked: importing
this module does not import mpi4py.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import traceback
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["init", "comm", "rank", "size", "is_main", "launched_size", "shard_bounds", "allreduce_",
           "broadcast_model", "abort_on_error", "weights_digest", "step", "Options", "FixedOrder", "fit",
           "evaluate", "predict_flat",
           "DistributedConfigError"]

_comm: Any = None


class DistributedConfigError(ValueError):
    """Ranks disagree about the model, seeds or data (raised on every rank, nobody aborts)."""


class Options:
    """``fit(..., distributed=Options(...))``: data-parallel training with non-default choices.

    micro_shards=k (fixed order): split every global batch into k fixed micro-shards (rows
    ⌊j·m/k⌋ .. ⌊(j+1)·m/k⌋), compute each one's gradient on its own, gather them all (one
    Allgather) and add them in micro-shard order on every rank. The weights are then the same bits
    at every world size that divides k (without batch norm, whose running statistics are still
    averaged per rank). Costs: k/R gradient computations of smaller batches per rank, an
    Allgather of k gradient arenas instead of an allreduce of one, and the k-term sum.
    sync_batchnorm=True: batch norm layers take their batch statistics (and the gradient terms
    through them) over the whole global batch, with two allreduces per layer forward and one
    backward, as PyTorch's SyncBatchNorm; running statistics are then identical on every rank.
    """

    def __init__(self, micro_shards: Optional[int] = None, sync_batchnorm: bool = False) -> None:
        if micro_shards is not None and (isinstance(micro_shards, bool) or
                                         not isinstance(micro_shards, (int, np.integer)) or micro_shards < 1):
            raise ValueError(f"micro_shards: expected None or an int >= 1, got {micro_shards!r}")
        if not isinstance(sync_batchnorm, bool):
            raise TypeError(f"sync_batchnorm: expected a bool, got {type(sync_batchnorm).__name__}")
        if micro_shards is not None and sync_batchnorm:
            raise ValueError("micro_shards and sync_batchnorm: choose one (micro-shards are computed one at a "
                             "time, so their batch statistics cannot be summed across ranks)")
        self.micro_shards = None if micro_shards is None else int(micro_shards)
        self.sync_batchnorm = sync_batchnorm

    def __repr__(self) -> str:
        return f"Options(micro_shards={self.micro_shards}, sync_batchnorm={self.sync_batchnorm})"


def FixedOrder(micro_shards: int = 4) -> Options:
    """``Options(micro_shards=micro_shards)``: the same bits at every world size dividing it."""
    if micro_shards is None:
        raise ValueError("micro_shards: expected an int >= 1, got None")
    return Options(micro_shards=micro_shards)


def init(communicator: Any = None) -> Any:
    """The communicator dropnet uses: ``communicator`` if given, else mpi4py's ``COMM_WORLD``.

    Raises ImportError with the install command when mpi4py is missing."""
    global _comm
    if communicator is not None:
        _comm = communicator
    elif _comm is None:
        try:
            from mpi4py import MPI
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError('dropnet.distributed needs mpi4py and an MPI runtime: pip install "dropnet[mpi]"') from e
        _comm = MPI.COMM_WORLD
    return _comm


def comm() -> Any:
    return init()


def rank() -> int:
    """This process's rank in [0, size())."""
    return int(init().Get_rank())


def size() -> int:
    """Number of ranks (1 when not started by mpiexec)."""
    return int(init().Get_size())


def is_main() -> bool:
    """Rank 0: the one that prints and writes files."""
    return rank() == 0


def launched_size() -> int:
    """World size announced by the launcher's environment (Open MPI, MPICH, PMIx), without
    importing mpi4py; 1 when this process was not started by mpiexec."""
    for var in ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"):
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def shard_bounds(m: int, r: Optional[int] = None, n_ranks: Optional[int] = None) -> Tuple[int, int]:
    """Rank r's slice [a, b) of m rows: a = floor(r·m / R), b = floor((r+1)·m / R)."""
    r = rank() if r is None else r
    n_ranks = size() if n_ranks is None else n_ranks
    return (r * m) // n_ranks, ((r + 1) * m) // n_ranks


def allreduce_(array: np.ndarray) -> np.ndarray:
    """Sum ``array`` (C-contiguous, writable) over the ranks in place: one ``MPI_Allreduce``."""
    from mpi4py import MPI

    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous and array.flags.writeable):
        raise ValueError("array: expected a writable C-contiguous numpy array, got "
                         f"{type(array).__name__}")
    init().Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
    return array


def _bcast_arrays(arrays: Sequence[np.ndarray], root: int) -> List[np.ndarray]:
    """Rank root's arrays on every rank, float32, in one Bcast (shapes are the same everywhere:
    the configuration check ran first)."""
    if not arrays:
        return []
    flat = np.concatenate([np.ascontiguousarray(a, dtype=np.float32).ravel() for a in arrays])
    init().Bcast(flat, root=root)
    out, at = [], 0
    for a in arrays:
        out.append(flat[at:at + a.size].reshape(a.shape))
        at += a.size
    return out


def broadcast_model(model, root: int = 0) -> None:
    """Rank root's parameters, batch norm running statistics, pruning masks, optimizer state
    (step and slots), learning rate and dropout stream counter on every rank."""
    net = model.network
    c = init()
    params = _bcast_arrays(net.get_params(), root)
    state = _bcast_arrays(net.get_state(), root)
    opt = net.get_optimizer_state()
    slots = _bcast_arrays(list(opt["slots"]), root)
    n_params = len(params)
    has_mask = [net.get_mask(i) is not None for i in range(n_params)]
    scalars = c.bcast({"lr": float(net.lr), "rng_offset": int(net.rng_offset), "step": int(opt["step"]),
                       "masks": has_mask}, root=root)
    masks = _bcast_arrays([net.get_mask(i) if has_mask[i] else np.zeros(0, np.float32)
                           for i in range(n_params) if scalars["masks"][i]], root) if any(scalars["masks"]) else []
    it = iter(masks)
    for i in range(n_params):
        if scalars["masks"][i]:
            net.set_mask(i, next(it).reshape(params[i].shape))
        elif has_mask[i]:
            net.set_mask(i, None)
    net.set_params(params)
    net.set_state(state)
    net.set_optimizer_state({"step": scalars["step"], "slots": slots})
    net.lr = scalars["lr"]
    net.rng_offset = scalars["rng_offset"]


def weights_digest(model) -> str:
    """SHA-256 of the parameters' and running statistics' bytes (to compare ranks or runs)."""
    h = hashlib.sha256()
    for a in [*model.network.get_params(), *model.network.get_state()]:
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()


def step(model, x: np.ndarray, y: np.ndarray, rows: Any, micro_shards: Optional[int] = None,
         sample_weight: Optional[np.ndarray] = None,
         workspace: Optional[np.ndarray] = None) -> Tuple[float, int, float]:
    """One data-parallel step on the global batch ``x[rows]``, ``y[rows]`` (rows: index array or
    slice into x, the same on every rank): this rank's shard → compute_gradients → one allreduce
    of the gradient arena (or, with micro_shards=k, the k micro-shards' gradients gathered and
    added in order: see Options) → apply_gradients. Returns this rank's (loss_sum, correct,
    penalty); loss_sum and correct cover its rows only. sample_weight: (len(x),) float32 or None.
    workspace: (micro_shards, grad_buffer.size) float32 scratch to reuse across steps (else one is
    allocated per call)."""
    net = model.network
    grad = net.grad_buffer
    if isinstance(rows, slice):
        span = range(len(x))[rows]
        idx = np.arange(span.start, span.stop, span.step)
    else:
        idx = np.asarray(rows)
    m = len(idx)
    c = init()
    r, n_ranks = int(c.Get_rank()), int(c.Get_size())
    if micro_shards is None:
        a, b = shard_bounds(m, r, n_ranks)
        loss_sum, correct = net.compute_gradients(x[idx[a:b]], y[idx[a:b]], a, m, _rows_of(sample_weight, idx[a:b]))
        allreduce_(grad)
        return loss_sum, correct, net.apply_gradients()
    k = int(micro_shards)
    mine = range(r * k // n_ranks, (r + 1) * k // n_ranks)
    gathered = workspace if workspace is not None else np.empty((k, grad.size), dtype=np.float32)
    loss_sum, correct = 0.0, 0
    for j in mine:
        a, b = shard_bounds(m, j, k)
        s, cj = net.compute_gradients(x[idx[a:b]], y[idx[a:b]], a, m, _rows_of(sample_weight, idx[a:b]))
        loss_sum += s
        correct = -1 if cj < 0 or correct < 0 else correct + cj
        gathered[j] = grad
    if n_ranks > 1:
        from mpi4py import MPI

        # Each rank's micro-shards are a contiguous run of rows of `gathered`, already in place.
        c.Allgather(MPI.IN_PLACE, gathered)
    # The k-term sum in micro-shard order: the same float32 additions at every world size.
    np.copyto(grad, gathered[0])
    for j in range(1, k):
        grad += gathered[j]
    return loss_sum, correct, net.apply_gradients()


def _rows_of(weights: Optional[np.ndarray], idx: np.ndarray) -> Optional[np.ndarray]:
    return None if weights is None else np.ascontiguousarray(weights[idx])


@contextlib.contextmanager
def abort_on_error(what: str = "a distributed call") -> Iterator[None]:
    """If the body raises on this rank, print which rank failed and ``MPI_Abort`` the job, so the
    other ranks do not wait for it in a collective. With one rank the exception propagates.
    ``DistributedConfigError`` (raised on every rank alike) also propagates."""
    try:
        yield
    except DistributedConfigError:
        raise
    except (Exception, KeyboardInterrupt) as e:
        c = init()
        if c.Get_size() == 1:
            raise
        traceback.print_exc()
        print(f"dropnet.distributed: rank {c.Get_rank()} of {c.Get_size()} failed in {what}: "
              f"{type(e).__name__}: {e}; aborting all ranks", file=sys.stderr, flush=True)
        c.Abort(1)


def _digest(value: Any) -> str:
    if isinstance(value, np.ndarray):
        data = value.tobytes() + str((value.dtype.str, value.shape)).encode()
    else:
        data = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _sample(a: np.ndarray, k: int = 64) -> np.ndarray:
    """Up to k rows spread over a (with the first and last): a cheap fingerprint of the data."""
    if len(a) == 0:
        return a
    idx = np.unique(np.linspace(0, len(a) - 1, num=min(k, len(a))).astype(np.int64))
    return np.ascontiguousarray(a[idx])


def _check_same(fields: Dict[str, Any]) -> None:
    """Compare the fields' digests with rank 0's; raise DistributedConfigError on every rank when
    any rank differs, naming the ranks and the fields."""
    c = init()
    mine = {k: _digest(v) for k, v in fields.items()}
    everyone = c.allgather(mine)
    bad = {r: sorted(k for k in d if d[k] != everyone[0].get(k)) for r, d in enumerate(everyone)}
    bad = {r: ks for r, ks in bad.items() if ks}
    if bad:
        text = "; ".join(f"rank {r}: {', '.join(ks)}" for r, ks in sorted(bad.items()))
        raise DistributedConfigError(f"distributed fit: ranks disagree with rank 0 about {text} (every rank must "
                                     "build the same model with the same seed and pass the same data and arguments)")


class _DataParallel:
    """The per-rank side of ``Sequential._fit`` (models.py calls start, train_steps, evaluate,
    end_epoch)."""

    def __init__(self, model, options: Optional[Options] = None) -> None:
        self.model = model
        self.options = options or Options()
        self._gathered: Optional[np.ndarray] = None
        self.comm = init()
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())

    def start(self, x, y, w, val, batch_size, epochs, initial_epoch, shuffle, shuffle_seed, verbose, callbacks):
        """Check the configuration across ranks, broadcast rank 0's model; returns this rank's
        (verbose, callbacks): rank 0 keeps them, the others are silent and write nothing."""
        net = self.model.network
        _check_same({
            "model": self.model.get_config(), "optimizer": net.get_optimizer_config(), "model seed": self.model.seed,
            "data-order seed": shuffle_seed, "shuffle": bool(shuffle), "batch_size": batch_size, "epochs": epochs,
            "initial_epoch": initial_epoch, "options": repr(self.options), "x shape": list(x.shape),
            "y shape": list(y.shape),
            "x sample": _sample(x), "y sample": _sample(y), "sample weights": None if w is None else _sample(w),
            "validation data": None if val is None else [list(val[0].shape), _digest(_sample(val[0])),
                                                         _digest(_sample(val[1]))],
        })
        n = len(x)
        smallest = n if n <= batch_size else (n % batch_size or batch_size)
        k = self.options.micro_shards
        parts = self.size if k is None else k
        if k is not None and k % self.size:
            raise DistributedConfigError(f"distributed: micro_shards={k} needs a world size that divides {k}, got "
                                         f"{self.size} ranks")
        if smallest < parts:
            raise DistributedConfigError(
                f"batch_size: every global batch must give each of the {parts} shards at least one row, but "
                f"{n} samples in batches of {batch_size} leave a batch of {smallest}; choose batch_size and the data "
                "size so that each batch has >= one row per shard")
        broadcast_model(self.model)
        if k is not None:
            self._gathered = np.empty((k, net.grad_buffer.size), dtype=np.float32)
        if self.options.sync_batchnorm:
            net.set_batchnorm_sync(allreduce_)  # fit's finally clears it (finish)
        if self.rank != 0:
            from . import callbacks as _callbacks

            writers = (_callbacks.ModelCheckpoint, _callbacks.CSVLogger)
            callbacks = [cb for cb in (callbacks or []) if not isinstance(cb, writers)]
            verbose = 0
        return verbose, callbacks

    def train_steps(self, x, y, order, batch_size, s0, s1, w=None):
        """Global steps [s0, s1), each one ``step``; then one allreduce of the steps' loss sums and
        correct counts. Returns what Network.train_steps returns for the global batches."""
        n = len(x)
        k = s1 - s0
        sums = np.zeros(3 * k, dtype=np.float64)  # loss sums, correct counts, "no classes" flags
        penalties = np.zeros(k, dtype=np.float64)
        rows_per_step = np.zeros(k, dtype=np.float64)
        for i, s in enumerate(range(s0, s1)):
            lo, hi = s * batch_size, min(n, (s + 1) * batch_size)
            rows = order[lo:hi] if order is not None else slice(lo, hi)
            loss_sum, correct, penalties[i] = step(self.model, x, y, rows, self.options.micro_shards, w,
                                                   self._gathered)
            sums[i], sums[k + i], sums[2 * k + i] = loss_sum, max(correct, 0), correct < 0
            rows_per_step[i] = hi - lo
        allreduce_(sums)
        losses = sums[:k] / rows_per_step + penalties
        corrects = np.where(sums[2 * k:] > 0, -1, sums[k:2 * k]).astype(np.int64)
        return losses, corrects

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                 weights: Optional[np.ndarray] = None) -> Dict[str, float]:
        return _evaluate_sharded(self.model, x, y, batch_size, weights, self.rank, self.size)

    def end_epoch(self) -> None:
        """Average the batch norm running statistics over the ranks (all ranks then hold the same;
        with sync_batchnorm they already do)."""
        net = self.model.network
        state = net.get_state()
        if not state or self.options.sync_batchnorm:
            return
        flat = np.concatenate([np.ascontiguousarray(a, dtype=np.float32).ravel() for a in state])
        allreduce_(flat)
        flat /= np.float32(self.size)
        out, at = [], 0
        for a in state:
            out.append(flat[at:at + a.size].reshape(a.shape))
            at += a.size
        net.set_state(out)


def _evaluate_sharded(model, x, y, batch_size, weights, r, n_ranks) -> Dict[str, float]:
    """Sequential._evaluate_prepared with each rank's slice of rows and the sums allreduced."""
    from . import metrics as _metrics

    if any(m != _metrics.ACCURACY for m in model.metrics):
        # Metrics computed in Python from all predictions: every rank evaluates everything (the
        # same weights give the same numbers), no exchange needed.
        return model._evaluate_prepared(x, y, batch_size, weights)
    a, b = shard_bounds(len(x), r, n_ranks)
    sums = np.zeros(3, dtype=np.float64)  # loss sum, correct (weighted), weight sum
    if b > a:
        if weights is None:
            loss_sum, n_correct = model.network.evaluate(x[a:b], y[a:b], batch_size)
            weight_sum = b - a
        else:
            loss_sum, n_correct, weight_sum = model.network.evaluate(x[a:b], y[a:b], batch_size, weights[a:b])
        sums[:] = float(loss_sum), float(n_correct), float(weight_sum)
    allreduce_(sums)
    out = {"loss": float(sums[0]) / len(x)}
    if _metrics.ACCURACY in model.metrics:
        out["accuracy"] = float(sums[1]) / (sums[2] * model._accuracy_units()) if sums[2] > 0 else 0.0
    return out


def fit(model, x, y, options: Optional[Options] = None, **kwargs):
    """``model.fit(x, y, distributed=True, ...)``: the same arguments on every rank
    (``distributed=Options(...)`` passes options)."""
    init()
    with abort_on_error("fit"), _batchnorm_sync_cleared(model):
        args = [kwargs.pop(name, default) for name, default in (
            ("epochs", 1), ("batch_size", 32), ("validation_data", None), ("validation_split", 0.0),
            ("shuffle", True), ("seed", None), ("callbacks", None), ("verbose", 1), ("initial_epoch", 0),
            ("sample_weight", None), ("class_weight", None), ("steps_per_epoch", None))]
        if kwargs:
            raise TypeError(f"fit: unexpected keyword arguments {sorted(kwargs)}")
        return model._fit(x, y, *args, _DataParallel(model, options))


@contextlib.contextmanager
def _batchnorm_sync_cleared(model) -> Iterator[None]:
    """After a distributed fit the model trains on its own again (no cross-process batch norm)."""
    try:
        yield
    finally:
        if model.built:
            model.network.set_batchnorm_sync(None)


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256,
             weights: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Each rank evaluates its slice of the rows; the sums are allreduced (same dict everywhere)."""
    c = init()
    with abort_on_error("evaluate"):
        return _evaluate_sharded(model, x, y, batch_size, weights, int(c.Get_rank()), int(c.Get_size()))


def predict_flat(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Each rank predicts its slice of the rows of prepared x; every rank gets all (N, n_out)
    outputs (``model.predict(x, distributed=True)`` reshapes them)."""
    from mpi4py import MPI

    c = init()
    with abort_on_error("predict"):
        r, n_ranks = int(c.Get_rank()), int(c.Get_size())
        n = len(x)
        n_out = int(np.prod(model.network.output_shape))
        a, b = shard_bounds(n, r, n_ranks)
        local = model._predict_flat(x[a:b], batch_size) if b > a else np.zeros((0, n_out), np.float32)
        out = np.empty((n, n_out), dtype=np.float32)
        bounds = [shard_bounds(n, q, n_ranks) for q in range(n_ranks)]
        counts = [(hi - lo) * n_out for lo, hi in bounds]
        displs = [lo * n_out for lo, _ in bounds]
        c.Allgatherv(np.ascontiguousarray(local, dtype=np.float32), [out, counts, displs, MPI.FLOAT])
        return out

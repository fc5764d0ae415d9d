"""Iterative magnitude pruning with rewinding: the lottery-ticket experiment, with its controls.

Round 0 trains the dense network from ``model_fn(seed)``. Round r >= 1 prunes ``rate`` of the
weights the round r-1 ticket still has (by magnitude of its trained weights; the output layer at
``output_rate``), rewinds the survivors to the rewind point and retrains. Arms per round:

- ``ticket``: the pruned masks on the rewound weights;
- ``reinit``: the same masks on a fresh initialisation, ``model_fn(derived seed)``;
- ``random_mask``: a random mask with the ticket's per-layer counts (``random_masks_like``) on
  the rewound weights.

Every arm trains with the same data order (``fit(seed=seed)``) and a fresh optimizer state. Derived
seeds are ``SeedSequence([seed, round, arm]).generate_state(1, uint64)[0] >> 1`` (arm 1 reinit,
2 random_mask), so a whole run reproduces from ``seed``.

Rewind points: ``"init"`` (the initial weights), ``("iteration", k)`` (the dense run's weights
after its k-th batch) or ``("epoch", k)`` (after its k-th epoch). Only weights are rewound.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import callbacks as _callbacks
from .._atomic import atomic_write
from .. import io as _io
from .. import losses as _losses
from ..models import Sequential, as_inputs, as_targets
from . import get_masks, magnitude, random_masks_like, rewind, set_masks, sparsity

RewindSpec = Union[str, Tuple[str, int]]
ARMS = ("ticket", "reinit", "random_mask")
_ARM_CODE = {"reinit": 1, "random_mask": 2}
FIELDS = ("round", "arm", "weights_remaining", "best_test_accuracy", "final_test_accuracy", "early_stop_iteration",
          "early_stop_test_accuracy", "min_val_loss", "mean_epoch_seconds", "iterations", "model_seed", "mask_seed")


def derived_seed(seed: int, round_: int, arm: str) -> int:
    """The seed of a control arm (see the module docstring)."""
    state = np.random.SeedSequence([seed, round_, _ARM_CODE[arm]]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _check_rewind(rewind_: object) -> Tuple[str, int]:
    if rewind_ == "init":
        return ("init", 0)
    if (isinstance(rewind_, (tuple, list)) and len(rewind_) == 2 and rewind_[0] in ("iteration", "epoch")):
        return (str(rewind_[0]), _check_int(rewind_[1], "rewind[1]", 0))
    raise ValueError(f"rewind: expected 'init', ('iteration', k) or ('epoch', k), got {rewind_!r}")


class _Recorder(_callbacks.Callback):
    """Evaluates validation loss and test accuracy every ``eval_every`` iterations (None: at each
    epoch end), times epochs (excluding its own evaluations) and snapshots the weights after
    iteration ``snap_iteration`` or epoch ``snap_epoch`` (1-based counts; None: no snapshot)."""

    counts_batches = False

    def __init__(self, val: Optional[Tuple[np.ndarray, np.ndarray]], test: Optional[Tuple[np.ndarray, np.ndarray]],
                 eval_every: Optional[int], snap_iteration: Optional[int] = None,
                 snap_epoch: Optional[int] = None) -> None:
        super().__init__()
        self.val, self.test, self.eval_every = val, test, eval_every
        self.snap_iteration, self.snap_epoch = snap_iteration, snap_epoch
        self.iteration = 0
        self.points: List[Tuple[int, Optional[float], Optional[float]]] = []  # (iteration, val loss, test acc)
        self.epoch_seconds: List[float] = []
        self.snapshot: Optional[List[np.ndarray]] = None
        self._t0 = 0.0
        self._eval_s = 0.0

    def _evaluate(self) -> None:
        t = time.perf_counter()
        net = self.model.network
        val_loss = test_acc = None
        if self.val is not None:
            val_loss = float(net.evaluate(self.val[0], self.val[1], 256)[0]) / len(self.val[0])
        if self.test is not None:
            test_acc = float(net.evaluate(self.test[0], self.test[1], 256)[1]) / len(self.test[0])
        self.points.append((self.iteration, val_loss, test_acc))
        self._eval_s += time.perf_counter() - t

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._t0, self._eval_s = time.perf_counter(), 0.0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not self.counts_batches:
            # No batch hooks (so fit trains whole epochs natively and no callback can stop one
            # midway): the epoch ran all its steps.
            self.iteration += self.model.history.params["steps"]
        self.epoch_seconds.append(time.perf_counter() - self._t0 - self._eval_s)
        if self.eval_every is None:
            self._evaluate()
        if self.snap_epoch is not None and epoch + 1 == self.snap_epoch:
            self.snapshot = self.model.get_weights()

    def summary(self) -> Dict[str, Any]:
        tests = [p[2] for p in self.points if p[2] is not None]
        vals = [(p[1], i) for i, p in enumerate(self.points) if p[1] is not None]
        out: Dict[str, Any] = {
            "best_test_accuracy": max(tests) if tests else None,
            "final_test_accuracy": tests[-1] if tests else None,
            "early_stop_iteration": None, "early_stop_test_accuracy": None, "min_val_loss": None,
            "mean_epoch_seconds": float(np.mean(self.epoch_seconds)) if self.epoch_seconds else None,
            "iterations": self.iteration,
        }
        if vals:
            best_loss, i = min(vals)  # first minimum on ties
            out.update(early_stop_iteration=self.points[i][0], early_stop_test_accuracy=self.points[i][2],
                       min_val_loss=best_loss)
        return out


class _BatchRecorder(_Recorder):
    """_Recorder that also counts, evaluates and snapshots per iteration (eval_every or
    snap_iteration set); fit then runs batch by batch."""

    counts_batches = True

    def on_batch_end(self, batch: int, logs=None) -> None:
        self.iteration += 1
        if self.eval_every is not None and self.iteration % self.eval_every == 0:
            self._evaluate()
        if self.snap_iteration is not None and self.iteration == self.snap_iteration:
            self.snapshot = self.model.get_weights()


@dataclass
class LotteryResults:
    """Records of a ``LotteryTicket.run``: one dict per (round, arm) with the keys ``FIELDS``.

    weights_remaining: fraction of prunable weights left; ``*_test_accuracy``: over the evaluation
    points (each epoch end, or every ``eval_every`` iterations); early_stop_iteration: the
    iteration with the minimal validation loss, early_stop_test_accuracy the test accuracy there;
    mean_epoch_seconds: training wall time per epoch (fit's own evaluation included, this
    recorder's excluded). Round 0 is the dense network, recorded once under arm ``ticket``."""

    records: List[Dict[str, Any]]

    def table(self) -> str:
        """Markdown table, one row per (round, arm)."""
        head = ["round", "arm", "weights left %", "best test acc", "final test acc", "early-stop iter",
                "acc at early stop", "s/epoch"]

        def fmt(v: Any, pct: bool = False, digits: int = 4) -> str:
            if v is None:
                return "-"
            return f"{100 * v:.2f}" if pct else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for r in self.records:
            cells = [str(r["round"]), r["arm"], fmt(r["weights_remaining"], pct=True), fmt(r["best_test_accuracy"]),
                     fmt(r["final_test_accuracy"]), fmt(r["early_stop_iteration"], digits=1),
                     fmt(r["early_stop_test_accuracy"]), fmt(r["mean_epoch_seconds"], digits=3)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    @classmethod
    def load(cls, checkpoint_dir: str) -> "LotteryResults":
        """The records a ``run(checkpoint_dir=...)`` wrote so far (``lottery.json``)."""
        with open(os.path.join(checkpoint_dir, "lottery.json")) as f:
            records = json.load(f)["records"]
        order = {a: i for i, a in enumerate(ARMS)}
        return cls(sorted(records, key=lambda rec: (rec["round"], order[rec["arm"]])))

    def to_csv(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(FIELDS), extrasaction="ignore")
            w.writeheader()
            for r in self.records:
                w.writerow({k: "" if r.get(k) is None else r[k] for k in FIELDS})

    def arm(self, name: str) -> List[Dict[str, Any]]:
        """The records of one arm in round order; controls start from the shared dense round 0."""
        rows = [r for r in self.records if r["arm"] == name]
        if name != "ticket":
            rows = [r for r in self.records if r["round"] == 0] + rows
        return sorted(rows, key=lambda r: r["round"])

    def plot(self, path: str, metric: str = "best_test_accuracy") -> None:
        """Save a figure of ``metric`` against the percentage of weights remaining (log axis,
        decreasing to the right) for the ticket and each control. Needs matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("LotteryResults.plot needs matplotlib (pip install matplotlib); table() and "
                              "to_csv() work without it") from None
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in ARMS:
            rows = [r for r in self.arm(name) if r.get(metric) is not None]
            if len(rows) > (0 if name == "ticket" else 1):
                ax.plot([100 * r["weights_remaining"] for r in rows], [r[metric] for r in rows], marker="o",
                        label=name)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def _digest(arrays: Sequence[Optional[np.ndarray]]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
        else:
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _write_json(path: str, obj: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


class LotteryTicket:
    """The lottery-ticket experiment (see the module docstring).

    model_fn: ``model_fn(seed) -> Sequential``, compiled with a known input shape and a
    crossentropy loss; it must build the same architecture for every seed. rate: fraction of the
    remaining weights pruned per round; output_rate: the same for the output layer (None: ``rate``);
    rounds: pruning rounds after the dense round 0; rewind: ``"init"``, ``("iteration", k)`` or
    ``("epoch", k)``; scope: ``"layer"`` or ``"global"`` magnitude ranking (the output layer is
    always ranked on its own when output_rate is given); seed: model seed of the dense network and
    the ticket, data-order seed of every arm, root of the control seeds; eval_every: evaluate every
    that many iterations (None: at every epoch end).
    """

    def __init__(self, model_fn: Callable[[int], Sequential], rate: float = 0.2, output_rate: Optional[float] = 0.1,
                 rounds: int = 5, rewind: RewindSpec = "init", scope: str = "layer", seed: int = 0,
                 eval_every: Optional[int] = None) -> None:
        from . import _check_amount, _check_seed

        if not callable(model_fn):
            raise TypeError(f"model_fn: expected a callable seed -> Sequential, got {type(model_fn).__name__}")
        self.model_fn = model_fn
        self.rate = _check_amount(rate, "rate")
        self.output_rate = None if output_rate is None else _check_amount(output_rate, "output_rate")
        self.rounds = _check_int(rounds, "rounds", 0)
        self.rewind = _check_rewind(rewind)
        if scope not in ("layer", "global"):
            raise ValueError(f"scope: expected 'layer' or 'global', got {scope!r}")
        self.scope = scope
        self.seed = _check_seed(seed)
        self.eval_every = None if eval_every is None else _check_int(eval_every, "eval_every", 1)
        self.rewind_weights: Optional[List[np.ndarray]] = None
        self.init_weights: Optional[List[np.ndarray]] = None

    # ------------------------------------------------------------------ helpers
    def _make(self, seed: int) -> Sequential:
        model = self.model_fn(seed)
        if not isinstance(model, Sequential):
            raise TypeError(f"model_fn: expected it to return a dropnet Sequential, got {type(model).__name__}")
        if not model.built:
            raise ValueError("model_fn: returned an unbuilt model; give input_shape and compile() it")
        if not _losses.is_classification(model.loss):
            raise ValueError(f"model_fn: the model needs a crossentropy loss for test accuracy, got {model.loss!r}")
        return model

    def _prune_next(self, trained: Sequential) -> List[np.ndarray]:
        amounts = None if self.output_rate is None else {-1: self.output_rate}
        magnitude(trained, self.rate, scope=self.scope, amounts=amounts)
        return get_masks(trained)

    # ------------------------------------------------------------------ run
    def run(self, x: Any, y: Any, epochs: int = 1, batch_size: int = 60,
            validation_data: Optional[Tuple[Any, Any]] = None, test_data: Optional[Tuple[Any, Any]] = None,
            controls: Sequence[str] = ("reinit", "random_mask"), early_stopping: Optional[int] = None,
            checkpoint_dir: Optional[str] = None, verbose: int = 1, distributed: bool = False) -> LotteryResults:
        """Run rounds 0..rounds and return the records.

        x: ``(N, *input_shape)`` training inputs, y: (N,) labels. validation_data: (x_val, y_val) for
        the early-stopping iteration (minimal validation loss); test_data: (x_test, y_test) for the
        accuracies. early_stopping: None trains every arm ``epochs`` epochs; an int stops an arm
        after that many epochs without a lower validation loss (needs validation_data).
        checkpoint_dir: after every arm its trained model (``round_RR_ARM.dnet``, dropnet's
        checkpoint format), the rewind weights (``rewind.dnet``) and the records
        (``lottery.json``) are written there; a rerun with the same directory and settings skips
        the finished arms and returns the same records (timings aside). verbose: 1 prints a line
        per arm. distributed: every arm trains data-parallel over the MPI ranks (``fit(...,
        distributed=True)``; every rank calls run with the same arguments); only rank 0 prints and
        writes checkpoint_dir.
        """
        epochs = _check_int(epochs, "epochs", 1)
        batch_size = _check_int(batch_size, "batch_size", 1)
        if isinstance(controls, str) or not all(c in _ARM_CODE for c in controls):
            raise ValueError(f"controls: expected a sequence of 'reinit' and/or 'random_mask', got {controls!r}")
        if early_stopping is not None:
            early_stopping = _check_int(early_stopping, "early_stopping", 1)
            if validation_data is None:
                raise ValueError("early_stopping: needs validation_data")
        base = self._make(self.seed)
        in_shape, loss, n_out = base.input_shape, base.loss, base.network.output_shape[0]
        x = as_inputs(x, in_shape, "x")
        y = as_targets(y, len(x), loss, n_out, "y")

        def pair(data: Optional[Tuple[Any, Any]], name: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
            if data is None:
                return None
            if not (isinstance(data, (tuple, list)) and len(data) == 2):
                raise ValueError(f"{name}: expected a tuple (x, y)")
            xa = as_inputs(data[0], in_shape, f"{name}[0]")
            return xa, as_targets(data[1], len(xa), loss, n_out, f"{name}[1]")

        val, test = pair(validation_data, "validation_data"), pair(test_data, "test_data")
        steps = -(-len(x) // batch_size)
        kind, k = self.rewind
        if (kind == "iteration" and k > steps * epochs) or (kind == "epoch" and k > epochs):
            raise ValueError(f"rewind: {self.rewind} is past the end of the dense run ({epochs} epochs of {steps} "
                             "iterations)")
        config = {"rate": self.rate, "output_rate": self.output_rate, "rewind": list(self.rewind), "scope": self.scope,
                  "seed": self.seed, "eval_every": self.eval_every, "epochs": epochs, "batch_size": batch_size,
                  "early_stopping": early_stopping, "model": base.get_config(),
                  "data": _digest([x, y, *(val or (None, None)), *(test or (None, None))])}
        main = True
        if distributed:
            from .. import distributed as _distributed

            main = _distributed.is_main()
            verbose = verbose if main else 0
        store = _Store(checkpoint_dir, config, writer=main)

        def train(model: Sequential, snap: bool = False) -> Tuple[Dict[str, Any], Optional[List[np.ndarray]]]:
            snap_iteration = k if snap and kind == "iteration" and k > 0 else None
            recorder = _BatchRecorder if self.eval_every is not None or snap_iteration is not None else _Recorder
            rec = recorder(val, test, self.eval_every, snap_iteration=snap_iteration,
                           snap_epoch=k if snap and kind == "epoch" and k > 0 else None)
            cbs: List[_callbacks.Callback] = [rec]
            if early_stopping is not None:
                cbs.append(_callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping))
            model.fit(x, y, epochs=epochs, batch_size=batch_size, seed=self.seed, callbacks=cbs, verbose=0,
                      validation_data=val if early_stopping is not None else None, distributed=distributed)
            return rec.summary(), rec.snapshot

        def finish(r: int, arm: str, model: Sequential, summary: Dict[str, Any], model_seed: int,
                   mask_seed: Optional[int]) -> None:
            record = {"round": r, "arm": arm, "weights_remaining": sparsity(model).remaining, **summary,
                      "model_seed": model_seed, "mask_seed": mask_seed}
            store.add(record, model)
            if verbose:
                acc = record["best_test_accuracy"]
                print(f"round {r} {arm:<12} weights left {100 * record['weights_remaining']:6.2f}%  best test acc "
                      f"{'-' if acc is None else f'{acc:.4f}'}", flush=True)

        # Round 0: the dense network, and the rewind point.
        self.init_weights = base.get_weights()
        if store.done(0, "ticket"):
            ticket = store.load(0, "ticket")
            self.rewind_weights = store.load_rewind()
        else:
            summary, snapshot = train(base, snap=True)
            self.rewind_weights = self.init_weights if kind == "init" or k == 0 else snapshot
            if self.rewind_weights is None:
                raise ValueError(f"rewind: {self.rewind} was never reached: early stopping ended the dense run first")
            store.save_rewind(self._make(self.seed), self.rewind_weights)
            ticket = base
            finish(0, "ticket", base, summary, self.seed, None)

        for r in range(1, self.rounds + 1):
            masks = self._prune_next(ticket)
            if store.done(r, "ticket"):
                ticket = store.load(r, "ticket")
            else:
                model = rewind(self._make(self.seed), self.rewind_weights, masks)
                summary, _ = train(model)
                finish(r, "ticket", model, summary, self.seed, None)
                ticket = model
            for arm in controls:
                if store.done(r, arm):
                    continue
                s = derived_seed(self.seed, r, arm)
                if arm == "reinit":  # the ticket's masks on a fresh initialisation
                    model = self._make(s)
                    set_masks(model, masks)
                    model_seed, mask_seed = s, None
                else:  # a random mask of the ticket's per-layer counts on the rewound weights
                    model = self._make(self.seed)
                    rewind(model, self.rewind_weights, random_masks_like(model, masks, s))
                    model_seed, mask_seed = self.seed, s
                summary, _ = train(model)
                finish(r, arm, model, summary, model_seed, mask_seed)
        order = {a: i for i, a in enumerate(ARMS)}
        return LotteryResults(sorted(store.records, key=lambda rec: (rec["round"], order[rec["arm"]])))


class _Store:
    """Records in memory and, with a directory, on disk (see ``LotteryTicket.run``)."""

    def __init__(self, directory: Optional[str], config: dict, writer: bool = True) -> None:
        self.dir = directory
        self.writer = writer  # False: a distributed rank other than 0 reads the directory, never writes
        self.config = json.loads(json.dumps(config))  # JSON-normalised, comparable with a loaded one
        self.records: List[Dict[str, Any]] = []
        if directory is None:
            return
        if writer:
            os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "lottery.json")
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            if saved.get("config") != self.config:
                diff = sorted(k for k in set(self.config) | set(saved.get("config", {}))
                              if self.config.get(k) != saved.get("config", {}).get(k))
                raise ValueError(f"checkpoint_dir: {directory} holds a run with other settings or data "
                                 f"(differs in {diff}); use a new directory")
            self.records = [r for r in saved["records"] if os.path.exists(self._path(r["round"], r["arm"]))]

    def _path(self, r: int, arm: str) -> str:
        assert self.dir is not None
        return os.path.join(self.dir, f"round_{r:02d}_{arm}.dnet")

    def done(self, r: int, arm: str) -> bool:
        return any(rec["round"] == r and rec["arm"] == arm for rec in self.records)

    def load(self, r: int, arm: str) -> Sequential:
        return _io.load_model(self._path(r, arm))

    def add(self, record: Dict[str, Any], model: Sequential) -> None:
        record = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}
        self.records.append(record)
        if self.dir is None or not self.writer:
            return
        model.save(self._path(record["round"], record["arm"]))
        _write_json(os.path.join(self.dir, "lottery.json"), {"config": self.config, "records": self.records})

    def save_rewind(self, model: Sequential, weights: List[np.ndarray]) -> None:
        if self.dir is not None and self.writer:
            model.set_weights(weights)
            model.save(os.path.join(self.dir, "rewind.dnet"))

    def load_rewind(self) -> List[np.ndarray]:
        assert self.dir is not None
        return _io.load_model(os.path.join(self.dir, "rewind.dnet")).get_weights()

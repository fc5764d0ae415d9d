"""Callbacks: hooks ``fit`` calls around epochs and batches.

A callback sees the model as ``self.model`` and can stop training with
``self.model.stop_training = True``. ``logs`` at epoch end hold ``loss`` (mean training loss over
the epoch's batches, penalties included), ``accuracy`` (if compiled with it: Keras' meaning, the
running accuracy of the epoch's training batches *as they were trained*, with dropout on and batch
norm on batch statistics, while the weights changed), ``val_loss``/``val_accuracy`` and the other
compiled metrics (with validation data) and ``lr`` (the learning rate used in this epoch).

The training set measured like the test set -- dropout off, batch norm on its running statistics,
the weights at the end of the epoch -- is what ``EvaluateTrainSet`` adds (``train_loss``,
``train_accuracy``, ...): the curve to set beside ``val_accuracy`` when the question is how far
training and test accuracy are apart (a dropout network's running ``accuracy`` sits below its
clean training accuracy).
"""
from __future__ import annotations

import csv
import math
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

Logs = Dict[str, float]


class Callback:
    """Base class; every hook is a no-op."""

    def __init__(self) -> None:
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        pass

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        pass

    def on_epoch_logs(self, epoch: int, logs: Logs) -> None:
        """Add entries to the epoch's logs before any callback's ``on_epoch_end`` sees them (and
        before the progress line prints them)."""


class CallbackList:
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks: Sequence[Callback], model) -> None:
        self.callbacks: List[Callback] = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected dropnet.callbacks.Callback instances, got {type(cb).__name__}")
            cb.set_model(model)
        # Only callbacks that override on_batch_end are called per batch.
        self._batch = [cb for cb in self.callbacks if type(cb).on_batch_end is not Callback.on_batch_end]

    def on_train_begin(self, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_epoch_logs(self, epoch: int, logs) -> None:
        for cb in self.callbacks:
            cb.on_epoch_logs(epoch, logs)

    @property
    def wants_batches(self) -> bool:
        return bool(self._batch)

    def on_batch_end(self, batch: int, logs=None) -> None:
        for cb in self._batch:
            cb.on_batch_end(batch, logs)


class History(Callback):
    """Records the epoch logs: ``history[key]`` is a list with one value per epoch run."""

    def __init__(self) -> None:
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []
        self.params: dict = {}

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor) else "min"
    return mode


class EvaluateTrainSet(Callback):
    """After every epoch, evaluate the model on training data the way ``val_*`` is measured --
    dropout off, batch norm on its running statistics, the end-of-epoch weights -- and add
    ``train_loss``, ``train_accuracy`` and the other compiled metrics (prefix ``prefix``) to the
    epoch's logs (so ``History``, ``CSVLogger``, ``EarlyStopping`` and the progress line see them).

    x, y: the training set, or a subset of it (``max_samples`` takes its first rows: the cost is
    one inference pass over them per epoch). sample_weight: as in ``evaluate``.
    """

    def __init__(self, x, y, batch_size: int = 256, sample_weight=None, max_samples: Optional[int] = None,
                 prefix: str = "train_") -> None:
        super().__init__()
        if max_samples is not None:
            if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
                raise ValueError(f"max_samples: expected an int >= 1 or None, got {max_samples!r}")
            x, y = x[:max_samples], y[:max_samples]
            sample_weight = None if sample_weight is None else sample_weight[:max_samples]
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix: expected a non-empty str, got {prefix!r}")
        self.x, self.y, self.batch_size, self.sample_weight, self.prefix = x, y, batch_size, sample_weight, prefix

    def on_epoch_logs(self, epoch: int, logs) -> None:
        result = self.model.evaluate(self.x, self.y, batch_size=self.batch_size, sample_weight=self.sample_weight)
        for k, v in result.items():
            logs[self.prefix + k] = v


class _Monitor:
    """Tracks the best value of a monitored log entry."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a str, got {type(monitor).__name__}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor)
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"min_delta: expected a float >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs: Optional[Logs]) -> float:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"monitor: {self.monitor!r} is not in the epoch logs {sorted(logs)}; "
                             "val_* entries need validation_data or validation_split")
        return float(logs[self.monitor])

    def improved(self, current: float) -> bool:
        if math.isnan(current):
            return False
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs
    (Keras semantics: patience 0 or 1 stops at the first epoch without improvement).

    restore_best_weights: at the end of training, put back the weights of the best epoch (when the
    last epoch was not the best).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False) -> None:
        super().__init__()
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience: expected an int >= 0, got {patience!r}")
        self._mon = _Monitor(monitor, mode, min_delta)
        self.monitor, self.patience = monitor, patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch: Optional[int] = None
        self.best_epoch: Optional[int] = None
        self.best_weights: Optional[list] = None

    @property
    def best(self) -> float:
        return self._mon.best

    def on_train_begin(self, logs=None) -> None:
        self._mon.reset()
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, None, None, None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        current = self._mon.value(logs)
        if self._mon.improved(current):
            self._mon.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:  # Keras: stop after `patience` epochs without improvement
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) after each epoch, or only when ``monitor`` improved.

    path may hold ``{epoch}`` (1-based) and log keys, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``.
    """

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto") -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.save_best_only = save_best_only
        self._mon = _Monitor(monitor, mode, 0.0)
        self.monitor = monitor
        self.last_saved: Optional[str] = None

    def on_train_begin(self, logs=None) -> None:
        self._mon.reset()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = self._mon.value(logs)
            if not self._mon.improved(current):
                return
            self._mon.best = current
        path = self.path.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        self.last_saved = path


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (epoch 0-based,
    lr the current rate)."""

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a callable (epoch, lr) -> lr, got {type(schedule).__name__}")
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        lr = self.schedule(epoch, self.model.lr)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"LearningRateScheduler: schedule({epoch}, ...) must return a finite float > 0, got {lr!r}")
        self.model.lr = float(lr)


class StepDecay(LearningRateScheduler):
    """``lr = base_lr * factor ** (epoch // every)``, base_lr being the compiled optimizer's rate.

    It depends only on the epoch number, so a resumed run (``initial_epoch``) gets the same rates.
    """

    def __init__(self, factor: float = 0.5, every: int = 50) -> None:
        if not (isinstance(factor, (int, float)) and 0 < factor <= 1):
            raise ValueError(f"factor: expected a float in (0, 1], got {factor!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected an int >= 1, got {every!r}")
        self.factor, self.every = float(factor), every
        super().__init__(self._rate)

    def _rate(self, epoch: int, lr: float) -> float:
        return self.model.optimizer.lr * self.factor ** (epoch // self.every)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience``
    epochs, never going below ``min_lr``; waits ``cooldown`` epochs after each reduction."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, min_lr: float = 0.0,
                 min_delta: float = 1e-4, mode: str = "auto", cooldown: int = 0) -> None:
        super().__init__()
        if not (isinstance(factor, (int, float)) and 0 < factor < 1):
            raise ValueError(f"factor: expected a float in (0, 1), got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience: expected an int >= 0, got {patience!r}")
        if not (isinstance(min_lr, (int, float)) and min_lr >= 0):
            raise ValueError(f"min_lr: expected a float >= 0, got {min_lr!r}")
        self._mon = _Monitor(monitor, mode, min_delta)
        self.monitor, self.factor, self.patience, self.min_lr = monitor, float(factor), patience, float(min_lr)
        self.cooldown = cooldown
        self.wait = 0
        self._cooldown_left = 0

    def on_train_begin(self, logs=None) -> None:
        self._mon.reset()
        self.wait, self._cooldown_left = 0, 0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        current = self._mon.value(logs)
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            self.wait = 0
        if self._mon.improved(current):
            self._mon.best, self.wait = current, 0
            return
        if self._cooldown_left > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            lr = self.model.lr
            new_lr = max(lr * self.factor, self.min_lr)
            if new_lr < lr and new_lr > 0:
                self.model.lr = new_lr
            self.wait = 0
            self._cooldown_left = self.cooldown


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped_batch: Optional[int] = None

    def on_batch_end(self, batch: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.stopped_batch = batch
            self.model.stop_training = True


class CSVLogger(Callback):
    """Write one CSV row per epoch (``epoch`` then the log keys), flushed after every row."""

    def __init__(self, path: str, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.separator = separator
        self.append = append
        self._file = None
        self._writer = None
        self._keys: Optional[List[str]] = None

    def on_train_begin(self, logs=None) -> None:
        exists = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._keys = None
        self._has_header = exists

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if not self._has_header:
                self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(repr(float(logs[k])) if k in logs else "" for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs=None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

"""Callbacks: hook order, EarlyStopping, ModelCheckpoint, learning-rate schedules, TerminateOnNaN,
CSVLogger. Monitored values are scripted by a callback that runs first, so each test knows the
exact epoch a callback must act on."""
from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest

from dropnet import callbacks, layers, optim
from dropnet.io import load_model
from dropnet.models import Sequential


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def model(seed=0, lr=0.05):
    m = Sequential([layers.Dense(8, activation="relu"), layers.Dropout(0.2), layers.Dense(2, activation="softmax")],
                   input_shape=(6,), seed=seed)
    m.compile(optimizer=optim.SGD(lr=lr), metrics=["accuracy"])
    return m


class Script(callbacks.Callback):
    """Overwrites logs[key] with values[epoch] and records the weights after each epoch."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values, self.weights = key, values, {}

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights[epoch] = self.model.get_weights()


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch, logs=None):
        assert math.isfinite(logs["loss"])
        self.events.append(f"batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def test_hook_order_and_model_reference():
    x, y = data(40)
    m = model()
    rec = Recorder()
    m.fit(x, y, epochs=2, batch_size=16, callbacks=[rec], verbose=0, initial_epoch=0)
    keys = "['accuracy', 'loss', 'lr']"
    assert rec.events == ["train_begin",
                          "epoch_begin 0", "batch 0", "batch 1", "batch 2", f"epoch_end 0 {keys}",
                          "epoch_begin 1", "batch 0", "batch 1", "batch 2", f"epoch_end 1 {keys}",
                          "train_end"]
    assert rec.model is m


def test_stop_training_from_a_batch_hook():
    class StopAfter(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    x, y = data(64)
    m = model()
    hist = m.fit(x, y, epochs=5, batch_size=16, callbacks=[StopAfter()], verbose=0)
    assert hist.epoch == [0]


def test_early_stopping_patience_and_restore_best_weights():
    x, y = data()
    m = model()
    script = Script("val_loss", [1.0, 0.5, 0.6, 0.55, 0.7, 0.1])
    es = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    hist = m.fit(x, y, epochs=6, callbacks=[script, es], verbose=0)
    assert hist.epoch == [0, 1, 2, 3]  # best at 1; epochs 2 and 3 did not improve
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.5
    for p, q in zip(m.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(script.weights[3][0], script.weights[1][0])


def test_early_stopping_min_delta_and_mode():
    x, y = data()
    m = model()
    es = callbacks.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.05)  # auto -> max
    hist = m.fit(x, y, epochs=5, callbacks=[Script("val_accuracy", [0.5, 0.52, 0.9, 0.91, 0.99]), es], verbose=0)
    assert hist.epoch == [0, 1]  # +0.02 is below min_delta
    es_min = callbacks.EarlyStopping(monitor="loss", mode="min", patience=0)
    hist = m.fit(x, y, epochs=4, callbacks=[Script("loss", [3.0, 2.0, 2.5, 1.0]), es_min], verbose=0)
    assert hist.epoch == [0, 1, 2]
    with pytest.raises(ValueError, match="mode"):
        callbacks.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="val_loss.*validation"):
        m.fit(x, y, epochs=1, callbacks=[callbacks.EarlyStopping()], verbose=0)


def test_model_checkpoint_best_only(tmp_path):
    x, y = data()
    m = model()
    script = Script("val_loss", [1.0, 0.4, 0.8, 0.3, 0.9])
    path = str(tmp_path / "best.npz")
    ck = callbacks.ModelCheckpoint(path, save_best_only=True)

    m.fit(x, y, epochs=5, callbacks=[script, ck], verbose=0)
    best = load_model(path)
    for p, q in zip(best.get_weights(), script.weights[3]):
        np.testing.assert_array_equal(p, q)
    # every-epoch checkpoints with the epoch in the name
    ck_all = callbacks.ModelCheckpoint(str(tmp_path / "ep{epoch:02d}.npz"), save_best_only=False)
    m.fit(x, y, epochs=3, callbacks=[ck_all], verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "ep01.npz", "ep02.npz", "ep03.npz"]
    for p, q in zip(load_model(str(tmp_path / "ep03.npz")).get_weights(), m.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_learning_rate_scheduler_sets_the_rate_used():
    x, y = data()
    m = model(lr=0.1)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    hist = m.fit(x, y, epochs=4, callbacks=[sched], verbose=0)
    np.testing.assert_allclose(hist.history["lr"], [0.1, 0.05, 0.025, 0.0125], rtol=1e-6)
    assert m.lr == pytest.approx(0.0125)
    # the scheduled rate is the one the optimizer uses: same weights as compiling with that rate
    a, b = model(lr=0.1), model(lr=0.1)
    a.fit(x, y, epochs=2, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: 0.02)], verbose=0)
    b.compile(optimizer=optim.SGD(lr=0.02), metrics=["accuracy"])
    b.fit(x, y, epochs=2, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match="schedule"):
        model().fit(x, y, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: -1.0)], verbose=0)


def test_step_decay_depends_on_epoch_only():
    x, y = data()
    m = model(lr=0.08)
    hist = m.fit(x, y, epochs=5, callbacks=[callbacks.StepDecay(factor=0.5, every=2)], verbose=0)
    np.testing.assert_allclose(hist.history["lr"], [0.08, 0.08, 0.04, 0.04, 0.02], rtol=1e-6)
    resumed = model(lr=0.08)
    hist = resumed.fit(x, y, epochs=5, initial_epoch=3, callbacks=[callbacks.StepDecay(0.5, 2)], verbose=0)
    np.testing.assert_allclose(hist.history["lr"], [0.04, 0.02], rtol=1e-6)


def test_reduce_lr_on_plateau():
    x, y = data()
    m = model(lr=0.1)
    plateau = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.03)
    script = Script("val_loss", [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    hist = m.fit(x, y, epochs=8, callbacks=[script, plateau], verbose=0)
    # reductions after epochs 3 and 5; the second is clipped at min_lr; then no lower
    np.testing.assert_allclose(hist.history["lr"], [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03], rtol=1e-6)


def test_terminate_on_nan():
    cb = callbacks.TerminateOnNaN()

    class Dummy:
        stop_training = False

    cb.set_model(Dummy())
    cb.on_batch_end(0, {"loss": 1.0})
    assert not cb.model.stop_training and cb.stopped_batch is None
    cb.on_batch_end(1, {"loss": float("nan")})
    assert cb.model.stop_training and cb.stopped_batch == 1
    # in a fit: an exploding regression stops within the first epoch
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32) * 100
    y = rng.normal(size=(64, 1)).astype(np.float32) * 1e4
    m = Sequential([layers.Dense(32, activation="relu"), layers.Dense(1)], input_shape=(4,), seed=0)
    m.compile(optimizer=optim.SGD(lr=1e6), loss="mse")
    stop = callbacks.TerminateOnNaN()
    hist = m.fit(x, y, epochs=50, batch_size=8, callbacks=[stop], verbose=0)
    assert stop.stopped_batch is not None and len(hist.epoch) == 1


def test_csv_logger(tmp_path):
    x, y = data()
    m = model()
    path = tmp_path / "log.csv"
    hist = m.fit(x, y, epochs=3, validation_data=(x, y), callbacks=[callbacks.CSVLogger(str(path))], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for j, key in enumerate(rows[0][1:], start=1):
        assert [float(r[j]) for r in rows[1:]] == hist.history[key]
    m.fit(x, y, epochs=5, initial_epoch=3, validation_data=(x, y),
          callbacks=[callbacks.CSVLogger(str(path), append=True)], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows] == ["epoch", "0", "1", "2", "3", "4"]


def test_callbacks_argument_type():
    x, y = data()
    with pytest.raises(TypeError, match="Callback"):
        model().fit(x, y, callbacks=[print], verbose=0)

"""Atomic model updates (issue 14): every public method that changes a model, made to fail part of
the way through its work by one of its documented errors, leaves the weights, optimizer state
(step and slots), batch-norm statistics, pruning masks, learning rate and dropout stream counter
exactly as they were. A fit over a generator that fails at a later batch keeps exactly the
updates of the batches before it (the documented mid-epoch behaviour)."""
from __future__ import annotations

import numpy as np
import pytest

import dropnet
from dropnet import callbacks, layers, optim, prune
from dropnet.models import Sequential


def make_model(seed=0):
    m = Sequential([layers.Dense(12, activation="relu"), layers.BatchNormalization(), layers.Dropout(0.3),
                    layers.Dense(3, activation="softmax")], input_shape=(6,), seed=seed)
    m.compile(optimizer=optim.Adam(lr=0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)


@pytest.fixture
def trained():
    m = make_model()
    m.fit(*data(), epochs=1, batch_size=8, verbose=0)  # nonzero slots, moved BN statistics and stream
    prune.magnitude(m, 0.25)
    return m


def snapshot(m):
    net = m.network
    opt = net.get_optimizer_state()
    return {"weights": m.get_weights(), "state": m.get_state(), "slots": [np.array(s) for s in opt["slots"]],
            "step": opt["step"], "masks": [None if net.get_mask(i) is None else np.array(net.get_mask(i))
                                           for i in range(len(m.get_weights()))],
            "rng_offset": m.rng_offset, "lr": m.lr}


def assert_same(a, b):
    assert a["step"] == b["step"] and a["rng_offset"] == b["rng_offset"] and a["lr"] == b["lr"]
    for key in ("weights", "state", "slots", "masks"):
        assert len(a[key]) == len(b[key]), key
        for p, q in zip(a[key], b[key]):
            if p is None or q is None:
                assert p is None and q is None, key
            else:
                np.testing.assert_array_equal(p, q, err_msg=key)


X, Y = data()
X17, Y17 = data(17)


def bad_weights(m):
    w = m.get_weights()
    w[-1] = np.zeros(w[-1].size + 1, np.float32)  # every array but the last is fine
    return w


def nan_last_weight(m):
    w = m.get_weights()
    w[-1] = w[-1].copy()
    w[-1][0] = np.nan
    return w


def bad_state(m):
    s = m.get_state()
    s[-1] = -np.ones_like(s[-1])  # a negative running variance
    return s


def bad_masks(m):
    masks = prune.get_masks(m)
    masks[-1] = np.ones(masks[-1].size + 1, np.float32)
    return masks


CASES = [
    ("fit: labels out of range", lambda m: m.fit(X, np.full(len(X), 7), verbose=0)),
    ("fit: y of another length", lambda m: m.fit(X, Y[:-1], verbose=0)),
    ("fit: NaN in x", lambda m: m.fit(np.where(np.arange(X.size).reshape(X.shape) == X.size - 1, np.nan, X)
                                      .astype(np.float32), Y, verbose=0)),
    ("fit: batch norm last batch of 1", lambda m: m.fit(X17, Y17, batch_size=16, verbose=0)),
    ("fit: bad validation_data", lambda m: m.fit(X, Y, validation_data=(X, Y[:3]), verbose=0)),
    ("fit: bad validation_split", lambda m: m.fit(X, Y, validation_split=1.5, verbose=0)),
    ("fit: negative sample_weight", lambda m: m.fit(X, Y, sample_weight=-np.ones(len(X)), verbose=0)),
    ("fit: bad callbacks", lambda m: m.fit(X, Y, callbacks=[object()], verbose=0)),
    ("fit: bad epochs", lambda m: m.fit(X, Y, epochs=0, verbose=0)),
    ("fit: bad batch_size", lambda m: m.fit(X, Y, batch_size=0, verbose=0)),
    ("train_on_batch: labels out of range", lambda m: m.train_on_batch(X[:8], np.full(8, 9))),
    ("train_on_batch: batch norm batch of 1", lambda m: m.train_on_batch(X[:1], Y[:1])),
    ("set_weights: last array of the wrong shape", lambda m: m.set_weights(bad_weights(m))),
    ("set_weights: NaN in the last array", lambda m: m.set_weights(nan_last_weight(m))),
    ("set_state: negative running variance", lambda m: m.set_state(bad_state(m))),
    ("prune.set_masks: last mask of the wrong shape", lambda m: prune.set_masks(m, bad_masks(m))),
    ("prune.magnitude: amount out of range", lambda m: prune.magnitude(m, 1.5)),
    ("compile: unknown loss", lambda m: m.compile(optimizer="sgd", loss="no such loss")),
    ("compile: unknown optimizer", lambda m: m.compile(optimizer="no such optimizer")),
    ("lr: negative", lambda m: setattr(m, "lr", -1.0)),
    ("set_sparse_execution: bad last layer", lambda m: m.set_sparse_execution("on", [0, 99])),
    ("predict: wrong features", lambda m: m.predict(np.zeros((4, 5), np.float32))),
    ("predict: bad mc_samples", lambda m: m.predict(X, mc_samples=-1)),
    ("evaluate: labels out of range", lambda m: m.evaluate(X, np.full(len(X), 7))),
    ("load_weights: missing file", lambda m: m.load_weights("/nonexistent/dir/w.npz")),
]


@pytest.mark.parametrize("name, fail", CASES, ids=[c[0] for c in CASES])
def test_failed_call_changes_nothing(trained, name, fail):
    before = snapshot(trained)
    with pytest.raises((ValueError, TypeError, FileNotFoundError)):
        fail(trained)
    assert_same(before, snapshot(trained))
    trained.fit(X, Y, epochs=1, batch_size=8, verbose=0)  # and the model still trains


def test_load_weights_of_another_architecture_changes_nothing(trained, tmp_path):
    other = Sequential([layers.Dense(12, activation="relu"), layers.BatchNormalization(), layers.Dropout(0.3),
                        layers.Dense(4, activation="softmax")], input_shape=(6,), seed=1)
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = str(tmp_path / "other.weights.npz")
    other.save_weights(path)
    before = snapshot(trained)
    with pytest.raises(ValueError):
        trained.load_weights(path)
    assert_same(before, snapshot(trained))


def test_generator_fit_failing_at_a_later_batch_keeps_the_earlier_batches(trained):
    twin = make_model()
    twin.fit(*data(), epochs=1, batch_size=8, verbose=0)
    prune.magnitude(twin, 0.25)
    assert_same(snapshot(trained), snapshot(twin))
    good = (X[:8], Y[:8])
    bad = (X[8:16], np.full(8, 9))  # labels out of range: found when this batch comes
    with pytest.raises(ValueError):
        trained.fit([good, bad], epochs=1, verbose=0)
    twin.train_on_batch(*good)
    assert_same(snapshot(trained), snapshot(twin))


def test_callback_error_mid_fit_keeps_the_completed_steps(trained):
    """The documented mid-epoch behaviour for an error no check can foresee: the steps completed
    before it stay, nothing of the failing one is applied."""
    twin = make_model()
    twin.fit(*data(), epochs=1, batch_size=8, verbose=0)
    prune.magnitude(twin, 0.25)

    class Boom(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        trained.fit(X, Y, epochs=1, batch_size=8, shuffle=False, verbose=0, callbacks=[Boom()])
    twin.fit(X[:16], Y[:16], epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert_same(snapshot(trained), snapshot(twin))


def test_dropout_stream_counter_moves_only_with_training_steps(trained):
    before = trained.rng_offset
    trained.predict(X, mc_samples=3, seed=5)
    trained.evaluate(X, Y)
    assert trained.rng_offset == before
    trained.train_on_batch(X[:8], Y[:8])
    assert trained.rng_offset > before
    assert dropnet  # the package import is the module under test

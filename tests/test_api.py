"""Sequential: fit / evaluate / predict, numpy references for single steps, reproducibility,
input validation. Runs against the native Network when it exists, else the numpy stand-in."""
from __future__ import annotations

import io
import contextlib

import numpy as np
import pytest

import dropnet
from dropnet import _core, layers, optim, regularizers
from dropnet.models import Sequential


def blobs(n=240, d=8, k=3, seed=0):
    """Linearly separable-ish classes: labels = argmax of a fixed linear map."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, k))
    return x, (x @ w).argmax(axis=1).astype(np.int64)


def mlp(seed=0, dropout=0.3, d=8, k=3, hidden=16):
    return Sequential([layers.Dense(hidden, activation="relu"), layers.Dropout(dropout),
                       layers.Dense(k, activation="softmax")], input_shape=(d,), seed=seed)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- training works and matches numpy
def test_fit_learns_and_reports_history():
    x, y = blobs()
    model = mlp()
    model.compile(optimizer=optim.Adam(lr=0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=12, batch_size=32, validation_split=0.25, verbose=0)
    assert hist.epoch == list(range(12))
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 12 for v in hist.history.values())
    assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.85
    assert hist.history["lr"] == [pytest.approx(0.02)] * 12
    # val_* of the last epoch is the held-out last quarter evaluated with the final weights
    res = model.evaluate(x[-60:], y[-60:])
    assert res["loss"] == pytest.approx(hist.history["val_loss"][-1], rel=1e-6)
    assert res["accuracy"] == pytest.approx(hist.history["val_accuracy"][-1])


def test_training_accuracy_is_the_running_batch_accuracy_with_dropout_on():
    """history['accuracy'] is Keras' running accuracy of the training batches as trained (dropout
    on), not a second pass. Reference: replay each step's dropout masks with
    forward(training=True, stream_offset=rng_offset) just before the step and count argmax hits."""
    x, y = blobs(n=200)
    batch = 32
    model = mlp(seed=3, dropout=0.5)
    model.compile(optimizer=optim.SGD(lr=0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ref = mlp(seed=3, dropout=0.5)
    ref.compile(optimizer=optim.SGD(lr=0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net = ref.network
    order = np.random.default_rng([11, 0]).permutation(len(x))  # fit's documented epoch order
    correct = 0
    for lo in range(0, len(x), batch):
        idx = order[lo:lo + batch]
        xb, yb = np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx])
        probs = net.forward(xb, training=True, stream_offset=net.rng_offset)
        correct += int((probs.argmax(axis=1) == yb).sum())
        net.train_step(xb, yb)
    hist = model.fit(x, y, epochs=1, batch_size=batch, seed=11, verbose=0)
    assert hist.history["accuracy"][0] == correct / len(x)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)


def _dense_softmax_model(seed, loss="sparse_categorical_crossentropy", reg=None, d=5, k=3):
    return Sequential([layers.Dense(k, activation="softmax", kernel_regularizer=reg)], input_shape=(d,), seed=seed)


def test_one_sgd_step_matches_numpy():
    x, y = blobs(n=16, d=5)
    model = _dense_softmax_model(3)
    model.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy")
    W, b = [p.astype(np.float64) for p in model.get_weights()]
    hist = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    p = softmax(x @ W.T + b)
    onehot = np.eye(3)[y]
    loss = -np.log(p[np.arange(16), y]).mean()
    dz = (p - onehot) / 16
    W_ref, b_ref = W - 0.1 * dz.T @ x, b - 0.1 * dz.sum(axis=0)
    W_new, b_new = model.get_weights()
    np.testing.assert_allclose(W_new, W_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_new, b_ref, rtol=1e-5, atol=1e-6)
    assert hist.history["loss"][0] == pytest.approx(loss, rel=1e-5)


def test_adam_steps_and_l2_penalty_match_numpy():
    x, y = blobs(n=16, d=5)
    reg = regularizers.l2(0.05)
    model = _dense_softmax_model(4, reg=reg)
    opt = optim.Adam(lr=0.01, beta_1=0.8, beta_2=0.9, epsilon=1e-6)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    W, b = [p.astype(np.float64) for p in model.get_weights()]
    hist = model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    m = [np.zeros_like(W), np.zeros_like(b)]
    v = [np.zeros_like(W), np.zeros_like(b)]
    losses = []
    for t in (1, 2):
        p = softmax(x @ W.T + b)
        losses.append(-np.log(p[np.arange(16), y]).mean() + 0.05 * (W * W).sum())
        dz = (p - np.eye(3)[y]) / 16
        grads = [dz.T @ x + 2 * 0.05 * W, dz.sum(axis=0)]
        params = [W, b]
        for i in range(2):
            m[i] = 0.8 * m[i] + 0.2 * grads[i]
            v[i] = 0.9 * v[i] + 0.1 * grads[i] ** 2
            params[i] = params[i] - 0.01 * (m[i] / (1 - 0.8 ** t)) / (np.sqrt(v[i] / (1 - 0.9 ** t)) + 1e-6)
        W, b = params
    W_new, b_new = model.get_weights()
    np.testing.assert_allclose(W_new, W, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b_new, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(hist.history["loss"], losses, rtol=1e-5)
    # evaluate reports the data loss only (no penalty), with dropout off
    p = softmax(x @ W_new.astype(np.float64).T + b_new)
    assert model.evaluate(x, y)["loss"] == pytest.approx(-np.log(p[np.arange(16), y]).mean(), rel=1e-5)


def test_categorical_one_hot_equals_sparse_labels():
    x, y = blobs(n=64)
    results = []
    for loss, target in (("sparse_categorical_crossentropy", y),
                         ("categorical_crossentropy", np.eye(3, dtype=np.float32)[y])):
        model = mlp(seed=5)
        model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
        model.fit(x, target, epochs=2, batch_size=16, verbose=0)
        results.append((model.get_weights(), model.evaluate(x, target)))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert results[0][1]["accuracy"] == results[1][1]["accuracy"]


def test_mse_regression_fits_a_linear_map():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.25).astype(np.float32)
    model = Sequential([layers.Dense(1)], input_shape=4, seed=0)
    model.compile(optimizer=optim.Adam(lr=0.05), loss="mse")
    model.fit(x, y, epochs=60, batch_size=64, verbose=0)
    W, b = model.get_weights()
    np.testing.assert_allclose(W[0], [1.0, -2.0, 0.5, 3.0], atol=0.05)
    assert abs(b[0] - 0.25) < 0.05
    assert set(model.evaluate(x, y)) == {"loss"}


def test_predict_matches_numpy_forward_and_evaluate():
    x, y = blobs()
    model = mlp(dropout=0.5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    W1, b1, W2, b2 = [p.astype(np.float64) for p in model.get_weights()]
    ref = softmax(np.maximum(x @ W1.T + b1, 0) @ W2.T + b2)  # inference: dropout is the identity
    out = model.predict(x, batch_size=50)
    assert out.dtype == np.float32 and out.shape == (240, 3)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-6)
    res = model.evaluate(x, y, batch_size=64)
    assert res["accuracy"] == pytest.approx(np.mean(ref.argmax(1) == y))
    assert res["loss"] == pytest.approx(-np.log(ref[np.arange(240), y]).mean(), rel=1e-4)


def test_mc_dropout_predict():
    x, y = blobs(n=40)
    model = mlp(dropout=0.5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    offset = model.rng_offset
    mean, std = model.predict(x, mc_samples=20, seed=3)
    assert mean.shape == std.shape == (40, 3)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-5)
    assert (std > 0).mean() > 0.9  # dropout is on: passes differ
    assert model.rng_offset == offset  # training streams untouched
    again = model.predict(x, mc_samples=20, seed=3)
    np.testing.assert_array_equal(mean, again[0])
    np.testing.assert_array_equal(std, again[1])
    other = model.predict(x, mc_samples=20, seed=4)
    assert not np.array_equal(mean, other[0])
    # average of many MC passes is near the deterministic prediction
    assert np.abs(model.predict(x, mc_samples=200)[0] - model.predict(x)).mean() < 0.1


def test_mc_without_dropout_is_deterministic_prediction():
    x, _ = blobs(n=20)
    model = Sequential([layers.Dense(6, activation="tanh"), layers.Dense(3, activation="softmax")],
                       input_shape=(8,), seed=0)
    model.compile()
    mean, std = model.predict(x, mc_samples=3)
    np.testing.assert_allclose(mean, model.predict(x), rtol=1e-6)
    np.testing.assert_allclose(std, 0, atol=1e-6)


# ---------------------------------------------------------------- reproducibility
def _train(seed, fit_seed=None, threads=None, epochs=2, shuffle=True):
    x, y = blobs(n=200)
    previous = dropnet.get_num_threads()
    if threads:
        dropnet.set_num_threads(threads)
    try:
        model = mlp(seed=seed, dropout=0.5)
        model.compile(optimizer=optim.SGD(lr=0.05, momentum=0.9, nesterov=True), metrics=["accuracy"])
        hist = model.fit(x, y, epochs=epochs, batch_size=16, seed=fit_seed, shuffle=shuffle, verbose=0)
    finally:
        dropnet.set_num_threads(previous)
    return model.get_weights(), hist.history["loss"]


def test_same_seed_gives_identical_weights():
    a, la = _train(7)
    b, lb = _train(7)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert la == lb
    c, _ = _train(8)
    assert not np.array_equal(a[0], c[0])
    d, _ = _train(7, fit_seed=123)  # another data order, same init
    assert not np.array_equal(a[0], d[0])
    e, _ = _train(7, shuffle=False)
    assert not np.array_equal(a[0], e[0])


def test_one_and_two_threads_identical():
    a, _ = _train(11, threads=1)
    b, _ = _train(11, threads=2)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


def test_float64_input_gives_the_float32_result():
    x, y = blobs(n=64)
    ws = []
    for xx in (x, x.astype(np.float64)):
        model = mlp(seed=2)
        model.compile()
        model.fit(xx, y, epochs=1, verbose=0)
        ws.append(model.get_weights())
    for p, q in zip(*ws):
        np.testing.assert_array_equal(p, q)


def test_dense_dropout_fusion_has_the_numbers_of_separate_layers():
    """Sequential fuses Dense+Dropout into one native dense layer; the native network fed the
    unfused pair must produce the same training trajectory."""
    fused = layers.to_native([layers.Dense(16, activation="relu"), layers.Dropout(0.4), layers.Dense(3)])
    assert [d["type"] for d in fused] == ["dense", "dense"] and fused[0]["dropout"] == 0.4
    unfused = [dict(fused[0], dropout=0.0), {"type": "dropout", "rate": 0.4}, fused[1]]
    x, y = blobs(n=32)
    params = []
    start = None
    for spec in (fused, unfused):
        net = _core.nn.Network(spec, (8,), "sparse_categorical_crossentropy", 9)
        start = net.get_params() if start is None else start
        net.set_params(start)  # initialisation may depend on layer positions; training must not
        net.set_optimizer({"type": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0})
        for _ in range(3):
            net.train_step(x, y)
        params.append(net.get_params())
    for p, q in zip(*params):
        np.testing.assert_array_equal(p, q)
    # input dropout (first layer) stays a standalone layer
    spec = layers.to_native([layers.Input(8), layers.Dropout(0.2), layers.Dense(4)])
    assert [d["type"] for d in spec] == ["dropout", "dense"] and spec[1]["dropout"] == 0.0


# ---------------------------------------------------------------- description
def test_summary_and_repr_show_shapes_and_counts():
    model = Sequential([layers.Input((28, 28)), layers.Flatten(), layers.Dense(300, activation="relu"),
                        layers.Dropout(0.5), layers.Dense(100, activation="relu"), layers.Dense(10)], seed=1)
    text = repr(model)
    for expected in ("(None, 784)", "(None, 300)", "(None, 100)", "(None, 10)", "235,500".replace(",", ""),
                     "Total params: 266,610", "Trainable params: 266,610", "fused"):
        assert expected in text, expected
    assert model.count_params() == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    lines = []
    model.summary(print_fn=lines.append)
    assert lines == [text]
    assert "?" in repr(Sequential([layers.Dense(3)]))  # unknown input shape: counts unknown


def test_add_and_input_layer():
    model = Sequential(seed=0)
    model.add(layers.Input(4))
    model.add(layers.Dense(2))
    assert model.input_shape == (4,) and model.output_shape == (2,)
    with pytest.raises(ValueError, match="first layer"):
        model.add(layers.Input(4))
    with pytest.raises(TypeError, match="layer"):
        model.add("dense")
    with pytest.raises(ValueError, match="Flatten"):
        Sequential([layers.Dense(3)], input_shape=(2, 2))


# ---------------------------------------------------------------- progress output
def test_progress_lines_per_verbosity():
    x, y = blobs(n=64)
    model = mlp()
    model.compile(metrics=["accuracy"])
    for verbose, n_lines in ((0, 0), (1, 3), (2, 3)):
        buf = io.StringIO()  # not a terminal: one line per epoch
        with contextlib.redirect_stdout(buf):
            model.fit(x, y, epochs=3, batch_size=16, verbose=verbose)
        lines = buf.getvalue().splitlines()
        assert len(lines) == n_lines
        if lines:
            assert lines[0].startswith("Epoch 1/3") and "4 steps" in lines[0] and "loss:" in lines[0]
            assert "accuracy:" in lines[0] and "/step" in lines[0]


# ---------------------------------------------------------------- validation
@pytest.fixture
def compiled():
    model = mlp()
    model.compile(metrics=["accuracy"])
    return model


@pytest.mark.parametrize("x, y, exc, match", [
    (np.zeros((10, 7), np.float32), np.zeros(10, np.int64), ValueError, r"x: expected shape \(N, 8\)"),
    (np.zeros((10,), np.float32), np.zeros(10, np.int64), ValueError, "x: expected shape"),
    (np.zeros((0, 8), np.float32), np.zeros(0, np.int64), ValueError, "at least one sample"),
    (np.full((4, 8), np.nan, np.float32), np.zeros(4, np.int64), ValueError, "NaN"),
    (np.full((4, 8), np.inf, np.float32), np.zeros(4, np.int64), ValueError, "NaN/inf"),
    (np.array([["a"] * 8] * 4), np.zeros(4, np.int64), TypeError, "x: expected real numbers"),
    (np.zeros((4, 8), np.float32), np.array([0, 1, 2, 3]), ValueError, r"labels in \[0, 3\).*\[0, 3\]"),
    (np.zeros((4, 8), np.float32), np.array([0, -1, 2, 1]), ValueError, r"labels in \[0, 3\)"),
    (np.zeros((4, 8), np.float32), np.zeros(5, np.int64), ValueError, "expected 4 targets"),
    (np.zeros((4, 8), np.float32), np.array([0.5, 1, 2, 0]), TypeError, "integer class labels"),
    (np.zeros((4, 8), np.float32), np.zeros((4, 3), np.float32), ValueError, "categorical_crossentropy"),
])
def test_bad_data_raises_before_training(compiled, x, y, exc, match):
    before = compiled.get_weights()
    offset = compiled.rng_offset
    with pytest.raises(exc, match=match):
        compiled.fit(x, y, verbose=0)
    for p, q in zip(before, compiled.get_weights()):
        np.testing.assert_array_equal(p, q)
    assert compiled.rng_offset == offset


def test_bad_arguments(compiled):
    x, y = blobs(n=16)
    with pytest.raises(ValueError, match="batch_size"):
        compiled.fit(x, y, batch_size=0)
    with pytest.raises(TypeError, match="epochs"):
        compiled.fit(x, y, epochs=1.5)
    with pytest.raises(ValueError, match="validation_split"):
        compiled.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="empty split"):
        compiled.fit(x, y, validation_split=0.01)
    with pytest.raises(ValueError, match="one of them"):
        compiled.fit(x, y, validation_split=0.5, validation_data=(x, y))
    with pytest.raises(ValueError, match=r"validation_data\[1\]"):
        compiled.fit(x, y, validation_data=(x, y + 5), verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        compiled.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="mc_samples"):
        compiled.predict(x, mc_samples=-1)
    with pytest.raises(ValueError, match="seed"):
        compiled.predict(x, mc_samples=2, seed=1 << 40)
    with pytest.raises(ValueError, match="lr"):
        compiled.lr = -1.0
    not_compiled = mlp()
    with pytest.raises(ValueError, match="compile"):
        not_compiled.fit(x, y)
    with pytest.raises(ValueError, match="compile"):
        not_compiled.get_weights()


def test_compile_and_layer_argument_errors():
    model = mlp()
    with pytest.raises(ValueError, match="optimizer"):
        model.compile(optimizer="rmsprop")
    with pytest.raises(ValueError, match="loss"):
        model.compile(loss="hinge")
    with pytest.raises(ValueError, match="accuracy"):
        model.compile(loss="mse", metrics=["accuracy"])
    with pytest.raises(ValueError, match="metrics"):
        model.compile(metrics=["f1"])
    with pytest.raises(ValueError, match="rate"):
        layers.Dropout(1.0)
    with pytest.raises(TypeError, match="rate"):
        layers.Dropout("0.5")
    with pytest.raises(ValueError, match="units"):
        layers.Dense(0)
    with pytest.raises(ValueError, match="activation"):
        layers.Dense(3, activation="swishy")
    with pytest.raises(ValueError, match="kernel_initializer"):
        layers.Dense(3, kernel_initializer="zeros")
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(lr=0)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(nesterov=True)
    with pytest.raises(ValueError, match="beta_1"):
        optim.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="l2"):
        regularizers.l2(-1)
    assert optim.AdamW().weight_decay == 0.01 and optim.Adam().weight_decay == 0.0
    assert optim.get("sgd").get_config() == {"type": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False,
                                             "weight_decay": 0.0}


def test_get_set_weights():
    model = mlp()
    model.compile()
    w = model.get_weights()
    assert [p.shape for p in w] == [(16, 8), (16,), (3, 16), (3,)]
    new = [np.full_like(p, 0.01 * i) for i, p in enumerate(w)]
    model.set_weights(new)
    for p, q in zip(new, model.get_weights()):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match=r"weights\[2\]: expected shape \(3, 16\)"):
        model.set_weights([new[0], new[1], new[2].T, new[3]])
    with pytest.raises(ValueError, match="4 arrays"):
        model.set_weights(new[:3])
    with pytest.raises(ValueError, match="finite"):
        model.set_weights([new[0], new[1], np.full_like(new[2], np.nan), new[3]])
    for p, q in zip(new, model.get_weights()):  # failed calls changed nothing
        np.testing.assert_array_equal(p, q)


def test_recompile_keeps_weights():
    x, y = blobs(n=32)
    model = mlp()
    model.compile(optimizer="adam")
    model.fit(x, y, verbose=0)
    w = model.get_weights()
    model.compile(optimizer=optim.SGD(lr=0.5), metrics=["accuracy"])
    for p, q in zip(w, model.get_weights()):
        np.testing.assert_array_equal(p, q)
    assert model.lr == pytest.approx(0.5)


def test_progress_bar_on_a_terminal():
    from dropnet._progress import EpochProgress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = EpochProgress(0, 2, steps=4, verbose=1, stream=out)
    bar.start()
    for step in range(1, 5):
        bar.update(step, 0.5)
    bar.finish({"loss": 0.5, "accuracy": 0.75, "lr": 0.001})
    text = out.getvalue()
    assert text.startswith("Epoch 1/2\n")
    assert "\r4/4 [" in text and "ms/step" in text and text.endswith("loss: 0.5000 - accuracy: 0.7500 - lr: 0.001\n")
    quiet = Tty()
    bar = EpochProgress(0, 1, steps=2, verbose=0, stream=quiet)
    bar.start()
    bar.update(1, 0.1)
    bar.finish({"loss": 0.1})
    assert quiet.getvalue() == ""


def test_large_finite_inputs_are_accepted_and_nan_is_found_among_them():
    from dropnet.models import as_inputs

    x = np.full((4, 8), 3e38, np.float32)  # the sum overflows; every value is finite
    assert as_inputs(x, (8,)) is x
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match="1 NaN/inf"):
        as_inputs(x, (8,))

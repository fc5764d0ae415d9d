"""The Keras surface of Sequential: sample/class weights, losses, metrics, constraints, new layers,
frozen layers, names, *_on_batch, weights files, generators, train-set metrics, plots. Each
numeric check is against PyTorch (torch.nn.functional / autograd) or numpy written here."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import dropnet
from dropnet import callbacks, constraints, layers as L, losses, metrics, optim, prune
from dropnet.models import Sequential

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(0)


def mlp(out_units=3, out_act="softmax", hidden=5, n_in=4, seed=0, **dense_kw):
    return Sequential([L.Dense(hidden, activation="relu", **dense_kw), L.Dense(out_units, activation=out_act)],
                      input_shape=(n_in,), seed=seed)


def torch_mlp_step(weights, x, loss_fn, lr):
    """One SGD step of the 2-layer ReLU MLP in torch; returns the new weights."""
    ts = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    xt = torch.tensor(x, dtype=torch.float64)
    h = torch.relu(xt @ ts[0].T + ts[1])
    logits = h @ ts[2].T + ts[3]
    loss = loss_fn(logits)
    loss.backward()
    return [(t - lr * t.grad).detach().numpy() for t in ts], float(loss.detach())


# ------------------------------------------------------------------ sample and class weights
def test_sample_weight_step_matches_torch():
    m = mlp()
    m.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = RNG.standard_normal((8, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 8)
    w = RNG.uniform(0, 2, 8).astype(np.float32)
    w0 = m.get_weights()
    want, want_loss = torch_mlp_step(
        w0, x, lambda z: (torch.tensor(w, dtype=torch.float64) * F.cross_entropy(z, torch.tensor(y), reduction="none")
                          ).sum() / len(x), 0.1)
    out = m.train_on_batch(x, y, sample_weight=w)
    assert out["loss"] == pytest.approx(want_loss, rel=1e-5)
    for got, ref in zip(m.get_weights(), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_class_weight_is_sample_weight_by_class_and_fit_uses_it():
    x = RNG.standard_normal((64, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 64)
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a, b = mlp(seed=1), mlp(seed=1)
    for m in (a, b):
        m.compile(optimizer=optim.SGD(lr=0.05), loss="sparse_categorical_crossentropy")
    a.fit(x, y, epochs=2, batch_size=16, class_weight=cw, verbose=0)
    b.fit(x, y, epochs=2, batch_size=16, sample_weight=np.array([cw[c] for c in y], np.float32), verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = mlp(seed=1)
    c.compile(optimizer=optim.SGD(lr=0.05), loss="sparse_categorical_crossentropy")
    c.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert not np.array_equal(c.get_weights()[0], a.get_weights()[0])  # the weights did change training


def test_evaluate_sample_weight_matches_numpy():
    m = mlp(seed=2)
    m.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = RNG.standard_normal((50, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 50)
    w = RNG.uniform(0, 1, 50).astype(np.float32)
    p = m.predict(x).astype(np.float64)
    ce = -np.log(p[np.arange(50), y])
    got = m.evaluate(x, y, batch_size=16, sample_weight=w)
    assert got["loss"] == pytest.approx((w * ce).sum() / 50, rel=1e-5)
    assert got["accuracy"] == pytest.approx((w * (p.argmax(1) == y)).sum() / w.sum(), rel=1e-6)


@pytest.mark.parametrize("bad,err", [(np.ones(3), ValueError), (-np.ones(10), ValueError),
                                     (np.array(["a"] * 10), TypeError), (np.full(10, np.nan), ValueError)])
def test_bad_sample_weight(bad, err):
    m = mlp()
    m.compile(loss="sparse_categorical_crossentropy")
    w0 = m.get_weights()
    with pytest.raises(err, match="sample_weight"):
        m.fit(np.zeros((10, 4), np.float32), np.zeros(10, np.int64), sample_weight=bad, verbose=0)
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize("loss,out_act", [("binary_crossentropy", "sigmoid"), ("binary_crossentropy", None),
                                          ("mae", None), ("huber", None), ("mse", None)])
def test_elementwise_losses_match_torch(loss, out_act):
    m = mlp(out_units=2, out_act=out_act, seed=3)
    m.compile(optimizer=optim.SGD(lr=0.1), loss=loss)
    x = RNG.standard_normal((12, 4)).astype(np.float32)
    t = (RNG.uniform(0, 1, (12, 2)) > 0.5).astype(np.float32) if loss == "binary_crossentropy" else \
        (RNG.standard_normal((12, 2)) * 2).astype(np.float32)
    tt = torch.tensor(t, dtype=torch.float64)
    fn = {"binary_crossentropy": lambda z: F.binary_cross_entropy_with_logits(z, tt),
          "mae": lambda z: F.l1_loss(z, tt), "huber": lambda z: F.huber_loss(z, tt, delta=1.0),
          "mse": lambda z: F.mse_loss(z, tt)}[loss]
    w0 = m.get_weights()
    pred = m.predict(x)
    z = torch.tensor(pred, dtype=torch.float64)
    if out_act == "sigmoid":  # predict returns probabilities; the loss works on the logits
        z = torch.logit(z)
    assert m.evaluate(x, t)["loss"] == pytest.approx(float(fn(z).detach()), rel=1e-4)
    want, want_loss = torch_mlp_step(w0, x, fn, 0.1)
    assert m.train_on_batch(x, t)["loss"] == pytest.approx(want_loss, rel=1e-5)
    for got, ref in zip(m.get_weights(), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("out_act", ["sigmoid", None])
def test_binary_accuracy_precision_recall_match_numpy(out_act):
    m = mlp(out_units=1, out_act=out_act, seed=4)
    m.compile(loss="binary_crossentropy", metrics=["accuracy", "precision", "recall"])
    x = RNG.standard_normal((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    m.fit(x, y, epochs=3, batch_size=8, verbose=0)
    p = m.predict(x)[:, 0]  # probabilities with the sigmoid, logits without it
    pred, true = (p > 0.5 if out_act else p > 0), y >= 0.5
    got = m.evaluate(x, y)
    assert got["accuracy"] == pytest.approx(np.mean(pred == true))
    tp = np.sum(pred & true)
    assert got["precision"] == pytest.approx(tp / max(pred.sum(), 1))
    assert got["recall"] == pytest.approx(tp / max(true.sum(), 1))


def test_top_k_mse_mae_metrics_match_torch_and_numpy():
    m = mlp(out_units=6, seed=5)
    m.compile(loss="sparse_categorical_crossentropy", metrics=["top_k_accuracy", "top_2_accuracy", "accuracy"])
    x = RNG.standard_normal((60, 4)).astype(np.float32)
    y = RNG.integers(0, 6, 60)
    got = m.evaluate(x, y)
    p = torch.tensor(m.predict(x))
    for k, key in ((5, "top_5_accuracy"), (2, "top_2_accuracy")):
        hit = (p.topk(k, dim=1).indices == torch.tensor(y)[:, None]).any(dim=1).double().mean()
        assert got[key] == pytest.approx(float(hit))
    r = Sequential([L.Dense(3)], input_shape=(4,), seed=0)
    r.compile(loss="huber", metrics=["mse", "mae"])
    t = RNG.standard_normal((30, 3)).astype(np.float32)
    out = r.predict(x[:30]).astype(np.float64)
    got = r.evaluate(x[:30], t)
    assert got["mse"] == pytest.approx(np.mean((out - t) ** 2), rel=1e-6)
    assert got["mae"] == pytest.approx(np.mean(np.abs(out - t)), rel=1e-6)
    with pytest.raises(ValueError, match="precision"):
        r.compile(loss="mse", metrics=["precision"])


# ------------------------------------------------------------------ constraints, layers, frozen layers
def test_max_norm_projects_each_units_incoming_weights_after_the_update():
    c = 0.4
    m = mlp(seed=6, kernel_constraint=constraints.MaxNorm(c))
    m.compile(optimizer=optim.SGD(lr=0.5), loss="sparse_categorical_crossentropy")
    x = RNG.standard_normal((16, 4)).astype(np.float32) * 3
    y = RNG.integers(0, 3, 16)
    w0 = m.get_weights()
    want, _ = torch_mlp_step(w0, x, lambda z: F.cross_entropy(z, torch.tensor(y)), 0.5)
    norms = np.linalg.norm(want[0], axis=1, keepdims=True)
    want[0] = np.where(norms > c, want[0] * (c / norms), want[0])
    m.train_on_batch(x, y)
    got = m.get_weights()
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-6)
    assert np.all(np.linalg.norm(got[0], axis=1) <= c * (1 + 1e-6))
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-6)  # the output layer has no constraint
    assert m.get_layer("dense").get_config()["kernel_constraint"] == {"class": "MaxNorm", "max_value": c}


def test_drop_connect_layer_step_matches_torch():
    p = 0.5
    m = Sequential([L.DropConnect(6, rate=p, activation="relu"), L.Dense(3, activation="softmax")],
                   input_shape=(4,), seed=7)
    m.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy")
    x = RNG.standard_normal((10, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 10)
    w0 = m.get_weights()
    keep = dropnet.ops.drop_connect(np.ones_like(w0[0]), p, seed=m.seed, stream=m.rng_offset)  # keep / (1 - p)
    ts = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in w0]
    h = torch.relu(torch.tensor(x, dtype=torch.float64) @ (ts[0] * torch.tensor(keep, dtype=torch.float64)).T + ts[1])
    loss = F.cross_entropy(h @ ts[2].T + ts[3], torch.tensor(y))
    loss.backward()
    m.train_on_batch(x, y)
    for got, t in zip(m.get_weights(), ts):
        np.testing.assert_allclose(got, (t - 0.1 * t.grad).detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(m.predict(x), m.predict(x))  # inference uses W itself: deterministic
    with pytest.raises(ValueError, match="DropConnect"):
        m.set_sparse_execution("on", layers=[m.layers[0]])


def test_reshape_globalmaxpool_leakyrelu_softmax_match_torch():
    m = Sequential([L.Reshape((2, 3, 4)), L.Conv2D(3, 2, activation=None), L.LeakyReLU(0.2),
                    L.GlobalMaxPooling2D(), L.Dense(4), L.Softmax()], input_shape=(24,), seed=8)
    x = RNG.standard_normal((5, 24)).astype(np.float32)
    got = m.predict(x)  # before compile, as Keras allows
    w = [torch.tensor(a) for a in m.get_weights()]
    h = F.conv2d(torch.tensor(x).reshape(5, 2, 3, 4), w[0], w[1])
    h = F.leaky_relu(h, 0.2).amax(dim=(2, 3))
    want = F.softmax(h @ w[2].T + w[3], dim=1)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    assert [l.name for l in m.layers] == ["reshape", "conv2d", "leaky_re_lu", "global_max_pooling2d", "dense",
                                          "softmax"]
    m.compile(loss="sparse_categorical_crossentropy")
    np.testing.assert_array_equal(m.predict(x), got)  # compile keeps the weights


def test_frozen_layer_keeps_its_weights_and_optimizer_leaves_it():
    m = mlp(seed=9)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = RNG.standard_normal((32, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 32)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    before = m.get_weights()
    m.get_layer("dense").trainable = False
    assert "Trainable params: 18" in m._summary_text() and "[frozen]" in m._summary_text()
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = m.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])
    m.get_layer("dense").trainable = True
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(m.get_weights()[0], before[0])


# ------------------------------------------------------------------ names and the method surface
def test_names_are_keras_style_settable_and_reported_everywhere():
    m = Sequential([L.Dense(8, activation="relu"), L.Dropout(0.5), L.Dense(6, activation="relu", name="hidden"),
                    L.Dropout(0.5), L.Dense(3, activation="softmax")], input_shape=(4,), seed=0)
    m.compile(loss="sparse_categorical_crossentropy")
    assert [l.name for l in m.layers] == ["dense", "dropout", "hidden", "dropout_1", "dense_1"]
    assert m.get_layer("hidden") is m.layers[2] and m.get_layer(index=-1) is m.layers[-1]
    info = m.sparse_info()
    assert [(i["name"], i["layer"]) for i in info] == [("dense", 0), ("hidden", 2), ("dense_1", 4)]
    assert [r["name"] for r in prune.sparsity(m).rows] == ["dense", "hidden", "dense_1"]
    text = m._summary_text()
    assert all(n in text for n in ("dense", "hidden", "dropout_1", "dense_1"))
    with pytest.raises(ValueError, match="no layer named"):
        m.get_layer("nope")
    with pytest.raises(ValueError, match="unique"):
        Sequential([L.Dense(2, name="a"), L.Dense(2, name="a")])
    path_cfg = m.get_config()["layers"][2]
    assert path_cfg["name"] == "hidden" and L.from_config(path_cfg).name == "hidden"


def test_on_batch_methods_verbose_and_predict_before_compile(capsys):
    m = mlp(seed=10)
    x = RNG.standard_normal((16, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 16)
    before = m.predict(x, verbose=0)
    m.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    np.testing.assert_array_equal(m.predict_on_batch(x), before)
    twin = mlp(seed=10)
    twin.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = m.train_on_batch(x, y)
    twin.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(m.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert set(out) == {"loss", "accuracy"}
    assert m.test_on_batch(x, y) == m.evaluate(x, y)
    m.evaluate(x, y, verbose=1)
    m.predict(x, verbose=1)
    text = capsys.readouterr().out
    assert "evaluate: 16 samples" in text and "predict: 16 samples" in text


def test_conv_autoencoder_with_mse_on_image_outputs():
    ae = Sequential([L.Conv2D(4, 3, padding="same", activation="relu"), L.Conv2D(1, 3, padding="same")],
                    input_shape=(1, 6, 6), seed=11)
    ae.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = RNG.uniform(0, 1, (20, 1, 6, 6)).astype(np.float32)
    first = ae.evaluate(x, x)["loss"]
    ae.fit(x, x, epochs=20, batch_size=10, verbose=0)
    out = ae.predict(x)
    assert out.shape == x.shape
    got = ae.evaluate(x, x)
    assert got["loss"] == pytest.approx(float(np.mean((out.astype(np.float64) - x) ** 2)), rel=1e-5)
    assert got["loss"] < first


def test_save_and_load_weights(tmp_path):
    m = mlp(seed=12)
    m.compile(loss="sparse_categorical_crossentropy")
    prune.magnitude(m, 0.5)
    path = tmp_path / "w.weights.npz"
    m.save_weights(str(path))
    assert os.listdir(tmp_path) == ["w.weights.npz"]  # no temporary file left
    with np.load(path, allow_pickle=False) as z:  # plain arrays: no pickle needed to read it
        assert "header" in z.files
    other = mlp(seed=99)
    other.compile(loss="sparse_categorical_crossentropy")
    other.load_weights(str(path))
    for a, b in zip(m.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(prune.get_masks(other)[0], prune.get_masks(m)[0])
    wrong = mlp(hidden=7, seed=0)
    wrong.compile(loss="sparse_categorical_crossentropy")
    w_before = wrong.get_weights()
    with pytest.raises(ValueError, match="shape"):
        wrong.load_weights(str(path))
    np.testing.assert_array_equal(wrong.get_weights()[0], w_before[0])
    raw = bytearray(path.read_bytes())
    raw[-200] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError):
        other.load_weights(str(tmp_path / "bad.npz"))


# ------------------------------------------------------------------ generators of batches
def test_fit_on_a_list_of_batches_equals_fit_on_arrays():
    x = RNG.standard_normal((48, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 48)
    a, b = mlp(seed=13), mlp(seed=13)
    for m in (a, b):
        m.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ha = a.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, validation_data=(x, y))
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]
    hb = b.fit(batches, epochs=2, verbose=0, validation_data=(x, y))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert ha.history == hb.history

    def gen():
        while True:
            for batch in batches:
                yield batch

    c = mlp(seed=13)
    c.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy")
    c.fit(gen(), steps_per_epoch=3, epochs=2, verbose=0)
    np.testing.assert_array_equal(c.get_weights()[0], a.get_weights()[0])


def test_fit_generator_errors_name_the_batch():
    m = mlp()
    m.compile(loss="sparse_categorical_crossentropy")
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"batch 1 of epoch 0: expected a tuple \(x, y\)"):
        m.fit(iter([(x, np.zeros(4, np.int64)), x]), verbose=0)
    with pytest.raises(ValueError, match=r"batch 0 of epoch 0.*shape"):
        m.fit([(np.zeros((4, 5), np.float32), np.zeros(4, np.int64))], verbose=0)
    with pytest.raises(ValueError, match="ran out after 1 of steps_per_epoch=3"):
        m.fit(iter([(x, np.zeros(4, np.int64))]), steps_per_epoch=3, verbose=0)
    with pytest.raises(ValueError, match="needs steps_per_epoch"):
        m.fit(iter([(x, np.zeros(4, np.int64))]), epochs=2, verbose=0)


# ------------------------------------------------------------------ honest training curves
def test_evaluate_train_set_records_clean_train_metrics():
    m = Sequential([L.Dense(32, activation="relu"), L.Dropout(0.5), L.BatchNormalization(),
                    L.Dense(3, activation="softmax")], input_shape=(4,), seed=14)
    m.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = RNG.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    seen = {}

    class Peek(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = dict(logs)

    h = m.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callbacks.EvaluateTrainSet(x, y), Peek()])
    assert set(h.history) >= {"loss", "accuracy", "train_loss", "train_accuracy"}
    assert "train_accuracy" in seen[1]
    clean = m.evaluate(x, y)  # dropout off, batch norm on running statistics, final weights
    assert h.history["train_accuracy"][-1] == clean["accuracy"]
    assert h.history["train_loss"][-1] == clean["loss"]


def test_plot_history_writes_a_figure_and_names_the_extra_when_missing(tmp_path, monkeypatch):
    hist = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "train_loss": [0.9, 0.4], "accuracy": [0.5, 0.7],
            "val_accuracy": [0.4, 0.6], "lr": [0.1, 0.1]}
    pytest.importorskip("matplotlib")
    fig = dropnet.plot.history(hist, path=str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").stat().st_size > 1000
    assert len(fig.axes) == 3
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'dropnet\[plot\]'"):
        dropnet.plot.history(hist)


def test_loss_and_metric_names():
    assert losses.get("bce") == "binary_crossentropy" and losses.get("mean_absolute_error") == "mae"
    assert metrics.get_list(["acc", "top_k_accuracy", "top_3_accuracy", "mse"]) == [
        "accuracy", "top_5_accuracy", "top_3_accuracy", "mse"]
    with pytest.raises(ValueError, match="metrics"):
        metrics.get_list(["top_0_accuracy"])


@pytest.mark.parametrize("act,ref", [(L.ELU(0.7), lambda h: F.elu(h, 0.7)), (L.LeakyReLU(0.2), lambda h: F.leaky_relu(h, 0.2))])
def test_elu_and_leaky_relu_layers_train_like_torch(act, ref):
    m = Sequential([L.Dense(5), act, L.Dense(3, activation="softmax")], input_shape=(4,), seed=15)
    m.compile(optimizer=optim.SGD(lr=0.1), loss="sparse_categorical_crossentropy")
    x = RNG.standard_normal((9, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 9)
    ts = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in m.get_weights()]
    h = ref(torch.tensor(x, dtype=torch.float64) @ ts[0].T + ts[1])
    F.cross_entropy(h @ ts[2].T + ts[3], torch.tensor(y)).backward()
    m.train_on_batch(x, y)
    for got, t in zip(m.get_weights(), ts):
        np.testing.assert_allclose(got, (t - 0.1 * t.grad).detach().numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="elu"):
        dropnet._core.nn.Network([{"type": "dense", "units": 2, "activation": "elu"}], (3,), "mse", 0)


def test_checkpoint_keeps_names_frozen_layers_and_constraints(tmp_path):
    m = Sequential([L.Reshape((1, 4, 4)), L.RandomFlip(), L.Conv2D(2, 3, kernel_constraint=constraints.MaxNorm(0.3)),
                    L.Flatten(), L.DropConnect(5, rate=0.3, activation="relu", name="dc"), L.ELU(),
                    L.Dense(3, activation="softmax", trainable=False)], input_shape=(16,), seed=16)
    m.compile(optimizer=optim.SGD(lr=0.5), loss="sparse_categorical_crossentropy")
    x = RNG.standard_normal((12, 16)).astype(np.float32)
    y = RNG.integers(0, 3, 12)
    m.fit(x, y, epochs=1, batch_size=4, verbose=0)
    m.save(str(tmp_path / "m.npz"))
    r = dropnet.load_model(str(tmp_path / "m.npz"))
    assert [l.name for l in r.layers] == [l.name for l in m.layers]
    assert not r.get_layer("dense").trainable
    np.testing.assert_array_equal(r.predict(x), m.predict(x))
    frozen = r.get_weights()[-2].copy()
    r.fit(x * 10, y, epochs=2, batch_size=4, verbose=0)
    np.testing.assert_array_equal(r.get_weights()[-2], frozen)
    w = r.get_weights()[0].reshape(2, -1)
    assert np.all(np.linalg.norm(w, axis=1) <= 0.3 * (1 + 1e-6))
    # the two runs continue identically (names, flags and constraint all came back)
    m.fit(x * 10, y, epochs=2, batch_size=4, verbose=0)
    for a, b in zip(m.get_weights(), r.get_weights()):
        np.testing.assert_array_equal(a, b)

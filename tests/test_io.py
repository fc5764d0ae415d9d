"""Checkpoints: round trip, exact resumption, atomic writes, and rejection of truncated,
tampered, foreign or pickle-carrying files."""
from __future__ import annotations

import io
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest

from dropnet import io as dio
from dropnet import layers, optim, regularizers
from dropnet.models import Sequential, load_model


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    return x, (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)


def model(seed=3, opt=None):
    m = Sequential([layers.Input(10), layers.Dropout(0.1),
                    layers.Dense(12, activation="relu", kernel_regularizer=regularizers.l2(1e-3)),
                    layers.Dropout(0.5), layers.Dense(3, activation="softmax")], seed=seed, name="net")
    m.compile(optimizer=opt or optim.Adam(lr=0.01), metrics=["accuracy"])
    return m


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for p, q in zip(wa, wb):
        np.testing.assert_array_equal(p, q)


def test_round_trip_restores_everything(tmp_path):
    x, y = data()
    m = model()
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    m.lr = 0.003
    path = str(tmp_path / "m.npz")
    m.save(path)
    r = load_model(path)
    assert r.get_config() == m.get_config()
    assert_same_weights(m, r)
    np.testing.assert_array_equal(r.predict(x), m.predict(x))
    assert r.rng_offset == m.rng_offset and r.lr == pytest.approx(0.003) and r.seed == 3
    sa, sb = m.network.get_optimizer_state(), r.network.get_optimizer_state()
    assert sa["step"] == sb["step"] == 12
    for p, q in zip(sa["slots"], sb["slots"]):
        np.testing.assert_array_equal(p, q)
    assert r.evaluate(x, y) == m.evaluate(x, y)
    assert [f for f in os.listdir(tmp_path)] == ["m.npz"]  # no temp file left


def test_pruning_masks_survive_save_and_resume(tmp_path):
    x, y = data()
    full, first = model(), model()
    rng = np.random.default_rng(5)
    mask = (rng.random((12, 10)) < 0.3).astype(np.float32)
    for m in (full, first):
        m.network.set_mask(0, mask)
    full.fit(x, y, epochs=3, batch_size=16, verbose=0)
    first.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = str(tmp_path / "pruned.npz")
    first.save(path)
    resumed = load_model(path)
    np.testing.assert_array_equal(resumed.network.get_mask(0), mask)
    assert resumed.network.get_mask(1) is None
    resumed.fit(x, y, epochs=3, initial_epoch=1, batch_size=16, verbose=0)
    assert_same_weights(full, resumed)
    assert np.all(resumed.get_weights()[0][mask == 0] == 0)


@pytest.mark.parametrize("opt", [optim.Adam(lr=0.01), optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
                                 optim.AdamW(lr=0.01)])
def test_resumed_training_equals_uninterrupted(tmp_path, opt):
    x, y = data()
    full = model(opt=opt)
    full.fit(x, y, epochs=4, batch_size=16, verbose=0)
    first = model(opt=opt)
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = str(tmp_path / "half.npz")
    first.save(path)
    resumed = load_model(path)
    resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    assert_same_weights(full, resumed)
    assert resumed.rng_offset == full.rng_offset


def test_set_optimizer_slot_one_at_a_time(tmp_path):
    # load_model fills the optimizer slot by slot; the result must equal set_optimizer_state.
    m = model()
    net = m.network
    mask = (np.random.default_rng(1).random((12, 10)) < 0.5).astype(np.float32)
    net.set_mask(0, mask)
    assert net.n_optimizer_slots == 2 * len(m.get_weights())  # Adam: m and v per parameter
    assert [tuple(s) for s in net.param_shapes] == [w.shape for w in m.get_weights()]
    rng = np.random.default_rng(2)
    slots = [rng.random(net.param_shapes[k // 2], dtype=np.float32) + 0.5 for k in range(net.n_optimizer_slots)]
    for k, s in enumerate(slots):
        net.set_optimizer_slot(k, s)
    net.set_optimizer_step(7)
    got = net.get_optimizer_state()
    assert got["step"] == 7
    for k, (want, have) in enumerate(zip(slots, got["slots"])):
        expected = want * mask if k < 2 else want  # param 0's slots are masked
        np.testing.assert_array_equal(have, expected)
    with pytest.raises(ValueError, match=r"slot: expected an int in \[0, 8\), got 8"):
        net.set_optimizer_slot(8, slots[0])
    with pytest.raises(TypeError, match="slot: expected an int, got float"):
        net.set_optimizer_slot(0.0, slots[0])
    with pytest.raises(ValueError, match="values"):
        net.set_optimizer_slot(0, slots[2])  # a bias-shaped array for a weight's slot
    with pytest.raises(ValueError, match="step: expected an int >= 0"):
        net.set_optimizer_step(-1)
    assert net.get_optimizer_state()["step"] == 7


def test_unbuilt_model_round_trip(tmp_path):
    m = Sequential([layers.Dense(4, activation="tanh"), layers.Dense(2)], seed=1)
    path = str(tmp_path / "arch.npz")
    m.save(path)
    r = load_model(path)
    assert not r.built and r.get_config() == m.get_config()


def _saved(tmp_path):
    x, y = data()
    m = model()
    m.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "ck.npz")
    m.save(path)
    return path


def test_truncated_checkpoint_is_rejected(tmp_path):
    path = _saved(tmp_path)
    raw = pathlib.Path(path).read_bytes()
    for cut in (len(raw) // 2, len(raw) - 30, 10, 0):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="checkpoint"):
            load_model(str(bad))


def _rewrite(src, dst, change):
    """Copy the npz at src to dst, passing each member's (name, bytes) through change()."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data_ = change(item.filename, zin.read(item.filename))
            if data_ is not None:
                zout.writestr(item.filename, data_)


def test_tampered_checkpoint_is_rejected(tmp_path):
    path = _saved(tmp_path)

    def flip_weight(name, raw):
        if name == "param_000.npy":
            raw = bytearray(raw)
            raw[-5] ^= 0x01  # one bit of one weight
            return bytes(raw)
        return raw

    bad = str(tmp_path / "flip.npz")
    _rewrite(path, bad, flip_weight)
    with pytest.raises(ValueError, match="SHA-256"):
        load_model(bad)

    def change_seed(name, raw):
        if name == "header.npy":
            arr = np.lib.format.read_array(io.BytesIO(raw))
            header = json.loads(bytes(arr).decode())
            header["model"]["seed"] += 1
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.frombuffer(json.dumps(header).encode(), np.uint8))
            return buf.getvalue()
        return raw

    bad = str(tmp_path / "seed.npz")
    _rewrite(path, bad, change_seed)
    with pytest.raises(ValueError, match="SHA-256"):
        load_model(bad)

    bad = str(tmp_path / "drop.npz")
    _rewrite(path, bad, lambda name, raw: None if name == "slot_001.npy" else raw)
    with pytest.raises(ValueError, match="does not match its arrays"):
        load_model(bad)


def test_foreign_and_pickled_files_are_rejected(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a zip file" * 10)
    with pytest.raises(ValueError, match="not a readable dropnet checkpoint"):
        load_model(str(junk))
    single = str(tmp_path / "single.npy")
    np.save(single, np.arange(3))
    with pytest.raises(ValueError, match="not an npz"):
        load_model(single)
    other = str(tmp_path / "other.npz")
    np.savez(other, a=np.arange(3))
    with pytest.raises(ValueError, match="header"):
        load_model(other)
    pickled = str(tmp_path / "pickled.npz")
    np.savez(pickled, header=np.array([{"format": dio.FORMAT}], dtype=object))
    with pytest.raises(ValueError, match="checkpoint"):  # object arrays need pickle: refused
        load_model(pickled)
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "missing.npz"))


def test_save_is_atomic(tmp_path, monkeypatch):
    path = _saved(tmp_path)
    before = pathlib.Path(path).read_bytes()
    x, y = data()
    m = model(seed=9)
    m.fit(x, y, epochs=1, verbose=0)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert pathlib.Path(path).read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_load_torch_state_dict_matches_torch_forward():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    m = Sequential([layers.Dense(12, activation="relu"), layers.Dense(3, activation="softmax")], input_shape=10,
                   seed=0)
    m.compile()
    dio.load_torch_state_dict(m, net.state_dict())
    x, _ = data()
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(m.predict(x), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        dio.load_torch_state_dict(m, {"0.weight": net[0].weight})

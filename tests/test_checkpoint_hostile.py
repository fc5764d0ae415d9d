"""Checkpoints against hostile or damaged files, and fit / save / load agreeing on diverged models
(issue 14, item 7), plus the checks fit makes before its first step (item 6)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

from dropnet import callbacks, layers, optim
from dropnet import io as dio
from dropnet.models import Sequential, load_model


def small_model(seed=0, opt=None, bn=False):
    body = [layers.Dense(8, activation="relu")] + ([layers.BatchNormalization()] if bn else []) + [layers.Dense(3)]
    m = Sequential(body, input_shape=(5,), seed=seed)
    m.compile(optimizer=opt or optim.Adam(lr=0.01), loss="mse")
    return m


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)


def saved(tmp_path, name="ck.npz"):
    m = small_model()
    m.fit(*data(), epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / name)
    m.save(path)
    return path


def members(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def header_of(raw):
    return json.loads(bytes(np.lib.format.read_array(io.BytesIO(raw))).decode())


def write(path, entries, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, raw in entries.items():
            z.writestr(name, raw)


def resigned(entries, header, arrays):
    """Entries with `arrays` (name -> array) replaced and the header's SHA-256 recomputed, as an
    attacker who knows the format would."""
    out = dict(entries)
    for name, arr in arrays.items():
        out[f"{name}.npy"] = npy(arr)
    listed = [(e["name"], arrays.get(e["name"], np.lib.format.read_array(io.BytesIO(out[e['name'] + '.npy']))))
              for e in header["arrays"]]
    header = dict(header)
    header["sha256"] = dio._digest(header, listed)
    out["header.npy"] = npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    return out


# ---------------------------------------------------------------- zip bombs and declared sizes

def test_extra_compressed_member_is_rejected_before_decompressing(tmp_path):
    path = saved(tmp_path)
    bomb = str(tmp_path / "bomb.npz")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
        with zout.open("slot_999.npy", "w", force_zip64=True) as f:  # 256 MiB of zeros, ~250 KB on disk
            chunk = bytes(1 << 20)
            for _ in range(256):
                f.write(chunk)
    assert os.path.getsize(bomb) < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="slot_999"):
            load_model(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_listed_member_larger_than_the_architecture_is_rejected(tmp_path):
    path = saved(tmp_path)
    entries = members(path)
    header = header_of(entries["header.npy"])
    # A slot declared (and stored) 4096 times larger than the parameter it belongs to.
    big = np.zeros((8 * 4096, 5), np.float32)
    for e in header["arrays"]:
        if e["name"] == "slot_000":
            e["shape"] = list(big.shape)
    bad = str(tmp_path / "big.npz")
    write(bad, resigned(entries, header, {"slot_000": big}))
    with pytest.raises(ValueError, match="optimizer"):
        load_model(bad)


def test_member_whose_declared_size_disagrees_with_its_shape_is_rejected(tmp_path):
    path = saved(tmp_path)
    entries = members(path)
    entries["param_000.npy"] = entries["param_000.npy"] + bytes(1 << 20)  # trailing megabyte
    bad = str(tmp_path / "long.npz")
    write(bad, entries)
    with pytest.raises(ValueError, match="param_000"):
        load_model(bad)


_PEAK_SCRIPT = """
import sys, dropnet
from dropnet import optim
from dropnet.models import Sequential, load_model
from dropnet import layers
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) * 1024
with open("/proc/self/clear_refs", "w") as f:  # resets the peak resident size (VmHWM)
    f.write("5")
before = status("VmRSS")
if sys.argv[1] == "build":
    m = Sequential([layers.Dense(1024, activation="relu"), layers.Dense(1024)], input_shape=(1024,), seed=0)
    m.compile(optimizer=optim.Adam(lr=1e-3), loss="mse")
else:
    m = load_model(sys.argv[1])
print(status("VmHWM") - before)
"""


def _peak_rss_growth(arg):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, arg], capture_output=True, text=True, check=True,
                         env=env)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to reset the peak RSS")
def test_peak_memory_while_loading_is_at_most_twice_the_declared_model(tmp_path):
    m = Sequential([layers.Dense(1024, activation="relu"), layers.Dense(1024)], input_shape=(1024,), seed=0)
    m.compile(optimizer=optim.Adam(lr=1e-3), loss="mse")
    path = str(tmp_path / "big.npz")
    m.save(path)
    header = header_of(members(path)["header.npy"])
    declared_arrays = sum(int(np.prod(e["shape"])) * 4 for e in header["arrays"])
    largest_group = max(sum(int(np.prod(e["shape"])) * 4 for e in header["arrays"] if e["name"].startswith(kind))
                        for kind in ("param", "slot", "mask", "state"))
    assert declared_arrays > 24 << 20
    # Fresh interpreters: the memory of the model the header declares, once built, and the peak
    # of loading it (native allocations included).
    model_memory = _peak_rss_growth("build")
    loading = _peak_rss_growth(path)
    assert loading <= 2 * model_memory, (loading, model_memory)
    # Read the other way, "the size of the model it declares" is the bytes of the arrays it lists
    # (weights and Adam's two slots each): the optimizer slots are set one at a time, so loading
    # stays under twice that too.
    assert loading <= 2 * declared_arrays, (loading, declared_arrays)
    # Loading adds at most one group of arrays (the optimizer slots here) and small buffers to
    # the model itself: nothing in the file is amplified. 8 MB covers the buffers and the page
    # granularity of RSS (malloc arenas, zip reader); a second copy of any group would be 16 MB.
    assert loading <= model_memory + largest_group + (8 << 20), (loading, model_memory, largest_group)


# ---------------------------------------------------------------- values and exception types

def test_non_finite_optimizer_state_is_rejected_even_with_a_valid_digest(tmp_path):
    path = saved(tmp_path)
    entries = members(path)
    header = header_of(entries["header.npy"])
    slot = np.lib.format.read_array(io.BytesIO(entries["slot_000.npy"])).copy()
    for bad_value in (np.nan, np.inf):
        slot[0, 0] = bad_value
        bad = str(tmp_path / "nan_slot.npz")
        write(bad, resigned(entries, header, {"slot_000": slot}))
        with pytest.raises(ValueError, match="slot_000.*finite"):
            load_model(bad)


def test_deep_json_header_is_a_value_error(tmp_path):
    raw = ("[" * 100_000 + "]" * 100_000).encode()
    bad = str(tmp_path / "deep.npz")
    write(bad, {"header.npy": npy(np.frombuffer(raw, np.uint8))})
    with pytest.raises(ValueError, match="nested"):
        load_model(bad)


@pytest.mark.parametrize("units", [2**40, 2**31, -1, 0])
def test_huge_units_in_a_header_is_a_value_error(tmp_path, units):
    path = saved(tmp_path)
    entries = members(path)
    header = header_of(entries["header.npy"])
    header["model"]["layers"][0]["config"]["units"] = units
    bad = str(tmp_path / "units.npz")
    write(bad, resigned(entries, header, {}))
    with pytest.raises(ValueError, match="units"):
        load_model(bad)


def test_pickled_member_is_never_unpickled(tmp_path):
    path = saved(tmp_path)
    entries = members(path)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([object()], dtype=object), allow_pickle=True)
    entries["param_000.npy"] = buf.getvalue()
    bad = str(tmp_path / "pickle.npz")
    write(bad, entries)
    with pytest.raises(ValueError, match="param_000"):
        load_model(bad)


# ---------------------------------------------------------------- diverged training

def diverging():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32) * 100
    y = rng.normal(size=(64, 1)).astype(np.float32) * 1e4
    m = Sequential([layers.Dense(32, activation="relu"), layers.Dense(1)], input_shape=(4,), seed=0)
    m.compile(optimizer=optim.SGD(lr=1e6), loss="mse")
    return m, x, y


def test_diverged_fit_warns_and_save_refuses(tmp_path):
    m, x, y = diverging()
    with pytest.warns(RuntimeWarning, match="diverged.*TerminateOnNaN"):
        hist = m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.isfinite(hist.history["loss"][0])
    path = str(tmp_path / "nan.npz")
    with pytest.raises(ValueError, match="diverged"):
        m.save(path)
    assert not os.listdir(tmp_path)  # nothing written, no temporary file left
    # TerminateOnNaN is the documented way to handle it: no warning then.
    m2, x, y = diverging()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m2.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[callbacks.TerminateOnNaN()])


# ---------------------------------------------------------------- file mode and temporary files

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask):
    m = small_model()
    old = os.umask(umask)
    try:
        m.save(str(tmp_path / "m.npz"))
        from dropnet.prune.lottery import _write_json
        _write_json(str(tmp_path / "l.json"), {"a": 1})
    finally:
        os.umask(old)
    for name in ("m.npz", "l.json"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask


def test_temporary_files_of_killed_saves_are_recognisable_and_removed(tmp_path):
    path = str(tmp_path / "m.npz")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    orphan = tmp_path / f".m.npz.dropnet-tmp-{dead_pid}-0123456789ab"
    orphan.write_bytes(b"x" * 1000)
    live = tmp_path / f".m.npz.dropnet-tmp-{os.getppid()}-0123456789ab"  # a writer that still runs
    live.write_bytes(b"y")
    other = tmp_path / f".n.npz.dropnet-tmp-{dead_pid}-0123456789ab"  # another destination's
    other.write_bytes(b"z")
    small_model().save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", live.name, other.name])
    load_model(path)


# ---------------------------------------------------------------- fit checks before the first step

def test_batch_norm_last_batch_of_one_fails_before_training():
    m = small_model(bn=True)
    x, y = data(17)
    before = (m.get_weights(), m.get_state(), m.network.get_optimizer_state(), m.rng_offset)
    with pytest.raises(ValueError, match="batch_size.*1 sample.*BatchNormalization"):
        m.fit(x, y, batch_size=16, verbose=0)
    after = (m.get_weights(), m.get_state(), m.network.get_optimizer_state(), m.rng_offset)
    for a, b in zip(before[0] + before[1], after[0] + after[1]):
        np.testing.assert_array_equal(a, b)
    assert before[2]["step"] == after[2]["step"] and before[3] == after[3]
    for a, b in zip(before[2]["slots"], after[2]["slots"]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="every batch has 1 sample"):
        m.fit(x, y, batch_size=1, verbose=0)
    with pytest.raises(ValueError, match="the last batch has 1 sample"):
        m.fit(x, y, batch_size=8, verbose=0)  # 8 + 8 + 1
    m.fit(x, y, batch_size=6, verbose=0)  # 6 + 6 + 5 trains
    assert not np.array_equal(m.get_weights()[0], before[0][0])

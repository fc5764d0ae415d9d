"""fit on memory-mapped arrays reads batches from the mapping (native gather of the rows each step
needs) instead of copying the dataset: anonymous memory (RssAnon) barely grows."""
from __future__ import annotations

import numpy as np
import pytest

from dropnet import layers as L
from dropnet.models import Sequential


def rss_anon_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon line")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["memmap", "np.load"])
def test_fit_on_memmap_does_not_copy_the_dataset(tmp_path, how):
    n, d = 40_000, 784  # 125 MB of float32: > 4x the model's working set, > 2x the 64 MB budget
    path = tmp_path / "x.npy"
    x_w = np.lib.format.open_memmap(str(path), mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    for lo in range(0, n, 4096):  # written in pieces: the test itself never holds the whole array
        x_w[lo:lo + 4096] = rng.random((min(4096, n - lo), d), dtype=np.float32)
    x_w.flush()
    del x_w
    y = rng.integers(0, 10, n)
    x = np.load(str(path), mmap_mode="r") if how == "np.load" else np.memmap(
        str(path), dtype=np.float32, mode="r", offset=128, shape=(n, d))
    assert isinstance(x, np.memmap)
    model = Sequential([L.Dense(32, activation="relu"), L.Dropout(0.5), L.Dense(10, activation="softmax")],
                       input_shape=(d,), seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    working_set = 4 * sum(w.size for w in model.get_weights()) * 4 + 4 * 256 * (d + 32 + 10) * 4
    assert x.nbytes >= 4 * working_set
    model.fit(x[:512], y[:512], epochs=1, batch_size=256, verbose=0)  # buffers allocated once
    before = rss_anon_kb()
    hist = model.fit(x, y, epochs=1, batch_size=256, verbose=0, validation_split=0.05)
    grown_mb = (rss_anon_kb() - before) / 1024
    assert grown_mb <= 64, f"RssAnon grew by {grown_mb:.1f} MB during fit on a {x.nbytes / 2**20:.0f} MB memmap"
    assert np.isfinite(hist.history["loss"][0]) and "val_accuracy" in hist.history
    if how != "np.load":
        return
    # Same data in memory, same seed: the same weights (the gather is the in-memory gather).
    twin = Sequential([L.Dense(32, activation="relu"), L.Dropout(0.5), L.Dense(10, activation="softmax")],
                      input_shape=(d,), seed=0)
    twin.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    twin.fit(np.array(x[:512]), y[:512], epochs=1, batch_size=256, verbose=0)
    twin.fit(np.array(x), y, epochs=1, batch_size=256, verbose=0, validation_split=0.05)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)

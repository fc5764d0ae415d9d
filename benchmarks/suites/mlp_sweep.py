"""How an MLP epoch's cost grows with width and batch, against PyTorch: LeNet-style
784-H-100-10 (ReLU, dropout 0.5 after each hidden layer, Adam, softmax cross-entropy) over
``SAMPLES`` random 784-pixel rows, one ``fit`` epoch vs the torch loop, interleaved, the same
initial weights (torch's draw copied into dropnet) and data order.

Two sweeps: hidden width H in ``WIDTHS`` at batch 128, and batch size in ``BATCHES`` at H = 300.
Each point is a row of the run's table; the points are also written to
``bench_out/mlp_sweep.csv`` for ``python -m benchmarks.plots.mlp_sweep`` (matplotlib).
"""
from __future__ import annotations

import csv
import os

import numpy as np

from dropnet import layers, optim
from dropnet.models import Sequential

from ._torch_peer import TorchClassifier

WIDTHS = (300, 1024, 2048, 4096)
BATCHES = (32, 128, 512, 1024)
SAMPLES = 8192
SEED = 0


def _dropnet(width: int) -> Sequential:
    m = Sequential([layers.Dense(width, activation="relu"), layers.Dropout(0.5),
                    layers.Dense(100, activation="relu"), layers.Dropout(0.5),
                    layers.Dense(10, activation="softmax")], input_shape=(784,), seed=SEED)
    m.compile(optimizer=optim.Adam(lr=1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy", metrics=[])
    return m


def _torch(width: int, batch: int) -> TorchClassifier:
    def build(nn):
        return nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Dropout(0.5), nn.Linear(width, 100), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(100, 10))
    return TorchClassifier(build, SEED, batch)


def run(ctx) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    n = 2048 if ctx.quick else SAMPLES
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    points = [("width", w, w, 128) for w in WIDTHS] + [("batch", b, 300, b) for b in BATCHES]
    records = []
    for t in ctx.threads:
        for sweep, value, width, batch in points:
            model = _dropnet(width)
            epoch = [0]

            def dropnet_epoch(model=model, batch=batch, epoch=epoch):
                model.fit(x, y, epochs=epoch[0] + 1, initial_epoch=epoch[0], batch_size=batch, seed=SEED, verbose=0)
                epoch[0] += 1

            sides = {"dropnet fit": dropnet_epoch}
            peers = []
            if torch is not None:
                tm = _torch(width, batch)
                model.set_weights(tm.weights())
                tx, ty = torch.from_numpy(x), torch.from_numpy(y)
                sides["torch loop"] = lambda tm=tm, tx=tx, ty=ty: tm.fit_epoch(tx, ty)
                peers = ["torch loop"]

            def validate(model=model):
                assert all(np.isfinite(w).all() for w in model.get_weights())

            rows = ctx.compare(f"mlp 784-{width}-100-10 batch {batch} ({n} samples)", sides, threads=t,
                               peers=peers, validate=validate)
            for r in rows:
                records.append({"sweep": sweep, "value": value, "width": width, "batch": batch, "threads": t,
                                "side": r.side, "median_s": r.median_s, "min_s": r.min_s, "max_s": r.max_s})
    os.makedirs("bench_out", exist_ok=True)
    with open(os.path.join("bench_out", "mlp_sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(records[0]))
        w.writeheader()
        w.writerows(records)
    print("# mlp_sweep: points written to bench_out/mlp_sweep.csv (plot: python -m benchmarks.plots.mlp_sweep)")

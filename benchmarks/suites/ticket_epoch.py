"""Seconds per training epoch of a pruned LeNet-300-100 (lottery-ticket recipe) against the dense
network, in dropnet and in PyTorch (dense).

Recipe on every side: 784-300-100-10 ReLU, softmax crossentropy, Adam(lr=1.2e-3, betas 0.9/0.999,
eps=1e-7), batch 60 with the last partial batch, the data order of ``fit(seed=0)`` (epoch e uses
``numpy.random.default_rng([0, e]).permutation``), float32, 2 threads. The dropnet sides are
pruned by ``dropnet.prune.magnitude(model, p)`` (every layer, output included) at
p = 50/80/90/95 % before timing; they only call ``Sequential.fit``, so they pick up whatever the
Dense layers do with masks (masked dense now, sparse kernels once wired) with no change here.

One call = one full epoch over the training set (Fashion-MNIST, 60000 images; ``--quick``: the
first 6000). Ratios: speed of each side / speed of the named peer, same interleaved run.
"""
from __future__ import annotations

import numpy as np

import dropnet
from dropnet import datasets, layers, optim, prune
from dropnet.models import Sequential

SEED = 0
BATCH = 60
LR = 1.2e-3
SPARSITIES = (0.5, 0.8, 0.9, 0.95)


def lenet(seed: int) -> Sequential:
    m = Sequential([layers.Dense(300, activation="relu"), layers.Dense(100, activation="relu"),
                    layers.Dense(10, activation="softmax")], input_shape=(784,), seed=seed)
    m.compile(optimizer=optim.Adam(lr=LR, epsilon=1e-7), loss="sparse_categorical_crossentropy", metrics=[])
    return m


class TorchLeNet:
    def __init__(self, seed: int):
        import torch

        torch.manual_seed(seed)
        self.torch = torch
        nn = torch.nn
        self.net = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-7)
        self.epoch = 0

    def fit_epoch(self, x, y) -> None:
        torch = self.torch
        order = torch.from_numpy(np.random.default_rng([SEED, self.epoch]).permutation(len(x)))
        for lo in range(0, len(x), BATCH):
            idx = order[lo:lo + BATCH]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            self.opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(self.net(xb), yb).backward()
            self.opt.step()
        self.epoch += 1


def run(ctx) -> None:
    (x, y), _ = datasets.fashion_mnist(flatten=True)
    if ctx.quick:
        x, y = x[:6000], y[:6000]
    threads = 2 if 2 in ctx.threads else max(ctx.threads)
    epochs = {}

    def one_epoch(model: Sequential) -> None:
        done = epochs.get(id(model), 0)
        model.fit(x, y, epochs=done + 1, initial_epoch=done, batch_size=BATCH, seed=SEED, verbose=0)
        epochs[id(model)] = done + 1

    models = {"dropnet dense": lenet(SEED)}
    for p in SPARSITIES:
        models[f"dropnet {int(round(100 * p))}% pruned"] = prune.magnitude(lenet(SEED), p)
    sides = {name: (lambda m=m: one_epoch(m)) for name, m in models.items()}
    peers = ["dropnet dense"]
    try:
        import torch

        tm = TorchLeNet(SEED)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        sides["torch dense"] = lambda: tm.fit_epoch(tx, ty)
        peers.append("torch dense")
    except ImportError:
        pass

    def validate() -> None:
        """The pruned models have the intended sparsity, and pruned weights stay 0 through fit."""
        for p, (name, m) in zip((0.0, *SPARSITIES), models.items()):
            rep = prune.sparsity(m)
            want = sum(r["total"] - int(np.floor(p * r["total"] + 0.5)) for r in rep.rows)
            assert rep.nnz == want, (name, rep.nnz, want)
        probe = prune.magnitude(lenet(SEED + 1), 0.9)
        masks = prune.get_masks(probe)
        probe.fit(x[:600], y[:600], epochs=1, batch_size=BATCH, verbose=0)
        for w, mask in zip(probe.get_weights()[0::2], masks):
            assert np.all(w[mask == 0] == 0)

    ctx.compare(f"LeNet-300-100 Adam epoch ({len(x)} samples, batch {BATCH})", sides, threads=threads, peers=peers,
                validate=validate, note="pruned by prune.magnitude, every layer")
    dropnet.set_num_threads(max(ctx.threads))

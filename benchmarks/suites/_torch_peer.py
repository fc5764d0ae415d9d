"""The PyTorch side of the epoch benchmarks: a classifier trained with Adam (dropnet's defaults:
lr 1e-3, betas 0.9/0.999, eps 1e-7) in the same data order as ``Sequential.fit`` (epoch e uses
``numpy.random.default_rng([seed, e]).permutation``), batch by batch with the last partial batch."""
from __future__ import annotations

from typing import Callable

import numpy as np


class TorchClassifier:
    def __init__(self, build: Callable, seed: int, batch: int):
        """build(torch.nn) -> the network; torch is seeded with `seed` before it is built."""
        import torch

        torch.manual_seed(seed)
        self.torch, self.seed, self.batch = torch, seed, batch
        self.net = build(torch.nn)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        self.epoch = 0

    def weights(self) -> list:
        """Parameters in dropnet's get_weights order (the layouts are identical)."""
        return [p.detach().numpy().copy() for p in self.net.parameters()]

    def fit_epoch(self, x, y) -> None:
        torch = self.torch
        order = torch.from_numpy(np.random.default_rng([self.seed, self.epoch]).permutation(len(x)))
        self.net.train()
        for lo in range(0, len(x), self.batch):
            idx = order[lo:lo + self.batch]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            self.opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(self.net(xb), yb)
            loss.backward()
            self.opt.step()
        self.epoch += 1

    def accuracy(self, x, y) -> float:
        self.net.eval()
        with self.torch.no_grad():
            return float((self.net(x).argmax(1) == y).float().mean())


def masked_step(model, opt, x: np.ndarray, y: np.ndarray, weights, masks) -> Callable[[], object]:
    """One training step of a torch model whose pruned weights are re-applied after the update
    (what ``torch.nn.utils.prune`` amounts to): cross-entropy, backward, ``opt.step()``, then each
    weight multiplied by its 0/1 mask (numpy arrays, the weights' shapes)."""
    import torch
    import torch.nn.functional as F

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    tmasks = [torch.from_numpy(m) for m in masks]

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for w, m in zip(weights, tmasks):
                w.mul_(m)
        return loss

    return step


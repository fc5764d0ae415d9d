"""The PyTorch side of the epoch benchmarks: a classifier trained with Adam (dropnet's defaults:
lr 1e-3, betas 0.9/0.999, eps 1e-7) in the same data order as ``Sequential.fit`` (epoch e uses
``numpy.random.default_rng([seed, e]).permutation``), batch by batch with the last partial batch."""
from __future__ import annotations

from typing import Callable

import numpy as np


class TorchClassifier:
    def __init__(self, build: Callable, seed: int, batch: int, device: str = "cpu", capturable: bool = False):
        """build(torch.nn) -> the network; torch is seeded with `seed` before it is built (on the
        CPU, so every device starts from the same draw), then moved to `device`. capturable: Adam's
        state kept on the device, as a CUDA graph capture of its step needs."""
        import torch

        torch.manual_seed(seed)
        self.torch, self.seed, self.batch = torch, seed, batch
        self.net = build(torch.nn).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7,
                                    capturable=capturable)
        self.epoch = 0

    def weights(self) -> list:
        """Parameters in dropnet's get_weights order (the layouts are identical)."""
        return [p.detach().cpu().numpy().copy() for p in self.net.parameters()]

    def order(self, x):
        """This epoch's sample order, on x's device."""
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(x))
        return self.torch.from_numpy(perm).to(x.device)

    def fit_epoch(self, x, y) -> None:
        """One epoch over x, y (tensors on the model's device)."""
        torch = self.torch
        order = self.order(x)
        self.net.train()
        for lo in range(0, len(x), self.batch):
            idx = order[lo:lo + self.batch]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            self.opt.zero_grad(set_to_none=True)
            self.step_loss(xb, yb)
        self.epoch += 1

    def step_loss(self, xb, yb):
        """Forward, backward and the optimizer step on one batch; the loss (a tensor)."""
        loss = self.torch.nn.functional.cross_entropy(self.net(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def accuracy(self, x, y) -> float:
        self.net.eval()
        with self.torch.no_grad():
            return float((self.net(x).argmax(1) == y).float().mean())


class GraphedClassifier(TorchClassifier):
    """The same training loop with each step (the batch gathered from the resident data, forward,
    backward, Adam) captured once as a CUDA graph and replayed: the recipe of PyTorch's "whole
    network capture" (warm-up steps on a side stream, capturable Adam, static input tensors). Only
    the batch's indices change between replays, so every batch must be full: len(x) a multiple of
    the batch size. x, y: CUDA tensors that outlive the object (the graph reads them in place)."""

    WARMUP_STEPS = 3

    def __init__(self, build: Callable, seed: int, batch: int, x, y, device: str = "cuda"):
        if len(x) % batch:
            raise ValueError(f"x: a CUDA graph replays full batches only; expected a multiple of {batch} rows, "
                             f"got {len(x)}")
        super().__init__(build, seed, batch, device=device, capturable=True)
        torch = self.torch
        self.x, self.y = x, y
        self.idx = torch.arange(batch, device=x.device)
        self.net.train()
        # Warm-up on a side stream (allocator and cuDNN state settle before capture); these steps
        # move the weights, so take weights() only after construction.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_STEPS):
                self.opt.zero_grad(set_to_none=True)
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss = self._step()

    def _step(self):
        return self.step_loss(self.x.index_select(0, self.idx), self.y.index_select(0, self.idx))

    def fit_epoch(self, x=None, y=None) -> None:
        """One epoch over the tensors given at construction (x, y: accepted for the same call
        shape as TorchClassifier, and must be those tensors)."""
        if (x is not None and x is not self.x) or (y is not None and y is not self.y):
            raise ValueError("x, y: a graphed classifier trains on the tensors it was captured with")
        order = self.order(self.x)
        for lo in range(0, len(self.x), self.batch):
            self.idx.copy_(order[lo:lo + self.batch])
            self.graph.replay()
        self.epoch += 1


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


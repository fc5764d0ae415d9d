"""Seconds per training epoch of the VGG-style net (benchmarks/suites/_models.py ``vgg``: six 3x3
convolutions 32-32 / 64-64 / 128-128 at 28 -> 14 -> 7 with batch norm and ReLU, max pools, dropout
0.5, dense 10), dropnet ``Sequential.fit`` beside the same model in PyTorch.

Same on both sides: the model and recipe of ``_models`` (Adam lr 1e-3, eps 1e-7, batch 128, the
data order of ``fit(seed=0)``), the same initial weights (torch's draw copied with
``set_weights``), float32, the same thread count. What differs: the dropout masks.

One call = one epoch over ``SAMPLES`` Fashion-MNIST training images (10240 = 80 batches: a full
60000-image epoch takes about a minute per side, and the harness times at least 7 per side);
``--quick``: 1024. Seconds per full epoch scale with the sample count.
"""
from __future__ import annotations

import dropnet
from dropnet import datasets

from . import _models
from ._torch_peer import TorchClassifier

SAMPLES, QUICK_SAMPLES, BATCH, SEED = 10240, 1024, 128, 1


def run(ctx) -> None:
    (x, y), _ = datasets.fashion_mnist()
    n = QUICK_SAMPLES if ctx.quick else SAMPLES
    x, y = x.reshape(-1, 1, 28, 28)[:n], y[:n]
    try:
        import torch
    except ImportError:
        torch = None
    for t in ctx.threads:
        ctx.set_threads(t)
        model = _models.dropnet_model("vgg", SEED)
        done = [0]

        def dropnet_epoch(model=model, done=done) -> None:
            model.fit(x, y, epochs=done[0] + 1, initial_epoch=done[0], batch_size=BATCH, seed=0, verbose=0)
            done[0] += 1

        sides = {"dropnet fit": dropnet_epoch}
        peers = []
        if torch is not None:
            peer = TorchClassifier(_models.torch_builder("vgg"), SEED, BATCH)
            model.set_weights(peer.weights())
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            sides["torch loop"] = lambda peer=peer: peer.fit_epoch(tx, ty)
            peers = ["torch loop"]
        ctx.compare(f"VGG-style net epoch ({n} samples, batch {BATCH})", sides, threads=t, peers=peers)
    dropnet.set_num_threads(max(ctx.threads))

"""Training step of a pruned CNN: the cnn_epoch network (Conv2D 32 3×3, BatchNorm+ReLU, MaxPool 2,
Conv2D 64 3×3, BatchNorm+ReLU, MaxPool 2, Dense 128 ReLU + dropout 0.5, Dense 10; Adam 1e-3) on
28×28 inputs at batch 128, its two convolutions and the hidden Dense pruned at random to
0/50/80/90/95 % (the output layer at half the rate). dropnet with sparse execution (pruned Conv2D
and Dense layers on compressed weights), with the dense masked path, and 'auto' (its measured
choice per layer), against PyTorch dense with the masks re-applied after every step, interleaved,
same thread count. One epoch of Fashion-MNIST is 469 steps.

Before timing, the sparse and dense-masked dropnet networks take one step from the same weights
and must agree (gradients to summation order).
"""
from __future__ import annotations

import numpy as np

from dropnet import _core

from ._pruned_step import auto_choices, check_sparse_step, step_sides
from ._torch_peer import masked_step

BATCH = 128
SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)
LR, DROPOUT = 1e-3, 0.5
LAYERS = [
    {"type": "conv2d", "filters": 32, "kernel_size": [3, 3], "padding": [1, 1], "use_bias": False},
    {"type": "batch_norm", "relu": True},
    {"type": "max_pool2d", "pool_size": [2, 2]},
    {"type": "conv2d", "filters": 64, "kernel_size": [3, 3], "padding": [1, 1], "use_bias": False},
    {"type": "batch_norm", "relu": True},
    {"type": "max_pool2d", "pool_size": [2, 2]},
    {"type": "flatten"},
    {"type": "dense", "units": 128, "activation": "relu", "dropout": DROPOUT},
    {"type": "dense", "units": 10, "activation": "softmax"},
]
WEIGHTS = (0, 3, 6, 8)  # parameter indices of the two kernels and the two dense weights


def make_masks(sparsity: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    shapes = [(32, 1, 3, 3), (64, 32, 3, 3), (128, 3136), (10, 128)]
    rates = [sparsity, sparsity, sparsity, sparsity / 2]
    return [(rng.random(s) >= r).astype(np.float32) for s, r in zip(shapes, rates)]


def make_net(masks, mode: str, seed: int = 0):
    net = _core.nn.Network(LAYERS, (1, 28, 28), "sparse_categorical_crossentropy", seed)
    net.set_optimizer({"type": "adam", "lr": LR})
    for i, m in zip(WEIGHTS, masks):
        net.set_mask(i, m)
        net.set_sparse_mode(i, mode)
    return net


def run(ctx) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int64)
    try:
        import torch
    except ImportError:
        torch = None
    sparsities = (0.0, 0.9) if ctx.quick else SPARSITIES
    for t in ctx.threads:
        for sparsity in sparsities:
            ctx.set_threads(t)
            masks = make_masks(sparsity)
            nets, sides = step_sides(make_net, masks, x, y)

            def validate(masks=masks):
                check_sparse_step(make_net, masks, x, y, rtol=1e-3, atol_scale=1e-4)

            peers = ["dropnet dense-masked"]
            if torch is not None:
                nn = torch.nn
                model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                      nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(128, 10))
                weights = [model[0].weight, model[4].weight, model[9].weight, model[12].weight]
                with torch.no_grad():
                    for w, m in zip(weights, masks):
                        w.mul_(torch.from_numpy(m))
                opt = torch.optim.Adam(model.parameters(), lr=LR, eps=1e-7)
                torch_step = masked_step(model, opt, x, y, weights, masks)

                sides["torch dense (mask re-applied)"] = torch_step
                peers.append("torch dense (mask re-applied)")
            ctx.compare(f"pruned CNN step, {round(sparsity * 100)}% sparse, batch {BATCH}", sides, threads=t,
                        peers=peers, validate=validate, note="Adam, BN, dropout 0.5; epoch = 469 steps")
            print(f"# threads {t}, sparsity {sparsity:.2f}: auto chose " + auto_choices(nets["auto"]))

"""One training step of LeNet-300-100 (784-300-100-10, ReLU, dropout 0.5 after each hidden layer,
softmax cross-entropy, SGD with momentum 0.9) at batch 128: dropnet's single native call
``Network.train_step`` beside the same step in PyTorch (nn.Sequential, F.cross_entropy,
optimizer.zero_grad / backward / step), interleaved, same thread count.

Both sides train on the same fixed batch (random inputs in [0, 1), like scaled pixels) from the
same initial weights. Before timing, the two forward passes (inference) are checked to agree.

Both libraries run OpenMP pools in this one process. On a loaded or shared machine their
spin-waiting threads starve each other at 2 threads (PyTorch's step was seen 50x slower); run with
``OMP_WAIT_POLICY=PASSIVE`` there, or compare the sides in separate processes.
"""
from __future__ import annotations

import numpy as np

import dropnet
from dropnet import _core

BATCH = 128
SIZES = (784, 300, 100, 10)
LR, MOMENTUM, DROPOUT = 0.01, 0.9, 0.5


def make_dropnet(seed: int = 0):
    layers = [
        {"type": "dense", "units": 300, "activation": "relu", "dropout": DROPOUT},
        {"type": "dense", "units": 100, "activation": "relu", "dropout": DROPOUT},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    net = _core.nn.Network(layers, (784,), "sparse_categorical_crossentropy", seed)
    net.set_optimizer({"type": "sgd", "lr": LR, "momentum": MOMENTUM})
    return net


def gemm_flops_per_step(batch: int) -> float:
    """3 GEMMs per layer (forward, dW, dX) minus the first layer's dX: 2·M·N·K each."""
    flops = 0.0
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        flops += 2 * batch * n_in * n_out * (2 if i == 0 else 3)
    return flops


def run(ctx) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int64)
    net = make_dropnet()

    sides = {"dropnet train_step": lambda: net.train_step(x, y)}
    peers = []
    try:
        import torch
        import torch.nn.functional as F

        model = torch.nn.Sequential(
            torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
            torch.nn.Linear(300, 100), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
            torch.nn.Linear(100, 10))
        params = net.get_params()
        with torch.no_grad():
            for layer, (w, b) in zip([model[0], model[3], model[6]], zip(params[::2], params[1::2])):
                layer.weight.copy_(torch.from_numpy(w))
                layer.bias.copy_(torch.from_numpy(b))
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step():
            opt.zero_grad()
            loss = F.cross_entropy(model(xt), yt)
            loss.backward()
            opt.step()
            return loss

        def validate():  # before any step: both sides still hold the same initial weights
            model.eval()
            with torch.no_grad():
                want = torch.softmax(model(xt), dim=1).numpy()
            model.train()
            got = make_dropnet().forward(x)
            assert np.allclose(got, want, rtol=1e-4, atol=1e-5), "dropnet and torch forward passes disagree"
            probe = make_dropnet()
            first = probe.train_step(x, y)
            for _ in range(20):
                last = probe.train_step(x, y)
            assert last < first, "dropnet's loss does not fall on a fixed batch"

        validate()
        sides["torch step"] = torch_step
        peers = ["torch step"]
    except ImportError:
        pass

    for t in ctx.threads:
        ctx.compare(f"LeNet-300-100 + dropout step, batch {BATCH}", sides, threads=t,
                    work=gemm_flops_per_step(BATCH) / 1e9, unit="GFLOP/s (GEMM flops)", peers=peers,
                    note="SGD momentum 0.9; same init, same batch")

"""Batch normalisation forward + backward (training) beside PyTorch, with a copy as memory roof.

Cases (docs/performance.md, the suites): BatchNorm1d(300) on (256, 300) and BatchNorm2d(32) on (128, 32, 28, 28),
plain and fused with the following ReLU. Sides:
  dropnet           ops.batch_norm + ops.batch_norm_backward into reused buffers
  torch autograd    F.batch_norm (+ F.relu) and .backward(), as a training step runs it
  torch aten        torch.native_batch_norm + aten.native_batch_norm_backward (no autograd; no ReLU)
  torch copy_       a copy moving the same bytes: the memory roof
GB/s counts the bytes a two-pass-per-direction kernel must move at least: x read and y written
forward, dy and x read and dx written backward (+ y read backward when fused with ReLU).
"""
from __future__ import annotations

import numpy as np

from dropnet import ops


def bn_sides(shape, relu: bool, seed: int = 0):
    """(sides, validate, bytes moved) of one BatchNorm(+ReLU) layer's forward + backward."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    moved = x.nbytes * (6 if relu else 5)

    def dropnet_step():
        _, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True, relu=relu, out=y)
        ops.batch_norm_backward(dy, x, gamma, mean, invstd, y=y if relu else None, out=dx)

    sides = {"dropnet": dropnet_step}
    validate = None
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return sides, validate, moved

    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    trm, trv = torch.zeros(C), torch.ones(C)
    dyt = torch.from_numpy(dy)

    def torch_forward():
        out = F.batch_norm(xt, trm, trv, gt, bt, training=True, momentum=0.1, eps=1e-5)
        return F.relu(out) if relu else out

    def torch_autograd():
        xt.grad = gt.grad = bt.grad = None
        torch_forward().backward(dyt)

    sides["torch autograd"] = torch_autograd
    if not relu:
        xa, ga, ba = torch.from_numpy(x), torch.from_numpy(gamma), torch.from_numpy(beta)

        def torch_aten():
            _, m, s = torch.native_batch_norm(xa, ga, ba, trm, trv, True, 0.1, 1e-5)
            torch.ops.aten.native_batch_norm_backward(dyt, xa, ga, trm, trv, m, s, True, 1e-5, [True, True, True])

        sides["torch aten"] = torch_aten
    src = torch.empty(moved // 8)  # copy_ reads and writes: the same bytes in all
    dst = torch.empty_like(src)
    sides["torch copy_"] = lambda: dst.copy_(src)

    def validate():
        torch_autograd()
        y_ref = torch_forward().detach().numpy()
        _, mean, invstd = ops.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), training=True, relu=relu, out=y)
        g = ops.batch_norm_backward(dy, x, gamma, mean, invstd, y=y if relu else None, out=dx)
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
        for got, ref in zip(g, (xt.grad, gt.grad, bt.grad)):
            np.testing.assert_allclose(got, ref.numpy(), rtol=1e-3, atol=1e-3)

    return sides, validate, moved


def run(ctx) -> None:
    cases = [("BatchNorm1d(300) (256, 300)", (256, 300)), ("BatchNorm2d(32) (128, 32, 28, 28)", (128, 32, 28, 28))]
    if ctx.quick:
        cases = [("BatchNorm1d(300) (256, 300)", (256, 300)), ("BatchNorm2d(32) (16, 32, 28, 28)", (16, 32, 28, 28))]
    for t in ctx.threads:
        for name, shape in cases:
            for relu in (False, True):
                sides, validate, moved = bn_sides(shape, relu)
                ctx.compare(f"{name}{' + ReLU' if relu else ''} fwd+bwd", sides, threads=t, work=moved / 1e9,
                            unit="GB/s", peers=[p for p in ("torch autograd", "torch aten") if p in sides],
                            validate=validate)

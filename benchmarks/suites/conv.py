"""Per-layer forward + backward of the small CNN (Fashion-MNIST 28×28, batch 128) beside PyTorch.

Layers, as a training step runs them (buffers reused, out= where the op has it):
  conv3x3 1→32 pad 1 (no input gradient: first layer), BN2d(32) + ReLU, maxpool 2,
  conv3x3 32→64 pad 1, BN2d(64) + ReLU, maxpool 2.
Peer: torch.nn.functional + autograd (.backward) at the same thread count.
dropnet's paths (docs/design.md, "Convolution paths"): the 1→32 layer runs im2col + cpu::sgemm,
the 32→64 layer Winograd F(2×2, 3×3) (transforms + 16 cpu::sgemm products per block of images).
GFLOP/s counts the direct convolution's forward + backward multiply-adds × 2 for both sides (the
Winograd path does fewer).
"""
from __future__ import annotations

import numpy as np

from dropnet import ops

from .batchnorm import bn_sides


def conv_sides(n, c, f, hw, need_input_grad, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((f, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    dy = rng.standard_normal((n, f, hw, hw)).astype(np.float32)
    y = np.empty_like(dy)
    products = 2 if need_input_grad else 1  # backward: dW always, dX when asked
    flops = 2.0 * n * f * c * 9 * hw * hw * (1 + products)

    dx = np.empty_like(x) if need_input_grad else None
    dw, db = np.empty_like(w), np.empty_like(b)

    def dropnet_step():
        ops.conv2d(x, w, b, padding=1, out=y)
        ops.conv2d_backward(dy, x, w, padding=1, need_input_grad=need_input_grad, dx_out=dx, dw_out=dw, db_out=db)

    sides = {"dropnet": dropnet_step}
    validate = None
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return sides, validate, flops
    xt = torch.tensor(x, requires_grad=need_input_grad)
    wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    dyt = torch.from_numpy(dy)

    def torch_step():
        xt.grad = wt.grad = bt.grad = None
        F.conv2d(xt, wt, bt, padding=1).backward(dyt)

    sides["torch autograd"] = torch_step

    def validate():
        torch_step()
        yt = F.conv2d(xt, wt, bt, padding=1).detach().numpy()
        np.testing.assert_allclose(ops.conv2d(x, w, b, padding=1), yt, rtol=1e-3, atol=1e-3)
        dx, dw, db = ops.conv2d_backward(dy, x, w, padding=1, need_input_grad=need_input_grad)
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-3, atol=1e-2)
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-3, atol=1e-2)
        if need_input_grad:
            np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-3)

    return sides, validate, flops


def pool_sides(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    n, c, h, w = shape
    y = np.empty((n, c, h // 2, w // 2), np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.empty_like(x)
    idx = np.empty(y.shape, np.int32)
    moved = x.nbytes * 2 + y.nbytes * 2 + y.size * 4 * 2  # x, dx; y, dy; indices written and read

    def dropnet_step():
        ops.max_pool2d(x, 2, return_indices=True, out=y, indices_out=idx)
        ops.max_pool2d_backward(dy, idx, shape, out=dx)

    sides = {"dropnet": dropnet_step}
    validate = None
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return sides, validate, moved
    xt = torch.tensor(x, requires_grad=True)
    dyt = torch.from_numpy(dy)

    def torch_step():
        xt.grad = None
        F.max_pool2d(xt, 2).backward(dyt)

    sides["torch autograd"] = torch_step

    def validate():
        torch_step()
        dropnet_step()
        assert np.array_equal(y, F.max_pool2d(xt, 2).detach().numpy())
        assert np.array_equal(dx, xt.grad.numpy())

    return sides, validate, moved


def run(ctx) -> None:
    n = 16 if ctx.quick else 128
    layers = [
        ("conv3x3 1→32 pad 1 (28×28)", "conv", (n, 1, 32, 28, False)),
        ("BN2d(32) + ReLU (28×28)", "bn", (n, 32, 28, 28)),
        ("maxpool 2 (32×28×28)", "pool", (n, 32, 28, 28)),
        ("conv3x3 32→64 pad 1 (14×14)", "conv", (n, 32, 64, 14, True)),
        ("BN2d(64) + ReLU (14×14)", "bn", (n, 64, 14, 14)),
        ("maxpool 2 (64×14×14)", "pool", (n, 64, 14, 14)),
    ]
    for t in ctx.threads:
        for name, kind, args in layers:
            case = f"{name} batch {n} fwd+bwd"
            if kind == "conv":
                sides, validate, flops = conv_sides(*args)
                ctx.compare(case, sides, threads=t, work=flops / 1e9, unit="GFLOP/s", peers=["torch autograd"],
                            validate=validate)
            elif kind == "bn":
                sides, validate, moved = bn_sides(args, relu=True)
                sides.pop("torch copy_", None)
                ctx.compare(case, sides, threads=t, work=moved / 1e9, unit="GB/s", peers=["torch autograd"],
                            validate=validate)
            else:
                sides, validate, moved = pool_sides(args)
                ctx.compare(case, sides, threads=t, work=moved / 1e9, unit="GB/s", peers=["torch autograd"],
                            validate=validate)

"""The GPU suite (a machine with an NVIDIA GPU and PyTorch with CUDA): ``dropnet.ops`` dropout on
torch CUDA tensors (through ``__cuda_array_interface__``, no copies) beside a device-to-device copy
(the memory roof) and ``torch.nn.functional.dropout``, at 256 MB float32 (64 MB with --quick).

GB/s counts the floats read and written (8 bytes an element); dropnet's 1-bit mask, where written,
adds n / 8 bytes more. Every side ends with ``torch.cuda.synchronize()`` so the time is the GPU's,
launch latency included (a few microseconds against ~0.1-1 ms per call). Without a usable GPU the
suite prints why and records nothing.
"""
from __future__ import annotations

import dropnet
from dropnet import ops

P = 0.5
SEED, STREAM = 99, 3


def run(ctx) -> None:
    reason = dropnet.cuda.unavailable_reason()
    try:
        import torch
    except ImportError:
        torch = None
    if reason is None and (torch is None or not torch.cuda.is_available()):
        reason = "PyTorch with CUDA is not installed here (the GPU suite's peer)"
    if reason is not None:
        print(f"# gpu suite skipped: {reason}", flush=True)
        return
    n = (16 << 20) if ctx.quick else (64 << 20)
    label = f"{n * 4 >> 20} MB"
    x = torch.randn(n, device="cuda")
    g = torch.randn(n, device="cuda")
    out, dx = torch.empty_like(x), torch.empty_like(x)
    sync = torch.cuda.synchronize

    def validate() -> None:
        # The timed kernels give the CPU's bits (on a prefix; the tests check every size).
        k = 1 << 16
        want, want_bits = ops.dropout(x[:k].cpu().numpy(), P, seed=SEED, stream=STREAM, return_mask=True)
        got, bits = ops.dropout(x[:k], P, seed=SEED, stream=STREAM, return_mask=True)
        assert (got.numpy() == want).all() and (bits.numpy() == want_bits).all()
        regen = ops.dropout_backward(g[:k], P, seed=SEED, stream=STREAM)
        assert (regen.numpy() == ops.dropout_backward(g[:k].cpu().numpy(), P, seed=SEED, stream=STREAM)).all()

    def timed(fn):
        def call():
            fn()
            sync()
        return call

    sides = {
        "dropnet fwd out=": timed(lambda: ops.dropout(x, P, seed=SEED, stream=STREAM, out=out)),
        "dropnet fwd+mask out=": timed(lambda: ops.dropout(x, P, seed=SEED, stream=STREAM, out=out,
                                                           return_mask=True)),
        "dropnet bwd regen out=": timed(lambda: ops.dropout_backward(g, P, seed=SEED, stream=STREAM, out=dx)),
        "torch copy_": timed(lambda: out.copy_(x)),
        "torch dropout": timed(lambda: torch.nn.functional.dropout(x, P, training=True)),
    }
    name = torch.cuda.get_device_name()
    rows = ctx.compare(f"GPU dropout p={P} {label} float32 ({name})", sides, threads=ctx.threads[0],
                       work=8.0 * n / 1e9, unit="GB/s", peers=["torch copy_", "torch dropout"], validate=validate)
    for r in rows:
        if r.side == "dropnet fwd+mask out=":
            r.rate = (8.0 * n + n / 8.0) / 1e9 / r.median_s
            r.note = "rate incl. mask bytes"

"""Dropout forward and backward in GB/s (bytes read + written, mask bytes included) beside the
memory roof (``torch.Tensor.copy_`` into an existing tensor) and ``torch.nn.functional.dropout``,
at 1 MB (cache-resident) and 64 MB float32, all sides interleaved in one run.

dropnet sides: forward with ``out=`` (with and without the 1-bit mask) and backward from the mask
bits or regenerating the mask from (seed, stream). The torch dropout allocates its output (that
is how it is called in a network); copy_ and dropnet write into existing buffers.

What bounds what: at 64 MB the passes are memory-bound (forward and regenerating backward move the
same bytes as the copy; outputs >= 48 MB use non-temporal stores). At 1 MB the data sits in L2
and forward / regenerating backward are bound by Philox arithmetic: one 32-bit word per element,
i.e. 36 vpmuludq + ~70 other vector ops per 64 elements on AVX-512, about 3.3 G elements/s per
core on the reference machine, while an L2 copy runs at ~10 G elements/s per core.
"""
from __future__ import annotations

import numpy as np

import dropnet
from dropnet import ops

P = 0.5
SEED, STREAM = 1234, 5


def _validate(x: np.ndarray, y: np.ndarray, bits: np.ndarray) -> None:
    """The timed kernels give the contract's mask and values (on a prefix, against the native
    stream words, which the tests check against numpy)."""
    n = min(x.size, 1 << 16)
    words = dropnet.random.uniform_bits(n, SEED, STREAM)
    keep = words < np.uint32(2**31)  # threshold of p = 0.5
    ops.dropout(x, P, seed=SEED, stream=STREAM, out=y)
    assert np.array_equal(ops.unpack_mask(bits[: (n + 63) // 64], (n + 63) // 64 * 64)[:n], keep)
    assert np.array_equal(y[:n], np.where(keep, x[:n] * np.float32(2), np.float32(0)))


def run(ctx) -> None:
    sizes = [(1 << 18, "1 MB"), (1 << 22, "16 MB")] if ctx.quick else [(1 << 18, "1 MB"), (1 << 24, "64 MB")]
    try:
        import torch
    except ImportError:
        torch = None
    for n, label in sizes:
        x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
        y = np.empty_like(x)
        g = np.random.default_rng(1).standard_normal(n).astype(np.float32)
        dx = np.empty_like(x)
        _, bits = ops.dropout(x, P, seed=SEED, stream=STREAM, return_mask=True)
        float_bytes = 8.0 * n  # read n floats, write n floats
        mask_bytes = n / 8.0  # one bit per element, written (forward) or read (backward)
        sides = {
            "dropnet fwd out=": lambda: ops.dropout(x, P, seed=SEED, stream=STREAM, out=y),
            "dropnet fwd+mask out=": lambda: ops.dropout(x, P, seed=SEED, stream=STREAM, out=y, return_mask=True),
            "dropnet bwd regen": lambda: ops.dropout_backward(g, P, seed=SEED, stream=STREAM, out=dx),
            "dropnet bwd bits": lambda: ops.dropout_backward(g, P, mask_bits=bits, out=dx),
        }
        peers = []
        if torch is not None:
            tx = torch.from_numpy(x.copy())
            ty = torch.empty_like(tx)
            sides["torch copy_"] = lambda: ty.copy_(tx)
            sides["torch dropout"] = lambda: torch.nn.functional.dropout(tx, P, training=True)
            peers = ["torch copy_", "torch dropout"]
        for t in ctx.threads:
            rows = ctx.compare(f"dropout p={P} {label} float32", sides, threads=t, work=float_bytes / 1e9,
                               unit="GB/s", peers=peers, validate=lambda: _validate(x, y, bits))
            for r in rows:  # the mask sides also move the mask's bytes
                if r.side in ("dropnet fwd+mask out=", "dropnet bwd bits"):
                    r.rate = (float_bytes + mask_bytes) / 1e9 / r.median_s
                    r.note = "rate incl. mask bytes"

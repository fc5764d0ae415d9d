"""Philox stream throughput (G words/s) per ISA path, and beside torch's uniform RNG fill.

The peer row is torch's ``random_()`` into an int32 tensor (its CPU generator, mt19937): another
generator, shown only to place our counter-based stream among what users have.
"""
from __future__ import annotations

import numpy as np

import dropnet
from dropnet import _core


def run(ctx) -> None:
    n = 1 << 20 if ctx.quick else 1 << 24
    out = np.empty(n, dtype=np.uint32)
    # Validate before timing: every ISA path gives the same words.
    ref = None
    for level in dropnet.cpu_features()["available"]:
        with dropnet.isa(level):
            w = _core.random.uniform_bits(4099, 42, 7, 0, "cpu")
        ref = w if ref is None else ref
        assert np.array_equal(ref, w), f"ISA {level} disagrees with the scalar path"
    for t in ctx.threads:
        sides = {}
        for level in dropnet.cpu_features()["available"]:
            def fn(level=level):
                with dropnet.isa(level):
                    _core.random.fill_uniform_bits(out, 42, 7, 0)
            sides[f"dropnet {level}"] = fn
        peers = []
        try:
            import torch

            tt = torch.empty(n, dtype=torch.int32)
            sides["torch random_()"] = lambda: tt.random_()
            peers = ["torch random_()"]
        except ImportError:
            pass
        ctx.compare(f"philox stream {n} words", sides, threads=t, work=n / 1e9, unit="G words/s",
                    peers=peers)

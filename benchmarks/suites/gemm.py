"""SGEMM GFLOP/s beside PyTorch (MKL) and numpy (OpenBLAS), same run, same thread count.

Shapes: 2048³ and 1024³, and the products of LeNet-300-100 at batch 128 and 256
(784 → 300 → 100 → 10): forward ``X · Wᵀ``, input gradient ``dY · W`` and weight gradient
``dYᵀ · X``. Every side writes into a preallocated output (``out=``), so page faults of a fresh
result are not timed. numpy's OpenBLAS keeps its own thread pool, which can fight PyTorch's
OpenMP pool on 2 cores (BENCHMARKS.md): numpy is timed with OPENBLAS/OMP settings as the process
got them; if its figures look wrong, rerun with ``--numpy-separately`` semantics by hand.
"""
from __future__ import annotations

import numpy as np

from dropnet import ops


def _cases(quick: bool):
    square = [512] if quick else [2048, 1024]
    for n in square:
        yield f"{n}³ (A·B)", (n, n, n), False, False
    for batch in (128, 256):
        for fan_in, fan_out in ((784, 300), (300, 100), (100, 10)):
            yield f"fwd X·Wᵀ {batch}×{fan_in}→{fan_out}", (batch, fan_out, fan_in), False, True
        for fan_in, fan_out in ((784, 300), (300, 100)):
            yield f"bwd dY·W {batch}×{fan_out}→{fan_in}", (batch, fan_in, fan_out), False, False
            yield f"bwd dYᵀ·X {fan_out}×{fan_in} (K={batch})", (fan_out, fan_in, batch), True, False


def run(ctx) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    for case, (M, N, K), ta, tb in _cases(ctx.quick):
        a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        out = np.empty((M, N), np.float32)
        np_out = np.empty((M, N), np.float32)
        a_op = a.T if ta else a
        b_op = b.T if tb else b

        def validate() -> None:
            ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out)
            ref = a_op.astype(np.float64) @ b_op.astype(np.float64)
            err = np.abs(out - ref).max() / max(1.0, np.abs(ref).max())
            assert err < 1e-5, f"{case}: dropnet differs from float64 numpy by {err}"

        sides = {"dropnet": lambda: ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out)}
        peers = []
        if torch is not None:
            ta_t, tb_t = torch.from_numpy(a), torch.from_numpy(b)
            at = ta_t.t() if ta else ta_t
            bt = tb_t.t() if tb else tb_t
            ot = torch.empty((M, N), dtype=torch.float32)
            sides["torch.mm"] = lambda: torch.mm(at, bt, out=ot)
            peers.append("torch.mm")
        sides["numpy"] = lambda: np.matmul(a_op, b_op, out=np_out)
        peers.append("numpy")
        for t in ctx.threads:
            ctx.compare(f"sgemm {case} M={M} N={N} K={K}", sides, threads=t, work=2.0 * M * N * K / 1e9,
                        unit="GFLOP/s", peers=peers, validate=validate)

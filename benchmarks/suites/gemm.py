"""SGEMM GFLOP/s beside PyTorch (MKL) and numpy (OpenBLAS), same run, same thread count.

Shapes: 2048³ and 1024³, and the products of LeNet-300-100 at batch 128 and 256
(784 → 300 → 100 → 10): forward ``X · Wᵀ``, input gradient ``dY · W`` and weight gradient
``dYᵀ · X``. Every side writes into a preallocated output (``out=``), so page faults of a fresh
result are not timed.

Three thread pools live in this process (dropnet's OpenMP, PyTorch's own OpenMP, numpy's
OpenBLAS), and on 2 cores an idle pool that still spins steals the other pools' cores
(BENCHMARKS.md; OpenBLAS workers busy-wait ~0.1 s after each call). So each case is two
interleaved comparisons: dropnet beside torch.mm with OpenBLAS held at one thread, then dropnet
beside numpy with OpenBLAS at the case's thread count (set through its C API with ctypes). If the
OpenBLAS library cannot be found, the numpy rows run with its default pool and say so.
"""
from __future__ import annotations

import ctypes
import time
from typing import Callable, Optional

import numpy as np

from dropnet import ops


def _openblas_set_threads() -> Optional[Callable[[int], None]]:
    """numpy's OpenBLAS ``set_num_threads``, found among the loaded libraries, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                return lambda n, fn=fn: fn(int(n))
    return None


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
    np.ones((2, 2)) @ np.ones((2, 2))  # loads OpenBLAS so its symbols can be found
    blas_threads = _openblas_set_threads()
    numpy_note = "" if blas_threads is not None else "OpenBLAS pool not controllable: numpy may fight the others"
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

        ours = lambda: ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out)  # noqa: E731
        name = f"sgemm {case} M={M} N={N} K={K}"
        work = 2.0 * M * N * K / 1e9
        if blas_threads is not None:
            blas_threads(1)
        validate()  # once per case: benchmarks validate before they time
        for t in ctx.threads:
            if torch is not None:
                if blas_threads is not None:
                    blas_threads(1)
                ta_t, tb_t = torch.from_numpy(a), torch.from_numpy(b)
                at = ta_t.t() if ta else ta_t
                bt = tb_t.t() if tb else tb_t
                ot = torch.empty((M, N), dtype=torch.float32)
                ctx.compare(name, {"dropnet": ours, "torch.mm": lambda: torch.mm(at, bt, out=ot)}, threads=t,
                            work=work, unit="GFLOP/s", peers=["torch.mm"])
            if blas_threads is not None:
                blas_threads(t)
            ctx.compare(name, {"dropnet ": ours, "numpy": lambda: np.matmul(a_op, b_op, out=np_out)}, threads=t,
                        work=work, unit="GFLOP/s", peers=["numpy"], note=numpy_note)
            if blas_threads is not None:
                blas_threads(1)
                time.sleep(0.2)  # let OpenBLAS workers stop spinning before the next torch comparison

"""SGEMM GFLOP/s beside PyTorch (MKL) and numpy (OpenBLAS), same run, same thread count.

Shapes: 2048³ and 1024³, and the products of LeNet-300-100 at batch 128 and 256
(784 → 300 → 100 → 10): forward ``X · Wᵀ``, input gradient ``dY · W`` and weight gradient
``dYᵀ · X``. Then the fused dense forward ``ops.linear`` (bias, ReLU, dropout) beside PyTorch's
three ops. Then the dense-layer products that skip the zeros of their left operand
(``ops.matmul_skip_zeros``) beside the dense GEMM. Every side writes into a preallocated output (``out=``), so page faults of a fresh
result are not timed.

Three thread pools would share 2 cores (dropnet's and PyTorch's OpenMP, numpy's OpenBLAS), and
OpenBLAS workers busy-wait ~0.1 s after each call, stealing the cores of whatever runs next
(docs/performance.md, protocol). So the numpy comparison runs in a child process started with
``OPENBLAS_THREAD_TIMEOUT=4`` (its workers sleep at once) and ``OPENBLAS_NUM_THREADS`` equal to the
case's thread count, timing dropnet beside numpy interleaved there; the torch comparison runs
here, where OpenBLAS is never called with more than one thread.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
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


def _operands(rng, M, N, K, ta, tb):
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    return a, b


def _validate(case, a, b, ta, tb, out) -> None:
    """Benchmarks validate before they time: dropnet against float64 numpy."""
    ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    err = np.abs(out - ref).max() / max(1.0, np.abs(ref).max())
    assert err < 1e-5, f"{case}: dropnet differs from float64 numpy by {err}"


def run(ctx) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    np.ones((2, 2)) @ np.ones((2, 2))  # loads OpenBLAS so its symbols can be found
    blas_threads = _openblas_set_threads()
    if blas_threads is not None:
        blas_threads(1)  # the float64 references below must not wake an OpenBLAS pool
    rng = np.random.default_rng(0)
    if torch is not None:
        for case, (M, N, K), ta, tb in _cases(ctx.quick):
            a, b = _operands(rng, M, N, K, ta, tb)
            out = np.empty((M, N), np.float32)
            _validate(case, a, b, ta, tb, out)
            at, bt = torch.from_numpy(a), torch.from_numpy(b)
            at = at.t() if ta else at
            bt = bt.t() if tb else bt
            ot = torch.empty((M, N), dtype=torch.float32)
            sides = {"dropnet": lambda: ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out),
                     "torch.mm": lambda: torch.mm(at, bt, out=ot)}
            for t in ctx.threads:
                ctx.compare(f"sgemm {case} M={M} N={N} K={K}", sides, threads=t, work=2.0 * M * N * K / 1e9,
                            unit="GFLOP/s", peers=["torch.mm"])
        run_linear(ctx, torch, rng)
        run_skip_zeros(ctx, torch, rng)
    for t in ctx.threads:
        _numpy_in_child(ctx, t)


def _numpy_in_child(ctx, threads: int) -> None:
    """dropnet beside numpy (OpenBLAS with `threads` threads) in a child process; rows come back as JSON."""
    from .. import harness

    env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="4", OPENBLAS_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "benchmarks.suites.gemm", "--numpy-child", str(threads), str(ctx.repeats)]
    if ctx.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"# gemm numpy comparison failed (threads={threads}):\n{proc.stderr}", flush=True)
        return
    for d in json.loads(proc.stdout.strip().splitlines()[-1]):
        row = harness.Row(**d)
        ctx.rows.append(row)
        print(harness.format_row(row), flush=True)


def _numpy_child_main(argv) -> int:
    import dataclasses

    from .. import harness

    threads, repeats = int(argv[0]), int(argv[1])
    ctx = harness.Context([threads], repeats=repeats, quick="--quick" in argv)
    rng = np.random.default_rng(0)
    for case, (M, N, K), ta, tb in _cases(ctx.quick):
        a, b = _operands(rng, M, N, K, ta, tb)
        out = np.empty((M, N), np.float32)
        np_out = np.empty((M, N), np.float32)
        a_op, b_op = (a.T if ta else a), (b.T if tb else b)
        sides = {"dropnet": lambda: ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out),
                 "numpy": lambda: np.matmul(a_op, b_op, out=np_out)}
        ctx.compare(f"sgemm {case} M={M} N={N} K={K}", sides, threads=threads, work=2.0 * M * N * K / 1e9,
                    unit="GFLOP/s", peers=["numpy"], note="child process, OpenBLAS workers sleep at once")
    sys.stdout.flush()
    print(json.dumps([dataclasses.asdict(r) for r in ctx.rows]))
    return 0


def run_linear(ctx, torch, rng) -> None:
    """The fused dense forward (bias + ReLU + dropout in the GEMM write-back) beside PyTorch's
    ``dropout(relu(linear(x, w, b)))`` (three passes; torch allocates its results, ours writes out=)."""
    batches = (128,) if ctx.quick else (128, 256)
    for batch in batches:
        for fan_in, fan_out in ((784, 300), (300, 100)):
            x = rng.standard_normal((batch, fan_in), dtype=np.float32)
            w = rng.standard_normal((fan_out, fan_in), dtype=np.float32)
            b = rng.standard_normal(fan_out, dtype=np.float32)
            out = np.empty((batch, fan_out), np.float32)
            xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            fn = torch.nn.functional
            sides = {
                "dropnet linear": lambda: ops.linear(x, w, b, activation="relu", dropout=0.5, seed=1, stream=2, out=out),
                "torch": lambda: fn.dropout(fn.relu(fn.linear(xt, wt, bt)), 0.5, training=True),
            }
            for t in ctx.threads:
                ctx.compare(f"linear+relu+dropout(0.5) {batch}×{fan_in}→{fan_out}", sides, threads=t,
                            work=2.0 * batch * fan_in * fan_out / 1e9, unit="GFLOP/s", peers=["torch"],
                            note="GFLOP/s counts the product only")


def run_skip_zeros(ctx, torch, rng) -> None:
    """The products of a dense layer behind ReLU and dropout, whose left operand is mostly zeros,
    with ``ops.matmul_skip_zeros`` beside dropnet's dense GEMM and ``torch.mm`` on the same
    operands: LeNet-300-100 at batch 128, left operand 25 % nonzero (ReLU + dropout 0.5) and 50 %
    (ReLU alone). Where these cross is where ``Dense`` switches (nn/layers.cpp, kSkipZeros*)."""
    forms = [("dW=dZᵀ·X", 128, 300, 784, True, False), ("dW=dZᵀ·H", 128, 100, 300, True, False),
             ("dX=dZ·W", 128, 100, 300, False, False), ("Y=H·Wᵀ", 128, 300, 100, False, True)]
    for name, rows, left, right, ta, tb in forms:
        for density in ((0.25,) if ctx.quick else (0.25, 0.5)):
            a = rng.standard_normal((rows, left), dtype=np.float32)
            a[rng.random((rows, left)) >= density] = 0.0
            if ta:  # a = dZ (rows × out), b = X (rows × in): C = aᵀ·b
                b = rng.standard_normal((rows, right), dtype=np.float32)
                M, N, K = left, right, rows
            elif tb:  # a = H (rows × in), b = W (out × in): C = a·bᵀ
                b = rng.standard_normal((right, left), dtype=np.float32)
                M, N, K = rows, right, left
            else:  # a = dZ (rows × out), b = W (out × in): C = a·b
                b = rng.standard_normal((left, right), dtype=np.float32)
                M, N, K = rows, right, left
            out = np.empty((M, N), np.float32)
            c, skipped = ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=1.0, out=out)
            want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
            assert skipped and np.allclose(c, want, rtol=1e-4, atol=1e-3), name
            at, bt = torch.from_numpy(a), torch.from_numpy(b)
            at, bt = (at.t() if ta else at), (bt.t() if tb else bt)
            ot = torch.empty((M, N), dtype=torch.float32)
            out2 = np.empty((M, N), np.float32)
            sides = {"dropnet skip zeros": lambda: ops.matmul_skip_zeros(a, b, trans_a=ta, trans_b=tb, max_density=1.0,
                                                                         out=out),
                     "dropnet dense": lambda: ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out2),
                     "torch.mm": lambda: torch.mm(at, bt, out=ot)}
            for t in ctx.threads:
                ctx.compare(f"{name} M={M} N={N} K={K}, {density:.0%} nonzero", sides, threads=t,
                            work=2.0 * M * N * K / 1e9, unit="GFLOP/s (dense flops)",
                            peers=["dropnet dense", "torch.mm"])


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--numpy-child":
    raise SystemExit(_numpy_child_main(sys.argv[2:]))

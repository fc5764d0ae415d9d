"""Sparse layer products at 0-98 % unstructured sparsity vs dense and torch.sparse (docs/performance.md, spmm).

Weight W (N, K) pruned at random to each sparsity, batch x (M, K); three products of a layer:
  forward        y  = x @ W.T              dropnet.ops.sparse_linear
  backward input dx = gy @ W               dropnet.ops.sparse_linear_backward_input
  weight grad    dW = (gy.T @ x) at W's stored entries   dropnet.ops.sparse_weight_grad
Peers in the same interleaved run: the dense product with torch.mm and numpy (and dropnet's own
dense GEMM when the build exposes one), and torch.sparse CSR with the transposes a layer needs:
forward ``mm(W_csr, x.T).T``, weight grad ``torch.sparse.sampled_addmm`` (torch's SDDMM). Every
side writes into reused buffers where its API allows.

The backward needs Wᵀ, and the two libraries are timed like for like, in two pairs:
  - Wᵀ made once, outside the timing: torch ``mm(Wᵀ_csr, gy.T).T`` with ``Wᵀ_csr`` built once,
    against dropnet ``sparse_linear(gy, s.transpose())`` (a CSRMatrix of Wᵀ with its own values).
    What a layer whose weights no longer change pays (inference, frozen layers).
  - Wᵀ from W's live values on every call, what a training step needs since the optimizer has just
    changed W: torch ``mm(W_csr.t(), gy.T).T`` against dropnet's
    ``sparse_linear_backward_input(gy, s)``, which gathers W's values into Wᵀ's order each call. The suite ends with the break-even sparsity of each
product against the best dense peer: the lowest sparsity from which the sparse kernel is faster
(linear interpolation between measured sparsities).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import dropnet
from dropnet import sparse
from dropnet.ops import _sparse as sops

SHAPES = [(784, 300, 256), (1024, 1024, 256), (4096, 4096, 64)]  # (in K, out N, batch M)
SPARSITIES = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98]
DENSE_PEERS = ("torch dense", "numpy dense", "dropnet dense")


def _pruned(rng: np.random.Generator, n: int, k: int, sparsity: float) -> np.ndarray:
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[rng.random((n, k)) < sparsity] = 0
    return w


def _dropnet_dense_linear() -> Optional[Callable]:
    """dropnet's own dense x @ W.T if this build exposes it (the GEMM work adds it)."""
    fn = getattr(dropnet.ops, "linear", None)
    if fn is None:
        return None
    try:
        x = np.ones((3, 4), np.float32)
        w = np.arange(20, dtype=np.float32).reshape(5, 4)
        if np.allclose(fn(x, w), x @ w.T):
            return fn
    except Exception:  # an API of another shape: leave the side out rather than guess
        return None
    return None


def _close(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got.astype(np.float64) - ref).max()) if got.size else 0.0
    assert err <= 1e-3 * scale, f"{what}: max error {err} (scale {scale})"


def _break_even(points: List[Tuple[float, float]]) -> str:
    """points: (sparsity, sparse speed / best dense speed), ascending sparsity."""
    if points and points[0][1] >= 1.0:
        return f"<= {points[0][0]:.0%} (faster everywhere measured)"
    for (s0, r0), (s1, r1) in zip(points, points[1:]):
        if r0 < 1.0 <= r1:
            return f"{s0 + (1.0 - r0) * (s1 - s0) / (r1 - r0):.0%}"
    return f"> {points[-1][0]:.0%} (never faster)" if points else "n/a"


def run(ctx) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    dense_linear = _dropnet_dense_linear()
    rng = np.random.default_rng(0)
    shapes = SHAPES[1:2] if ctx.quick else SHAPES
    sparsities = [0.0, 0.9, 0.98] if ctx.quick else SPARSITIES
    summary: Dict[Tuple[str, str, int], List[Tuple[float, float]]] = {}
    for K, N, M in shapes:
        x = rng.standard_normal((M, K)).astype(np.float32)
        gy = rng.standard_normal((M, N)).astype(np.float32)
        y, dx = np.empty((M, N), np.float32), np.empty((M, K), np.float32)
        for sp in sparsities:
            w = _pruned(rng, N, K, sp)
            s = sparse.from_dense(w)
            dw = np.empty(s.nnz, np.float32)
            rows = np.repeat(np.arange(N), np.diff(s.indptr))
            ref_y = x.astype(np.float64) @ w.T.astype(np.float64)
            ref_dx = gy.astype(np.float64) @ w.astype(np.float64)
            ref_dw = (gy.T.astype(np.float64) @ x.astype(np.float64))[rows, s.indices]
            s_t = s.transpose()
            cases = {
                "forward": ({"dropnet sparse": lambda: sops.sparse_linear(x, s, out=y),
                             "numpy dense": lambda: np.matmul(x, w.T, out=y)},
                            lambda: _close(sops.sparse_linear(x, s), ref_y, "forward"), 2.0 * M * N * K),
                "backward input": ({"dropnet sparse": lambda: sops.sparse_linear_backward_input(gy, s, out=dx),
                                    "dropnet sparse, Wᵀ made once": lambda: sops.sparse_linear(gy, s_t, out=dx),
                                    "numpy dense": lambda: np.matmul(gy, w, out=dx)},
                                   lambda: _close(sops.sparse_linear_backward_input(gy, s), ref_dx, "backward"),
                                   2.0 * M * N * K),
                "weight grad": ({"dropnet sparse": lambda: sops.sparse_weight_grad(gy, x, s, out=dw),
                                 "numpy dense": lambda: np.matmul(gy.T, x)},
                                lambda: _close(sops.sparse_weight_grad(gy, x, s), ref_dw, "weight grad"),
                                2.0 * M * N * K),
            }
            if dense_linear is not None:
                cases["forward"][0]["dropnet dense"] = lambda: dense_linear(x, w)
            if torch is not None:
                tx, tgy, tw = torch.from_numpy(x), torch.from_numpy(gy), torch.from_numpy(w)
                ty, tdx, tdw = torch.empty(M, N), torch.empty(M, K), torch.empty(N, K)
                w_csr, wt_csr = tw.to_sparse_csr(), tw.t().contiguous().to_sparse_csr()
                cases["forward"][0]["torch dense"] = lambda: torch.mm(tx, tw.t(), out=ty)
                cases["forward"][0]["torch.sparse csr"] = (
                    lambda: torch.mm(w_csr, tx.t().contiguous()).t().contiguous())
                cases["backward input"][0]["torch dense"] = lambda: torch.mm(tgy, tw, out=tdx)
                cases["backward input"][0]["torch.sparse csr, Wᵀ made once"] = (
                    lambda: torch.mm(wt_csr, tgy.t().contiguous()).t().contiguous())
                if sp >= 0.8:  # its per-call conversion takes seconds on the denser patterns
                    cases["backward input"][0]["torch.sparse csr"] = (
                        lambda: torch.mm(w_csr.t(), tgy.t().contiguous()).t().contiguous())
                cases["weight grad"][0]["torch dense"] = lambda: torch.mm(tgy.t(), tx, out=tdw)
                if s.nnz:
                    cases["weight grad"][0]["torch.sparse csr"] = (
                        lambda: torch.sparse.sampled_addmm(w_csr, tgy.t(), tx, beta=0.0))
            for op, (sides, validate, flops) in cases.items():
                peers = [p for p in (*DENSE_PEERS, "torch.sparse csr", "torch.sparse csr, Wᵀ made once")
                         if p in sides]
                for t in ctx.threads:
                    rows_out = ctx.compare(f"spmm {op} {K}->{N} batch {M} sparsity {sp:.0%}", sides, threads=t,
                                           work=flops / 1e9, unit="dense-equiv GFLOP/s", peers=peers,
                                           validate=validate, note=f"nnz {s.nnz}")
                    med = {r.side: r.median_s for r in rows_out}
                    best_dense = min(med[p] for p in DENSE_PEERS if p in med)
                    summary.setdefault((op, f"{K}->{N} batch {M}", t), []).append(
                        (sp, best_dense / med["dropnet sparse"]))
    print("\n| product | shape | threads | sparse speed / best dense, by sparsity | break-even sparsity |")
    print("| --- | --- | --- | --- | --- |")
    for (op, shape, t), points in summary.items():
        by = ", ".join(f"{sp:.0%}: {r:.2f}×" for sp, r in points)
        print(f"| {op} | {shape} | {t} | {by} | {_break_even(points)} |")

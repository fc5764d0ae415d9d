"""The spmm suite's sparse products at one sparsity, each library timed in its own process.

    PYTHONPATH=python:. python -m benchmarks.experiments.spmm_processes [sparsity] [rounds] [threads]

In one process the thread pools of numpy, torch and dropnet spin against each other on a small
machine, and the in-process suite (``benchmarks.run spmm``) swings by 2x between runs. Here every
round starts one fresh process per library (dropnet, then torch), each builds the same data from
the same seed, warms up and reports the median of 15 calls per product. A round's two processes run
back to back, so the ratio torch / dropnet within a round is the figure a load change disturbs
least; the table gives its median over rounds, beside the median times. The products, like for
like:
  forward          x @ Wᵀ             sparse_linear(x, s)            mm(W_csr, x.T).T
  backward, Wᵀ made once              sparse_linear(gy, s.transpose())   mm(Wᵀ_csr, gy.T).T, Wᵀ_csr built once
  backward, live W  gy @ W            sparse_linear_backward_input(gy, s)  mm(W_csr.t(), gy.T).T
  weight grad      (gy.T @ x) at W's entries   sparse_weight_grad     sparse.sampled_addmm
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable, Dict, List

import numpy as np

SHAPES = [(784, 300, 256), (1024, 1024, 256), (4096, 4096, 64)]  # (in K, out N, batch M), as the suite
PRODUCTS = ["forward", "backward, Wᵀ made once", "backward, live W", "weight grad"]


def median_ms(fn: Callable[[], object], reps: int = 15) -> float:
    """Median milliseconds of `reps` calls after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def child(side: str, sparsity: float, threads: int) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = {}
    for K, N, M in SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((M, K)).astype(np.float32)
        gy = rng.standard_normal((M, N)).astype(np.float32)
        w = rng.standard_normal((N, K)).astype(np.float32)
        w[rng.random((N, K)) < sparsity] = 0
        if side == "torch":
            import torch
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            torch.set_num_threads(threads)
            tx, tgy, tw = torch.from_numpy(x), torch.from_numpy(gy), torch.from_numpy(w)
            w_csr, wt_csr = tw.to_sparse_csr(), tw.t().contiguous().to_sparse_csr()
            fns = [lambda: torch.mm(w_csr, tx.t().contiguous()).t().contiguous(),
                   lambda: torch.mm(wt_csr, tgy.t().contiguous()).t().contiguous(),
                   lambda: torch.mm(w_csr.t(), tgy.t().contiguous()).t().contiguous(),
                   lambda: torch.sparse.sampled_addmm(w_csr, tgy.t(), tx, beta=0.0)]
        else:
            import dropnet
            from dropnet import sparse
            from dropnet.ops import _sparse as sops
            dropnet.set_num_threads(threads)
            s = sparse.from_dense(w)
            s_t = s.transpose()
            y, dx, dw = np.empty((M, N), np.float32), np.empty((M, K), np.float32), np.empty(s.nnz, np.float32)
            fns = [lambda: sops.sparse_linear(x, s, out=y),
                   lambda: sops.sparse_linear(gy, s_t, out=dx),
                   lambda: sops.sparse_linear_backward_input(gy, s, out=dx),
                   lambda: sops.sparse_weight_grad(gy, x, s, out=dw)]
        out[f"{K}->{N} batch {M}"] = {p: median_ms(f) for p, f in zip(PRODUCTS, fns)}
    return out


def main(sparsity: float = 0.9, rounds: int = 3, threads: int = 2) -> None:
    runs: Dict[str, List[Dict[str, Dict[str, float]]]] = {"dropnet": [], "torch": []}
    for _ in range(rounds):
        for side in runs:
            res = subprocess.run([sys.executable, "-m", "benchmarks.experiments.spmm_processes", "--child", side,
                                  str(sparsity), str(threads)], capture_output=True, text=True, check=True)
            runs[side].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"sparsity {sparsity:.0%}, {threads} threads, {rounds} rounds; times: median over rounds of per-process "
          "medians (ms)\n")
    print("| shape | product | dropnet | torch.sparse | torch / dropnet, median of rounds | per-round ratios |")
    print("| --- | --- | --- | --- | --- | --- |")
    for shape in runs["dropnet"][0]:
        for p in PRODUCTS:
            d = [r[shape][p] for r in runs["dropnet"]]
            t = [r[shape][p] for r in runs["torch"]]
            ratios = [b / a for a, b in zip(d, t)]
            print(f"| {shape} | {p} | {statistics.median(d):.3f} | {statistics.median(t):.3f} | "
                  f"{statistics.median(ratios):.2f}× | {', '.join(f'{r:.2f}' for r in ratios)} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))))
    else:
        args = sys.argv[1:]
        main(float(args[0]) if args else 0.9, int(args[1]) if len(args) > 1 else 3,
             int(args[2]) if len(args) > 2 else 2)

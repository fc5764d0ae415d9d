"""Each sparse layer product against dropnet's own dense GEMM of the same shape, one process.

    PYTHONPATH=python:. python -m benchmarks.experiments.sparse_vs_dense [threads]

Shapes of the spmm suite, 90 % and 98 % sparsity, median of 15 calls each into reused buffers:
forward x @ Wᵀ, backward input gy @ W (from W's live values, and from ``s.transpose()`` made
once), weight gradient (gyᵀ @ x) at the stored entries; the dense side is ``ops.matmul`` of the
full product. Prints the speed ratio dense / sparse per product.
"""
from __future__ import annotations

import sys

import numpy as np

import dropnet
from dropnet import ops, sparse
from dropnet.ops import _sparse as sops

from .spmm_processes import median_ms

SHAPES = [(784, 300, 256), (1024, 1024, 256), (4096, 4096, 64)]  # (in K, out N, batch M)


def main(threads: int = 2) -> None:
    dropnet.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print("| shape | sparsity | forward | backward, live W | backward, Wᵀ made once | weight grad |")
    print("| --- | --- | --- | --- | --- | --- |")
    for K, N, M in SHAPES:
        x = rng.standard_normal((M, K)).astype(np.float32)
        gy = rng.standard_normal((M, N)).astype(np.float32)
        w0 = rng.standard_normal((N, K)).astype(np.float32)
        y, dx, dwd = np.empty((M, N), np.float32), np.empty((M, K), np.float32), np.empty((N, K), np.float32)
        dense = [median_ms(lambda: ops.matmul(x, w0, trans_b=True, out=y)),
                 median_ms(lambda: ops.matmul(gy, w0, out=dx)),
                 median_ms(lambda: ops.matmul(gy, w0, out=dx)),
                 median_ms(lambda: ops.matmul(gy, x, trans_a=True, out=dwd))]
        for sp in (0.9, 0.98):
            w = w0.copy()
            w[rng.random((N, K)) < sp] = 0
            s = sparse.from_dense(w)
            s_t = s.transpose()
            dw = np.empty(s.nnz, np.float32)
            times = [median_ms(lambda: sops.sparse_linear(x, s, out=y)),
                     median_ms(lambda: sops.sparse_linear_backward_input(gy, s, out=dx)),
                     median_ms(lambda: sops.sparse_linear(gy, s_t, out=dx)),
                     median_ms(lambda: sops.sparse_weight_grad(gy, x, s, out=dw))]
            cells = " | ".join(f"{d / t:.1f}× ({t:.3f} ms)" for d, t in zip(dense, times))
            print(f"| {K}->{N} batch {M} | {sp:.0%} | {cells} |")
        print(f"| {K}->{N} batch {M} | dense | " + " | ".join(f"{d:.2f} ms" for d in dense) + " |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)

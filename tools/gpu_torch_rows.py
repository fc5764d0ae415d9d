"""PyTorch's rows of tools/gpu_check.sh's benchmark tables, on the GPU that runs the check.

``python tools/gpu_torch_rows.py dropout|conv|gemm OUT.md`` appends markdown rows to OUT.md, in
the columns of the rows dropnet_gpu_tests writes for the same table (--bench, --bench-conv,
--bench-gemm). Every figure is milliseconds per call: the mean of 20 calls after 3 warm-ups,
timed with CUDA events.
"""
from __future__ import annotations

import sys
from typing import Callable, List

import torch
import torch.nn.functional as F


def ms_per_call(fn: Callable[[], object], reps: int = 20) -> float:
    for _ in range(3):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / reps


def dropout_rows() -> List[str]:
    """64 Mi floats, p = 0.5; torch reads x and writes y (its bool mask, when kept for backward, is
    another byte per element), so the bandwidth counts 8 bytes per element."""
    n = 64 << 20
    x = torch.ones(n, device="cuda")
    ms = ms_per_call(lambda: F.dropout(x, 0.5, training=True))
    return [f"| torch.nn.functional.dropout {torch.__version__} | {n} | {ms:.3f} | {n * 8 / (ms * 1e-3) / 1e9:.0f} |\n"]


def conv_rows() -> List[str]:
    """The CNN / VGG layers (3x3, pad 1, batch 128) with cuDNN's defaults (benchmark mode off): fp32,
    fp32 with deterministic algorithms only (what our cuDNN backend asks for), TF32."""
    rows = []
    for mode in ("fp32", "fp32, deterministic", "TF32"):
        torch.backends.cudnn.allow_tf32 = mode == "TF32"
        torch.backends.cudnn.deterministic = mode == "fp32, deterministic"
        for c, f, hw in ((1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14), (64, 128, 7), (128, 128, 7)):
            x = torch.randn(128, c, hw, hw, device="cuda", requires_grad=True)
            w = torch.randn(f, c, 3, 3, device="cuda", requires_grad=True)
            b = torch.randn(f, device="cuda", requires_grad=True)
            dy = torch.randn(128, f, hw, hw, device="cuda")
            with torch.no_grad():
                fwd = ms_per_call(lambda: torch.relu(F.conv2d(x, w, b, padding=1)))

            def fwd_bwd() -> None:
                z = F.conv2d(x, w, b, padding=1)
                torch.autograd.grad(z, (x, w, b), dy)

            both = ms_per_call(fwd_bwd)
            name = f"torch {torch.__version__} F.conv2d (cuDNN, {mode})"
            rows.append(f"| {name} | {c} -> {f}, {hw}x{hw}, batch 128 | {fwd:.3f} | {both:.3f} |\n")
    return rows


def gemm_rows() -> List[str]:
    """The MLP's products at batch 128 (LeNet-300-100: fc1 forward with bias + ReLU, its input and
    weight gradients, fc2 forward) and 1024^3, fp32 with TF32 off (torch's default for matmul): the
    same products and operand layouts as dropnet_gpu_tests --bench-gemm."""
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = "cuda"
    x, w1, b1 = torch.randn(128, 784, device=dev), torch.randn(300, 784, device=dev), torch.randn(300, device=dev)
    dy1, h1 = torch.randn(128, 300, device=dev), torch.randn(128, 784, device=dev)
    w2, b2, h2 = torch.randn(100, 300, device=dev), torch.randn(100, device=dev), torch.randn(128, 300, device=dev)
    a, b = torch.randn(1024, 1024, device=dev), torch.randn(1024, 1024, device=dev)
    out1, outdx = torch.empty(128, 300, device=dev), torch.empty(128, 784, device=dev)
    outdw, out2 = torch.empty(300, 784, device=dev), torch.empty(128, 100, device=dev)
    outsq = torch.empty(1024, 1024, device=dev)
    cases = [
        ("fc1 forward", 128, 300, 784, lambda: torch.relu_(torch.addmm(b1, x, w1.t(), out=out1))),
        ("fc1 input grad", 128, 784, 300, lambda: torch.matmul(dy1, w1, out=outdx)),
        ("fc1 weight grad", 300, 784, 128, lambda: torch.matmul(dy1.t(), h1, out=outdw)),
        ("fc2 forward", 128, 100, 300, lambda: torch.relu_(torch.addmm(b2, h2, w2.t(), out=out2))),
        ("1024^3", 1024, 1024, 1024, lambda: torch.matmul(a, b, out=outsq)),
    ]
    rows = []
    for what, m, n, k, fn in cases:
        ms = ms_per_call(fn)
        rows.append(f"| torch {torch.__version__} matmul / addmm (fp32) | {what} ({m}x{n}x{k}) | {ms:.4f} | "
                    f"{2 * m * n * k / (ms * 1e-3) / 1e9:.0f} |\n")
    return rows


TABLES = {"dropout": dropout_rows, "conv": conv_rows, "gemm": gemm_rows}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TABLES:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(TABLES)} OUT.md")
    rows = TABLES[sys.argv[1]]()
    with open(sys.argv[2], "a") as out:
        out.writelines(rows)

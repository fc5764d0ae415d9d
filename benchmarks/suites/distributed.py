"""Data-parallel steps over MPI at 1 and 2 ranks × 1 thread, beside PyTorch DDP (gloo) on the
same ranks in the same run, and a ring-allreduce model of 8–64 machines.

Each rank count is one ``mpiexec -n R`` job (benchmarks/suites/_distributed_rank.py) in which
every rank holds a dropnet model and a DDP model and times blocks of steps alternately (A B A B).
Same global batch (128) split the same way on both sides; random inputs and labels (timing does
not depend on the values); the models of mlp_epoch (LeNet-300-100 + dropout) and cnn_epoch (small
CNN with batch norm and dropout). dropnet's step = compute (compute_gradients + apply_gradients)
+ allreduce (one MPI_Allreduce of the gradient arena, including waiting for the slower rank).
DDP's compute is measured under ``no_sync()``; DDP overlaps its communication with backward.
The note also gives the allreduce alone (back-to-back, ranks already in step): the rest of
"allreduce/sync" is one rank waiting for the other, which on a shared machine is scheduling.

The model (printed after the table): one rank per machine, per-rank batch 128 (weak scaling),
step = compute measured here at 1 rank + ring allreduce 2(p−1)·α + 2(p−1)/p · bytes / bandwidth,
α = 30 µs per message (TCP over Ethernet; InfiniBand is lower), links 10/25/100 Gb/s at full rate.

Accuracy (not with --quick): LeNet-300-100 for 5 epochs on Fashion-MNIST with ``fit(distributed=
True)`` at 1 and 2 ranks, same global batch 128.

Floors for the record (this machine, 2 ranks × 1 thread): allreduce + sync ≤ 15 % of the small
CNN's step; a 2-rank LeNet step ≥ 2× faster than DDP's 2-rank step; 2-rank accuracy within 0.3
points of 1-rank. Open MPI runs with ``mpi_yield_when_idle`` so that a waiting rank does not spin
on a core the other rank needs (the machines these figures come from are shared).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from ..harness import Row, format_row

ALPHA_S = 30e-6
LINKS_GBPS = (10, 25, 100)
MACHINES = (8, 16, 32, 64)


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               OMPI_MCA_mpi_yield_when_idle="1")
    import dropnet

    # The ranks import the dropnet this process imported, and the benchmarks package from here.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(dropnet.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, root, env.get("PYTHONPATH")) if p)
    return env


def _launch(n: int, *args: str, timeout: int = 900) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        cmd = ["mpiexec", "-n", str(n), "--oversubscribe", sys.executable, "-m", "benchmarks.suites._distributed_rank",
               *args[:1], out, *args[1:]]
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        with open(out) as f:
            return json.load(f)


def ring_allreduce_s(n_bytes: float, p: int, gbps: float, alpha: float = ALPHA_S) -> float:
    """Ring allreduce: reduce-scatter + allgather, 2(p−1) messages of n/p bytes each."""
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n_bytes * 8 / (gbps * 1e9)


def run(ctx) -> None:
    if shutil.which("mpiexec") is None:
        print('# distributed: mpiexec not found (pip install "dropnet[mpi]"); suite skipped')
        return
    try:
        import torch  # noqa: F401
        ddp = ["--ddp"]
    except ImportError:
        ddp = []
    repeats = "3" if ctx.quick else str(ctx.repeats)
    compute_1 = {}
    for model in ("lenet", "cnn"):
        block = "4" if model == "cnn" else "20"
        for n in (1, 2):
            r = _launch(n, "steps", "--model", model, "--block", block, "--repeats", repeats, *ddp)
            step = r["dropnet step"]
            med = r["medians"]
            if n == 1:
                compute_1[model] = (med["dropnet compute"], r["grad floats"])
            share = med["dropnet allreduce"] / med["dropnet step"]
            note = (f"compute {med['dropnet compute'] * 1e3:.2f} ms + allreduce/sync "
                    f"{med['dropnet allreduce'] * 1e3:.2f} ms ({100 * share:.1f} % of the step; the allreduce "
                    f"alone, ranks in step: {med['allreduce alone'] * 1e3:.2f} ms); "
                    f"{r['grad floats']} gradient floats, {r['rows per rank']} rows per rank")
            case = f"{'LeNet-300-100' if model == 'lenet' else 'small CNN'} step, global batch 128, {n} rank(s)"
            ratios = {}
            rows = []
            fx = r["fixed-order step"]
            rows.append(Row(case, 1, "dropnet MPI FixedOrder(4)", med["fixed-order step"], min(fx), max(fx), None, "",
                            {"dropnet MPI": med["dropnet step"] / med["fixed-order step"]},
                            "4 micro-shards gathered and added in order: same bits at 1, 2, 4 ranks"))
            if ddp:
                ddp_med = med["ddp step"]
                ratios = {"ddp (gloo)": ddp_med / med["dropnet step"]}
                d = r["ddp step"]
                rows.append(Row(case, 1, "torch DDP (gloo)", ddp_med, min(d), max(d), None, "", {},
                                f"compute (no_sync) {med['ddp compute'] * 1e3:.2f} ms"))
            rows.insert(0, Row(case, 1, "dropnet MPI", med["dropnet step"], min(step), max(step), None, "", ratios,
                               note))
            for row in rows:
                ctx.rows.append(row)
                print(format_row(row), flush=True)

    print("\n# Modelled weak scaling: one rank per machine, batch 128 per machine, step = compute measured "
          f"above at 1 rank × 1 thread + ring allreduce (α = {ALPHA_S * 1e6:.0f} µs).")
    print("| model | machines | " + " | ".join(f"{g} Gb/s: step, efficiency" for g in LINKS_GBPS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in LINKS_GBPS) + " |")
    for model, (compute, floats) in compute_1.items():
        for p in MACHINES:
            cells = []
            for g in LINKS_GBPS:
                t = compute + ring_allreduce_s(4 * floats, p, g)
                cells.append(f"{t * 1e3:.1f} ms, {100 * compute / t:.0f} %")
            print(f"| {model} | {p} | " + " | ".join(cells) + " |")

    if ctx.quick:
        return
    acc = {n: _launch(n, "accuracy", "--model", "lenet", "--epochs", "5") for n in (1, 2)}
    diff = 100 * (acc[2]["accuracy"] - acc[1]["accuracy"])
    print(f"\n# Fashion-MNIST, LeNet-300-100 + dropout, 5 epochs, global batch 128: test accuracy 1 rank "
          f"{100 * acc[1]['accuracy']:.2f} % ({acc[1]['seconds per epoch']:.1f} s/epoch), 2 ranks "
          f"{100 * acc[2]['accuracy']:.2f} % ({acc[2]['seconds per epoch']:.1f} s/epoch); "
          f"difference {diff:+.2f} points (floor: within 0.3)", flush=True)

"""One rank of the ``distributed`` suite, started by it with ``mpiexec -n R python -m
benchmarks.suites._distributed_rank MODE OUT ...``; rank 0 writes OUT (JSON).

steps:    the same global batches through dropnet's split step (shard → compute_gradients →
          one allreduce of the gradient arena → apply_gradients), through dropnet with
          FixedOrder(4) and through PyTorch DDP (gloo), in alternating blocks (A B A B ...).
          dropnet's step is split into compute (the two native halves) and allreduce (the MPI_Allreduce call, including waiting for the slower
          rank); DDP's compute is a step under ``no_sync()`` (no gradient communication) and its
          communication the difference to a normal step (DDP overlaps it with backward).
accuracy: ``fit(distributed=True)`` for some epochs on Fashion-MNIST, then the test accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

import dropnet
from dropnet import distributed as dist


def _models(name: str, seed: int):
    from . import cnn_epoch, mlp_epoch

    if name == "lenet":
        return mlp_epoch.dropnet_model(seed), mlp_epoch.torch_mlp(seed), (784,)
    return cnn_epoch.dropnet_model(seed), cnn_epoch.torch_cnn(seed), (1, 28, 28)


def _ddp(tm, rank: int, size: int, port: int):
    import torch
    import torch.distributed as td

    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    return torch.nn.parallel.DistributedDataParallel(tm.net)


def steps(a) -> dict:
    import torch

    rank, size = dist.rank(), dist.size()
    model, tm, shape = _models(a.model, 0)
    rng = np.random.default_rng(0)
    n = a.batch * a.block
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    model.predict(x[:2])
    dist.broadcast_model(model)
    net = model.network
    grad = net.grad_buffer
    ddp = _ddp(tm, rank, size, a.port) if a.ddp else None
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    opt = tm.opt if ddp is not None else None
    comm = dist.comm()

    def dropnet_block():
        compute = reduce = 0.0
        comm.Barrier()
        t_start = time.perf_counter()
        for s in range(a.block):
            lo = s * a.batch
            r0, r1 = dist.shard_bounds(a.batch)
            t0 = time.perf_counter()
            net.compute_gradients(x[lo + r0:lo + r1], y[lo + r0:lo + r1], r0, a.batch)
            t1 = time.perf_counter()
            dist.allreduce_(grad)
            t2 = time.perf_counter()
            net.apply_gradients()
            t3 = time.perf_counter()
            compute += (t1 - t0) + (t3 - t2)
            reduce += t2 - t1
        total = time.perf_counter() - t_start
        return total / a.block, compute / a.block, reduce / a.block

    gathered = np.empty((4, grad.size), dtype=np.float32)

    def fixed_block():
        """The same steps with gradients of 4 micro-shards added in a fixed order (FixedOrder)."""
        comm.Barrier()
        t_start = time.perf_counter()
        for s in range(a.block):
            dist.step(model, x, y, slice(s * a.batch, (s + 1) * a.batch), 4, workspace=gathered)
        comm.Barrier()
        return (time.perf_counter() - t_start) / a.block

    def ddp_block(sync: bool):
        comm.Barrier()
        t_start = time.perf_counter()
        for s in range(a.block):
            lo = s * a.batch
            r0, r1 = dist.shard_bounds(a.batch)
            opt.zero_grad(set_to_none=True)
            if sync:
                loss = torch.nn.functional.cross_entropy(ddp(tx[lo + r0:lo + r1]), ty[lo + r0:lo + r1])
                loss.backward()
            else:
                with ddp.no_sync():
                    loss = torch.nn.functional.cross_entropy(ddp(tx[lo + r0:lo + r1]), ty[lo + r0:lo + r1])
                    loss.backward()
            opt.step()
        comm.Barrier()
        return (time.perf_counter() - t_start) / a.block

    for _ in range(2):  # warm-up
        dropnet_block()
        fixed_block()
        if ddp is not None:
            ddp_block(True)
            ddp_block(False)
    res = {"dropnet step": [], "dropnet compute": [], "dropnet allreduce": [], "fixed-order step": [],
           "ddp step": [], "ddp compute": []}
    for _ in range(a.repeats):
        step, compute, reduce = dropnet_block()
        # Every rank's view of the step counts; the slowest rank sets the pace.
        step, compute, reduce = (comm.allreduce(v, op=_max()) for v in (step, compute, reduce))
        res["dropnet step"].append(step)
        res["dropnet compute"].append(compute)
        res["dropnet allreduce"].append(reduce)
        res["fixed-order step"].append(fixed_block())
        if ddp is not None:
            res["ddp step"].append(ddp_block(True))
            res["ddp compute"].append(ddp_block(False))
    # The transport alone: back-to-back allreduces of an arena-sized buffer, ranks already in step
    # (what the step's allreduce would cost if no rank ever waited for the other).
    probe = np.ones_like(grad)
    bare = []
    for _ in range(5 * a.repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        dist.allreduce_(probe)
        bare.append(comm.allreduce(time.perf_counter() - t0, op=_max()))
    res["allreduce alone"] = bare
    res["grad floats"] = int(grad.size)
    res["rows per rank"] = a.batch // size
    return res


def _max():
    from mpi4py import MPI

    return MPI.MAX


def accuracy(a) -> dict:
    from dropnet import datasets

    flatten = a.model == "lenet"
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist(flatten=flatten)
    if not flatten:
        x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)
    model, _, _ = _models(a.model, 0)
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=a.epochs, batch_size=a.batch, seed=0, verbose=0, distributed=True)
    took = time.perf_counter() - t0
    acc = float(np.mean(model.predict(x_test, distributed=True).argmax(axis=1) == y_test))
    return {"accuracy": acc, "seconds per epoch": took / a.epochs}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["steps", "accuracy"])
    p.add_argument("out")
    p.add_argument("--model", choices=["lenet", "cnn"], default="lenet")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--block", type=int, default=10, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--ddp", action="store_true")
    p.add_argument("--port", type=int, default=29533)
    a = p.parse_args()
    dropnet.set_num_threads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        a.ddp = False
    with dist.abort_on_error(a.mode):
        res = steps(a) if a.mode == "steps" else accuracy(a)
    if dist.is_main():
        res["ranks"] = dist.size()
        res["medians"] = {k: statistics.median(v) for k, v in res.items() if isinstance(v, list) and v}
        with open(a.out, "w") as f:
            json.dump(res, f)
    if a.mode == "steps" and a.ddp:
        import torch.distributed as td

        td.destroy_process_group()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())

"""Two builds of dropnet, same workloads, alternating fresh processes: is B slower than A?

    python -m benchmarks.experiments.ab_builds OLD/python NEW/python [--rounds 7] [--threads 2]

Each round runs every workload once in a process importing build A, then once in a process
importing build B (A B A B ...: drift hits both), each timing the fastest of a few warm calls
(on a shared machine the minimum is the figure least disturbed by others' load). It
prints per workload the median over rounds of B's time ÷ A's, with min and max. Workloads (the
hot parts of the ``train_step``, ``mlp_epoch`` and ``cnn_epoch`` suites at their shapes):
  mlp_sgd_step   LeNet-300-100 + dropout 0.5, SGD momentum, batch 128, one native train_step
  mlp_adam_epoch the same network with Adam, fit() over 8192 random 784-pixel rows, batch 128
  cnn_epoch      the cnn_epoch suite's CNN (two 3x3 convs with BN, dropout), fit() over 1024 images
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent(r"""
    import json, sys, time
    import numpy as np
    import dropnet
    from dropnet import layers, optim
    dropnet.set_num_threads(int(sys.argv[1]))
    rng = np.random.default_rng(0)

    def med(f, n):  # the fastest of n warm calls: the least disturbed by other load on the machine
        f()
        ts = []
        for _ in range(n):
            t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
        return float(np.min(ts))

    out = {}
    net = dropnet._core.nn.Network(
        [{"type": "dense", "units": 300, "activation": "relu", "dropout": 0.5},
         {"type": "dense", "units": 100, "activation": "relu", "dropout": 0.5},
         {"type": "dense", "units": 10, "activation": "softmax"}], (784,), "sparse_categorical_crossentropy", 0)
    net.set_optimizer({"type": "sgd", "lr": 0.01, "momentum": 0.9})
    x = rng.random((128, 784), dtype=np.float32); y = rng.integers(0, 10, 128).astype(np.int64)
    out["mlp_sgd_step"] = med(lambda: net.train_step(x, y), 200)

    xs = rng.random((8192, 784), dtype=np.float32); ys = rng.integers(0, 10, 8192)
    m = dropnet.Sequential([layers.Input((784,)), layers.Dense(300, activation="relu"), layers.Dropout(0.5),
                            layers.Dense(100, activation="relu"), layers.Dropout(0.5),
                            layers.Dense(10, activation="softmax")], seed=0)
    m.compile(optimizer=optim.Adam(lr=1e-3), loss="sparse_categorical_crossentropy", metrics=[])
    out["mlp_adam_epoch"] = med(lambda: m.fit(xs, ys, epochs=1, batch_size=128, verbose=0), 5)

    xi = rng.random((1024, 1, 28, 28), dtype=np.float32); yi = rng.integers(0, 10, 1024)
    c = dropnet.Sequential([layers.Conv2D(32, 3, padding="same"), layers.BatchNormalization(),
                            layers.Activation("relu"), layers.MaxPool2D(2),
                            layers.Conv2D(64, 3, padding="same"), layers.BatchNormalization(),
                            layers.Activation("relu"), layers.MaxPool2D(2), layers.Flatten(),
                            layers.Dense(128, activation="relu"), layers.Dropout(0.5),
                            layers.Dense(10, activation="softmax")], input_shape=(1, 28, 28), seed=0)
    c.compile(optimizer=optim.Adam(lr=1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy", metrics=[])
    out["cnn_epoch"] = med(lambda: c.fit(xi, yi, epochs=1, batch_size=128, verbose=0), 3)
    print(json.dumps(out))
""")


def run_once(python_dir: str, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=python_dir, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, "-c", WORKER, str(threads)], env=env, capture_output=True, text=True,
                         check=True, timeout=900)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="python/ directory of build A (the baseline)")
    p.add_argument("b", help="python/ directory of build B")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    ratios: dict = {}
    for r in range(args.rounds):
        ta, tb = run_once(args.a, args.threads), run_once(args.b, args.threads)
        for k in ta:
            ratios.setdefault(k, []).append(tb[k] / ta[k])
        print(f"round {r}: " + ", ".join(f"{k} A {ta[k] * 1e3:.2f} ms B {tb[k] * 1e3:.2f} ms" for k in ta), flush=True)
    print(f"\n| workload | B ÷ A median | min | max |  ({args.rounds} rounds, {args.threads} threads)\n| --- | --- | --- | --- |")
    for k, v in ratios.items():
        v = sorted(v)
        print(f"| {k} | {v[len(v) // 2]:.3f} | {v[0]:.3f} | {v[-1]:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

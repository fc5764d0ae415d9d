"""Peak memory of training: each library in its own fresh process, LeNet-300-100, the cnn_epoch
CNN and a 6-conv VGG-style net (benchmarks/suites/_models.py), batch 128.

Each worker imports its library, loads the whole Fashion-MNIST training set as float32 (188 MB;
random data of the same shape if the dataset is not installed), then trains ``STEPS`` batches
with Adam, and reports from /proc/self/status its resident set after the data was loaded
(``base``) and its peak (``VmHWM``). The data therefore counts on both sides, as do the imported
libraries; ``training`` = peak − base is what the model, its activations, gradients and optimizer
state add. Memory does not depend on how many batches run (buffers are reused from the second
step on in both libraries), so a few dozen steps stand for an epoch.

Run: ``python -m benchmarks.run memory --threads 2``. Floor (issue record): dropnet's peak ≤ 0.5×
PyTorch's on the CNN, data counted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

STEPS, BATCH = 30, 128


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _data():
    import numpy as np

    try:
        from dropnet import datasets

        (x, y), _ = datasets.fashion_mnist()
        source = "fashion_mnist"
    except Exception:  # the dataset package is not installed: same shape, random values
        rng = np.random.default_rng(0)
        x, y, source = rng.random((60000, 28, 28), dtype=np.float32), rng.integers(0, 10, 60000), "random"
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
    return x, np.asarray(y, dtype=np.int64), source


def worker(lib: str, name: str, steps: int, threads: int) -> dict:
    """Runs in the child process: trains `steps` batches of model `name` with library `lib`."""
    import numpy as np

    if lib == "dropnet":
        import dropnet

        dropnet.set_num_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    x, y, source = _data()
    # Loading went through temporaries (uint8 -> float32): reset the peak to the current resident
    # set (Linux >= 4.0), so VmHWM below is the peak of training with the data resident.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kb("VmRSS")
    n = min(len(x), steps * BATCH)
    if lib == "dropnet":
        from benchmarks.suites._models import dropnet_model

        model = dropnet_model(name, seed=0)
        model.fit(x[:n], y[:n], epochs=1, batch_size=BATCH, seed=0, verbose=0)
        finite = all(np.isfinite(w).all() for w in model.get_weights())
    else:
        import torch

        from benchmarks.suites._models import torch_builder
        from benchmarks.suites._torch_peer import TorchClassifier

        model = TorchClassifier(torch_builder(name), 0, BATCH)
        model.fit_epoch(torch.from_numpy(x[:n]), torch.from_numpy(y[:n]))
        finite = all(bool(torch.isfinite(p).all()) for p in model.net.parameters())
    return {"base_mb": base / 1024, "peak_mb": _status_kb("VmHWM") / 1024, "finite": finite, "data": source}


def measure(lib: str, name: str, steps: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH")] if p)
    out = subprocess.run([sys.executable, "-m", "benchmarks.suites.memory", lib, name, str(steps), str(threads)],
                         env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"memory worker {lib} {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx) -> None:
    try:
        import torch  # noqa: F401

        libs = ["dropnet", "torch"]
    except ImportError:
        libs = ["dropnet"]
    steps = 5 if ctx.quick else STEPS
    threads = max(ctx.threads)
    lines = [f"| model | library | base RSS (MB) | peak RSS (MB) | training adds (MB) | peak ratio dropnet ÷ torch |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in ("lenet", "cnn", "vgg"):
        got = {lib: measure(lib, name, steps, threads) for lib in libs}
        for lib, r in got.items():
            if not r["finite"]:
                raise RuntimeError(f"{lib} {name}: non-finite weights after training; the run is not valid")
            ratio = f"{got['dropnet']['peak_mb'] / got['torch']['peak_mb']:.2f}" if "torch" in got else ""
            line = (f"| {name} | {lib} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} | {r['peak_mb'] - r['base_mb']:.0f} | "
                    f"{ratio if lib == 'dropnet' else ''} |")
            lines.append(line)
            print(line, flush=True)
    print(f"# memory: {steps} steps of batch {BATCH}, {threads} threads, each library in its own process, "
          f"data: {got['dropnet']['data']}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    lib_, name_, steps_, threads_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(worker(lib_, name_, steps_, threads_)))

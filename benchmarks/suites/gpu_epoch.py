"""Training epochs on a GPU (a machine with an NVIDIA GPU and PyTorch with CUDA): dropnet
``Sequential(..., device="cuda").fit`` beside the same model trained by PyTorch on the same GPU.

Rows (Fashion-MNIST, batch 128, the models and recipe of ``_models``: Adam lr 1e-3, eps 1e-7):

- LeNet-300-100 + dropout 0.5: dropnet fit, the torch eager loop, and the torch loop with each
  whole step captured as a CUDA graph and replayed (``_torch_peer.GraphedClassifier``; a note
  says why where capture fails);
- the small CNN of cnn_epoch: dropnet fit, the torch eager loop;
- LeNet pruned to 90 % (the masks of the sparse_train suite), one training step: sparse execution
  (cuSPARSE) beside the dense-masked step on the device; where the device network refuses them,
  the dense step alone with a note saying so.

Same on both sides: the model, the initial weights (torch's draw copied with ``set_weights``; the
graphed peer's own draw after its warm-up steps), the data order of ``fit(seed=0)``, float32.
Data: torch's x and y are resident on the GPU (each batch an ``index_select`` there); dropnet's fit
takes host arrays and copies each batch in (docs/design.md, "Devices: one network, two backends").
Every torch side ends with ``torch.cuda.synchronize()``; dropnet's fit returns after its last
step's losses are copied back, which waits for the GPU.

One call = one epoch over ``SAMPLES`` training images (15360 = 120 full batches, a quarter of the
60000-image epoch, so the suite fits the GPU check's time budget; ``--quick``: 2048). Seconds per
full epoch are the median times 60000 / SAMPLES (the full epoch's last batch is partial; these
are all full). Without the dataset (``DROPNET_DATA``, /usr/share/datasets) it times random images
of the same shapes and says so in the row. Without a usable GPU the suite prints why and records
nothing.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

import dropnet
from dropnet import datasets

from . import _models
from ._pruned_step import check_sparse_step
from ._torch_peer import GraphedClassifier, TorchClassifier

SAMPLES, QUICK_SAMPLES, BATCH, SEED = 15360, 2048, 128, 1
SPARSITY = 0.9
PRUNED_PARAMS = (0, 2, 4)  # LeNet's three Dense weights in the native network (Flatten has none)


def unavailable_reason() -> Optional[str]:
    """Why the suite cannot run here, or None."""
    reason = dropnet.cuda.unavailable_reason()
    if reason is not None:
        return reason
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed here (the suite's peer)"
    if not torch.cuda.is_available():
        return "PyTorch here has no usable CUDA device (the suite's peer)"
    return None


def run(ctx) -> None:
    reason = unavailable_reason()
    if reason is not None:
        print(f"# gpu_epoch suite skipped: {reason}", flush=True)
        return
    import torch

    n = QUICK_SAMPLES if ctx.quick else SAMPLES
    x, y, data = training_data(n)
    run_on(ctx, x, y, "cuda", "cuda", graphs=True, label=f"{data}, on {torch.cuda.get_device_name()}")


def training_data(n: int):
    """The first n Fashion-MNIST training images (N, 1, 28, 28) and labels, and what they are. A GPU
    machine may lack the dataset: then uniform random images and labels of the same shapes (the
    times do not depend on the pixel values), said in the row."""
    try:
        (x, y), _ = datasets.fashion_mnist()
        return x.reshape(-1, 1, 28, 28)[:n], y[:n], "Fashion-MNIST"
    except FileNotFoundError as e:
        print(f"# gpu_epoch: {e}; timing on random data", flush=True)
        rng = np.random.default_rng(0)
        return (rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64),
                "random data (Fashion-MNIST not found)")


def _epoch_sides(ctx, name: str, x, y, dn_device: str, torch_device: str, graphs: bool, label: str) -> None:
    """One compare: dropnet fit on dn_device against the torch loop on torch_device (and, with
    graphs, the CUDA-graph loop)."""
    import torch

    sync = torch.cuda.synchronize if torch_device.startswith("cuda") else (lambda: None)
    tx, ty = torch.from_numpy(x).to(torch_device), torch.from_numpy(y).to(torch_device)
    peer = TorchClassifier(_models.torch_builder(name), SEED, BATCH, device=torch_device)
    model = _models.dropnet_model(name, SEED, device=dn_device)
    model.set_weights(peer.weights())
    done = [0]

    def dropnet_epoch() -> None:
        model.fit(x, y, epochs=done[0] + 1, initial_epoch=done[0], batch_size=BATCH, seed=0, verbose=0)
        done[0] += 1

    def torch_epoch(p) -> None:
        p.fit_epoch(tx, ty)
        sync()

    def validate() -> None:
        # Both sides start from the same weights, on their devices.
        for a, b in zip(model.get_weights(), peer.weights()):
            assert np.array_equal(a, b), "dropnet and torch start from different weights"

    sides = {"dropnet fit": dropnet_epoch, "torch eager": lambda: torch_epoch(peer)}
    peers = ["torch eager"]
    note = f"data on device for torch, host arrays for dropnet; s/epoch = median x {60000 / len(x):.3g}"
    if graphs:
        try:
            graphed = GraphedClassifier(_models.torch_builder(name), SEED, BATCH, tx, ty, device=torch_device)
            sync()
            sides["torch CUDA graph"] = lambda: torch_epoch(graphed)
            peers.append("torch CUDA graph")
        except Exception as e:  # capture is the peer's feature: its failure is a note, not the suite's
            note += f"; torch CUDA graph capture failed: {type(e).__name__}: {e}"
            print(f"# gpu_epoch: {name}: torch CUDA graph capture failed: {type(e).__name__}: {e}", flush=True)
    ctx.compare(f"{name} epoch ({len(x)} samples, batch {BATCH}) {label}", sides, threads=ctx.threads[0],
                peers=peers, validate=validate, note=note)


def _pruned_rows(ctx, x, y, dn_device: str, label: str) -> None:
    """LeNet at SPARSITY: sparse against dense training steps on the device, or the dense step with
    the device network's refusal as the note."""
    from .sparse_train import make_masks

    masks = make_masks(SPARSITY)
    xb, yb = x[:BATCH], y[:BATCH]

    def make(mode: str):
        model = _models.dropnet_model("lenet", SEED, device=dn_device)
        for i, m in zip(PRUNED_PARAMS, masks):
            model.network.set_mask(i, m)
        model.set_sparse_execution(mode)
        return model

    case = f"pruned lenet {round(SPARSITY * 100)}% step (batch {BATCH}) {label}"
    try:
        sparse, dense = make("on"), make("off")
    except (ValueError, RuntimeError) as e:
        dense = _models.dropnet_model("lenet", SEED, device=dn_device)
        note = f"sparse execution refused on device {dn_device!r}: {e}"
        print(f"# gpu_epoch: {note}", flush=True)
        ctx.compare(case, {"dropnet dense (unpruned)": lambda: dense.network.train_step(xb, yb)},
                    threads=ctx.threads[0], note=note)
        return
    sides = {"dropnet sparse": lambda: sparse.network.train_step(xb, yb),
             "dropnet dense-masked": lambda: dense.network.train_step(xb, yb)}

    def validate() -> None:
        # One step each way from the same weights: the same gradients up to summation order.
        check_sparse_step(lambda _masks, mode: make({"sparse": "on", "dense": "off"}[mode]).network, masks, xb, yb,
                          rtol=1e-4, atol_scale=1e-5)

    note = "sparse: cuSPARSE through the device backend ('auto' runs dense on a device: no break-even there)"
    if dn_device == "cpu":
        sparse.network.train_step(xb, yb)
        be = ", ".join(f"layer {r['layer']}: {r['break_even_density']}" for r in sparse.sparse_info())
        note = f"break-even density {be}"
    ctx.compare(case, sides, threads=ctx.threads[0], peers=["dropnet dense-masked"], validate=validate, note=note)


def run_on(ctx, x: np.ndarray, y: np.ndarray, dn_device: str, torch_device: str, graphs: bool, label: str,
           cases=("lenet", "cnn", "pruned")) -> None:
    """The suite's rows with dropnet on dn_device and torch on torch_device (the tests run this with
    the simulated device and torch on the CPU)."""
    for name in cases:
        if name == "pruned":
            _pruned_rows(ctx, x, y, dn_device, label)
        else:
            _epoch_sides(ctx, name, x, y, dn_device, torch_device, graphs, label)

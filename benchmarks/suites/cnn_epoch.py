"""A small CNN with batch norm and dropout on Fashion-MNIST: seconds per epoch and test accuracy,
dropnet ``Sequential.fit`` beside the same model in PyTorch.

Same on both sides: input (1, 28, 28) NCHW; conv 3x3-32 ("same" padding, i.e. PyTorch padding=1)
-> batch norm -> ReLU -> max pool 2 -> conv 3x3-64 (same) -> batch norm -> ReLU -> max pool 2 ->
flatten (3136) -> dense 128 ReLU -> dropout 0.5 -> dense 10; batch norm momentum 0.1 (PyTorch
convention), eps 1e-5; softmax crossentropy; Adam(lr=1e-3, betas 0.9/0.999, eps=1e-7); batch 128
with the last partial batch; the same data order (epoch e uses
``numpy.random.default_rng([seed, e]).permutation``); float32; the same thread count. Timing:
the same initial weights (torch's draw, copied into dropnet with ``set_weights``: the layouts are
identical). Accuracy: each library's own default initialisation (the same distribution,
U(±1/sqrt(fan_in)) for weights and biases, drawn by each library's generator). What differs:
those draws and the dropout masks (Philox streams vs torch's generator).

Per epoch timing: one call = one full epoch (``fit(epochs=1)`` vs the torch loop), interleaved.
Accuracy: fresh models trained ``ACC_EPOCHS`` epochs each (all threads), evaluated on the test set.
``--quick``: 4096 training samples for timing, 1 accuracy epoch on 10000 samples.
Floors for the record: >= 1.0x PyTorch's seconds per epoch, >= 91.5 % test accuracy in 10 epochs.
"""
from __future__ import annotations

import time

import numpy as np

import dropnet
from dropnet import datasets, layers, optim
from dropnet.models import Sequential

from ._torch_peer import TorchClassifier

SEED = 0
BATCH = 128
ACC_EPOCHS = 10


def dropnet_model(seed: int) -> Sequential:
    m = Sequential([layers.Conv2D(32, 3, padding="same"), layers.BatchNormalization(), layers.Activation("relu"),
                    layers.MaxPool2D(2),
                    layers.Conv2D(64, 3, padding="same"), layers.BatchNormalization(), layers.Activation("relu"),
                    layers.MaxPool2D(2),
                    layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
                    layers.Dense(10, activation="softmax")], input_shape=(1, 28, 28), seed=seed)
    m.compile(optimizer=optim.Adam(lr=1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy", metrics=[])
    return m


def torch_cnn(seed: int):
    """The same model and recipe in PyTorch."""
    def build(nn):
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32, momentum=0.1, eps=1e-5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64, momentum=0.1, eps=1e-5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))

    return TorchClassifier(build, seed, BATCH)


def run(ctx) -> None:
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist()
    x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)
    epochs_acc = ACC_EPOCHS
    x_acc, y_acc = x_train, y_train
    if ctx.quick:
        x_acc, y_acc, epochs_acc = x_train[:10000], y_train[:10000], 1
        x_train, y_train = x_train[:4096], y_train[:4096]
    try:
        import torch
    except ImportError:
        torch = None

    epochs_done = {}

    def dropnet_epochs(model: Sequential, x, y, n: int) -> None:
        """n more epochs; initial_epoch keeps the data order of an uninterrupted run."""
        done = epochs_done.get(id(model), 0)
        model.fit(x, y, epochs=done + n, initial_epoch=done, batch_size=BATCH, seed=SEED, verbose=0)
        epochs_done[id(model)] = done + n

    # Accuracy first, with all threads: fresh models trained epochs_acc epochs each.
    ctx.set_threads(max(ctx.threads))
    tm = torch_cnn(SEED) if torch is not None else None
    t0 = time.perf_counter()
    dn = dropnet_model(SEED)  # dropnet's own default initialisation (torch_uniform, its own draw)
    dropnet_epochs(dn, x_acc, y_acc, epochs_acc)
    dn_s = (time.perf_counter() - t0) / epochs_acc
    dn_acc = float(np.mean(dn.predict(x_test).argmax(axis=1) == y_test))
    note = f"test acc after {epochs_acc} ep on {len(x_acc)}: dropnet {dn_acc:.4f}"
    if tm is not None:
        t0 = time.perf_counter()
        for _ in range(epochs_acc):
            tm.fit_epoch(torch.from_numpy(x_acc), torch.from_numpy(y_acc))
        tt_s = (time.perf_counter() - t0) / epochs_acc
        t_acc = tm.accuracy(torch.from_numpy(x_test), torch.from_numpy(y_test))
        note += f", torch {t_acc:.4f}"
        print(f"# cnn_epoch accuracy run ({max(ctx.threads)} threads, {len(x_acc)} samples): dropnet {dn_acc:.4f} "
              f"at {dn_s:.2f} s/epoch, torch {t_acc:.4f} at {tt_s:.2f} s/epoch", flush=True)
    else:
        print(f"# cnn_epoch accuracy run: dropnet {dn_acc:.4f} at {dn_s:.2f} s/epoch", flush=True)

    def validate() -> None:
        assert 0.0 <= dn_acc <= 1.0 and all(np.isfinite(w).all() for w in dn.get_weights() + dn.get_state())

    if torch is not None:
        tx, ty = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for t in ctx.threads:
        model = dropnet_model(SEED + 1)
        sides = {"dropnet fit": lambda model=model: dropnet_epochs(model, x_train, y_train, 1)}
        peers = []
        if torch is not None:
            tm_t = torch_cnn(SEED + 1)
            model.set_weights(tm_t.weights())
            sides["torch loop"] = lambda tm_t=tm_t: tm_t.fit_epoch(tx, ty)
            peers = ["torch loop"]
        ctx.compare(f"small CNN (BN, dropout) epoch ({len(x_train)} samples, batch {BATCH})", sides, threads=t,
                    peers=peers, validate=validate, note=note)
    dropnet.set_num_threads(max(ctx.threads))

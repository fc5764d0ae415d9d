"""Test accuracy of the mlp_epoch recipe (LeNet-300-100, dropout 0.5, Adam 1e-3, 20 epochs, full
Fashion-MNIST) under variants of what the recipe leaves open, for several seeds.

    PYTHONPATH=python:. python -m benchmarks.experiments.mlp_recipe_variants default 0,1,2
    BATCH=256 PYTHONPATH=python:. python -m benchmarks.experiments.mlp_recipe_variants he 0,1,2

Variants: default (torch_uniform init), he, glorot, std (inputs standardised by the training
mean and std), std_pix (per pixel). BATCH sets the batch size (default 128).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from dropnet import datasets, layers, optim
from dropnet.models import Sequential

INITS = {"default": None, "he": "he_uniform", "glorot": "glorot_uniform", "std": None, "std_pix": None}


def model(seed: int, init) -> Sequential:
    m = Sequential([layers.Dense(300, activation="relu", kernel_initializer=init), layers.Dropout(0.5),
                    layers.Dense(100, activation="relu", kernel_initializer=init), layers.Dropout(0.5),
                    layers.Dense(10, activation="softmax", kernel_initializer=init)], input_shape=(784,), seed=seed)
    m.compile(optimizer=optim.Adam(lr=1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


def main(variant: str, seeds: str) -> None:
    batch = int(os.environ.get("BATCH", "128"))
    (xt, yt), (xs, ys) = datasets.fashion_mnist(flatten=True)
    if variant == "std":
        mu, sd = xt.mean(), xt.std()
        xt, xs = (xt - mu) / sd, (xs - mu) / sd
    elif variant == "std_pix":
        mu, sd = xt.mean(0), xt.std(0) + 1e-2
        xt, xs = (xt - mu) / sd, (xs - mu) / sd
    xt, xs = np.ascontiguousarray(xt, np.float32), np.ascontiguousarray(xs, np.float32)
    for seed in (int(s) for s in seeds.split(",")):
        m, accs, t0 = model(seed, INITS[variant]), [], time.time()
        for e in range(20):
            m.fit(xt, yt, epochs=e + 1, initial_epoch=e, batch_size=batch, seed=seed, verbose=0)
            accs.append(m.evaluate(xs, ys)["accuracy"])
        print(f"{variant} batch {batch} seed {seed}: after 20 epochs {accs[-1]:.4f} (best {max(accs):.4f}, "
              f"after 10 {accs[9]:.4f}) in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "default", sys.argv[2] if len(sys.argv) > 2 else "0")

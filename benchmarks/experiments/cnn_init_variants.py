"""Test accuracy of the cnn_epoch model (Fashion-MNIST, Adam 1e-3, batch 128, 10 epochs) from
different initialisations, per epoch, for one seed.

    PYTHONPATH=python:. python -m benchmarks.experiments.cnn_init_variants default 0

Variants: default (torch_uniform everywhere), keras (He for ReLU layers, Glorot otherwise: the
old default), conv_he (He convolutions, default dense), glorot (Glorot everywhere).
"""
from __future__ import annotations

import sys
import time

from dropnet import datasets, layers, optim
from dropnet.models import Sequential

INITS = {  # (conv, hidden dense, output dense)
    "default": (None, None, None),
    "keras": ("glorot_uniform", "he_uniform", "glorot_uniform"),
    "conv_he": ("he_uniform", None, None),
    "glorot": ("glorot_uniform", "glorot_uniform", "glorot_uniform"),
}


def model(seed: int, conv_init, dense_init, out_init) -> Sequential:
    m = Sequential([layers.Conv2D(32, 3, padding="same", kernel_initializer=conv_init), layers.BatchNormalization(),
                    layers.Activation("relu"), layers.MaxPool2D(2),
                    layers.Conv2D(64, 3, padding="same", kernel_initializer=conv_init), layers.BatchNormalization(),
                    layers.Activation("relu"), layers.MaxPool2D(2), layers.Flatten(),
                    layers.Dense(128, activation="relu", kernel_initializer=dense_init), layers.Dropout(0.5),
                    layers.Dense(10, activation="softmax", kernel_initializer=out_init)],
                   input_shape=(1, 28, 28), seed=seed)
    m.compile(optimizer=optim.Adam(lr=1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


def main(variant: str, seed: int) -> None:
    (xt, yt), (xs, ys) = datasets.fashion_mnist()
    xt, xs = xt.reshape(-1, 1, 28, 28), xs.reshape(-1, 1, 28, 28)
    m, accs = model(seed, *INITS[variant]), []
    for e in range(10):
        t0 = time.time()
        m.fit(xt, yt, epochs=e + 1, initial_epoch=e, batch_size=128, seed=seed, verbose=0)
        accs.append(m.evaluate(xs, ys)["accuracy"])
        print(f"{variant} seed {seed} epoch {e + 1}: {accs[-1]:.4f} ({time.time() - t0:.1f} s)", flush=True)
    print(f"{variant} seed {seed}: after 10 epochs {accs[-1]:.4f}, best {max(accs):.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "default", int(sys.argv[2]) if len(sys.argv) > 2 else 0)

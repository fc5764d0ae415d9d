"""Trains one small model and writes its final weights: run by test_isa_determinism.py in a fresh
process per ISA path (``DROPNET_ISA`` is read when dropnet is imported).

Usage: python isa_train_script.py MODEL OUT.npz   with MODEL one of the names in ``MODELS``.
"""
from __future__ import annotations

import sys

import numpy as np

import dropnet
from dropnet import layers, optim


def _mlp_data(n=384, d=64, classes=10):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, classes, n)


def _image_data(n=192):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 1, 12, 12)).astype(np.float32), rng.integers(0, 10, n)


def mlp():
    x, y = _mlp_data()
    model = dropnet.Sequential([
        layers.Input((64,)),
        layers.Dense(96, activation="relu"), layers.Dropout(0.5),
        layers.Dense(48, activation="relu"), layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ], seed=3)
    model.compile(optimizer=optim.Adam(lr=1e-3), loss="sparse_categorical_crossentropy")
    return model, x, y


def mlp_smooth_activations():
    """tanh, sigmoid and GELU in the GEMM epilogue, SGD with Nesterov momentum, L2 penalty."""
    x, y = _mlp_data()
    model = dropnet.Sequential([
        layers.Input((64,)),
        layers.Dense(80, activation="tanh", kernel_regularizer=dropnet.regularizers.l2(1e-4)),
        layers.Dropout(0.2),
        layers.Dense(60, activation="sigmoid"),
        layers.Dense(40, activation="gelu"), layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ], seed=4)
    model.compile(optimizer=optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy")
    return model, x, y


def cnn_bn():
    x, y = _image_data()
    model = dropnet.Sequential([
        layers.Input((1, 12, 12)),
        layers.Conv2D(16, 3, padding="same"), layers.BatchNormalization(), layers.Activation("relu"),
        layers.MaxPool2D(2),
        # 16 -> 24 channels, 3x3 stride 1: the Winograd path (docs/design.md, "Convolution paths")
        layers.Conv2D(24, 3, padding="same"), layers.BatchNormalization(), layers.Activation("relu"),
        layers.AvgPool2D(2),
        layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ], seed=5)
    model.compile(optimizer=optim.AdamW(lr=2e-3, weight_decay=1e-2), loss="sparse_categorical_crossentropy")
    return model, x, y


def pruned_sparse():
    """Magnitude-pruned Dense and Conv2D layers trained on the sparse kernels (mode "on")."""
    x, y = _image_data()
    model = dropnet.Sequential([
        layers.Input((1, 12, 12)),
        layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPool2D(2),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], seed=6)
    model.compile(optimizer=optim.Adam(lr=1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    dropnet.prune.magnitude(model, 0.8, scope="layer")
    model.set_sparse_execution("on")
    return model, x, y


MODELS = {"mlp": mlp, "mlp_smooth_activations": mlp_smooth_activations, "cnn_bn": cnn_bn,
          "pruned_sparse": pruned_sparse}


def main(argv):
    name, out = argv[1], argv[2]
    model, x, y = MODELS[name]()
    # batch 24 leaves a last batch of 12 rows (384 and 192 samples): odd tile and lane tails too.
    model.fit(x, y, epochs=2, batch_size=24, verbose=0)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays["isa"] = np.array(dropnet.cpu_features()["active"])
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv)

"""The benchmark networks that more than one suite trains, each defined once for both libraries.

``lenet`` (LeNet-300-100 + dropout 0.5), ``cnn`` (the cnn_epoch suite's small CNN) and ``vgg``
(six 3x3 convolutions 32-32 / 64-64 / 128-128 with batch norm and ReLU, a max pool after each pair,
28 -> 14 -> 7 -> 3, then dropout 0.5 and a dense layer to 10 classes), all on (1, 28, 28) inputs.
The two sides have the same layers, shapes and initial-weight distribution (PyTorch's defaults);
``dropnet_model(name, seed, device)`` is compiled with the cnn_epoch recipe (Adam lr 1e-3, eps 1e-7).
"""
from __future__ import annotations

from dropnet import layers, optim
from dropnet.models import Sequential

NAMES = ("lenet", "cnn", "vgg")


def _dropnet_layers(name: str) -> list:
    L = layers
    if name == "lenet":
        return [L.Flatten(), L.Dense(300, activation="relu"), L.Dropout(0.5), L.Dense(100, activation="relu"),
                L.Dropout(0.5), L.Dense(10, activation="softmax")]
    if name == "cnn":
        return [L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"), L.MaxPool2D(2),
                L.Conv2D(64, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"), L.MaxPool2D(2),
                L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.5), L.Dense(10, activation="softmax")]
    if name == "vgg":
        out: list = []
        for width in (32, 64, 128):
            for _ in range(2):
                out += [L.Conv2D(width, 3, padding="same"), L.BatchNormalization(), L.Activation("relu")]
            out.append(L.MaxPool2D(2))
        return out + [L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")]
    raise ValueError(f"name: expected one of {NAMES}, got {name!r}")


def dropnet_model(name: str, seed: int, device: str = "cpu") -> Sequential:
    m = Sequential(_dropnet_layers(name), input_shape=(1, 28, 28), seed=seed, device=device)
    m.compile(optimizer=optim.Adam(lr=1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy", metrics=[])
    return m


def torch_builder(name: str):
    """build(torch.nn) -> the same network in PyTorch (for _torch_peer.TorchClassifier)."""
    def build(nn):
        if name == "lenet":
            return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Dropout(0.5), nn.Linear(300, 100),
                                 nn.ReLU(), nn.Dropout(0.5), nn.Linear(100, 10))
        if name == "cnn":
            return nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32, momentum=0.1, eps=1e-5), nn.ReLU(),
                nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64, momentum=0.1, eps=1e-5),
                nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(128, 10))
        if name == "vgg":
            mods, c_in = [], 1
            for width in (32, 64, 128):
                for _ in range(2):
                    mods += [nn.Conv2d(c_in, width, 3, padding=1), nn.BatchNorm2d(width, momentum=0.1, eps=1e-5),
                             nn.ReLU()]
                    c_in = width
                mods.append(nn.MaxPool2d(2))
            return nn.Sequential(*mods, nn.Flatten(), nn.Dropout(0.5), nn.Linear(128 * 3 * 3, 10))
        raise ValueError(f"name: expected one of {NAMES}, got {name!r}")
    return build

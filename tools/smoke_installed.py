"""Smoke test of an installed dropnet (.ci/run runs it in a fresh venv holding only the wheel,
from a directory outside the source tree).

    python tools/smoke_installed.py EXPECTED_VERSION

Checks that dropnet comes from site-packages (not from a checkout), that its version is the
expected one, that the extension loads (no CUDA library needed), and that a small dropout MLP
trains on the embedded data: its loss after two epochs must be below the loss of the first
batch. Exits non-zero with a message otherwise.
"""
from __future__ import annotations

import os
import sys


def main(expected_version: str) -> None:
    import dropnet
    from dropnet import layers

    here = os.path.dirname(os.path.abspath(dropnet.__file__))
    if "site-packages" not in here.split(os.sep):
        sys.exit(f"FAIL: dropnet imported from {here}, not from an installed wheel")
    if dropnet.__version__ != expected_version:
        sys.exit(f"FAIL: dropnet.__version__ is {dropnet.__version__!r}, pyproject says {expected_version!r}")

    (x, y), _ = dropnet.datasets.embedded(flatten=True)
    model = dropnet.Sequential([layers.Input((784,)), layers.Dense(64, activation="relu"), layers.Dropout(0.5),
                                layers.Dense(10, activation="softmax")], seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.evaluate(x[:1000], y[:1000])["loss"]
    model.fit(x[:1000], y[:1000], epochs=2, batch_size=100, verbose=0)
    last = model.evaluate(x[:1000], y[:1000])["loss"]
    if not last < first:
        sys.exit(f"FAIL: training did not lower the loss ({first:.4f} -> {last:.4f})")
    features = dropnet.cpu_features()
    print(f"smoke: dropnet {dropnet.__version__} from {here}; ISA {features['active']}, "
          f"CUDA built {features['cuda_built']}; loss {first:.4f} -> {last:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

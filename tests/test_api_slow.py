"""End-to-end training runs (minutes): ``pytest -m slow tests/test_api_slow.py``."""
from __future__ import annotations

import os

import numpy as np
import pytest

from dropnet import cli, datasets, layers, optim
from dropnet.models import Sequential

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not os.path.isdir(os.path.join(datasets.SYSTEM_DATA_DIR, "fashion-mnist")),
                    reason="needs the full Fashion-MNIST (Debian package dataset-fashion-mnist)")
def test_lenet_300_100_dropout_learns_fashion_mnist():
    """LeNet-300-100 + dropout 0.5, Adam 1e-3, batch 128, 20 epochs. A correct implementation
    lands at 88-89 % test accuracy (the numpy stand-in: 88.2 %); 87 % leaves room for a different
    initialisation and mask stream while failing any real bug. The 88.5 % target is tracked by
    the mlp_epoch benchmark beside PyTorch, not asserted here."""
    (x, y), (xt, yt) = datasets.fashion_mnist(flatten=True)
    model = Sequential([layers.Dense(300, activation="relu"), layers.Dropout(0.5),
                        layers.Dense(100, activation="relu"), layers.Dropout(0.5),
                        layers.Dense(10, activation="softmax")], input_shape=(784,), seed=0)
    model.compile(optimizer=optim.Adam(lr=1e-3), metrics=["accuracy"])
    model.fit(x, y, epochs=20, batch_size=128, verbose=0)
    assert model.evaluate(xt, yt)["accuracy"] >= 0.87
    assert np.isfinite(model.get_weights()[0]).all()


def test_demo_dropout_narrows_the_generalisation_gap(capsys):
    assert cli.main(["demo"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "(gap " in ln]
    gaps = [float(ln.split("(gap ")[1].rstrip(")")) for ln in lines]
    assert len(gaps) == 2 and gaps[1] < gaps[0]


def test_prune_cnn_example_runs_and_prunes(capsys, monkeypatch):
    """examples/prune_cnn_fashion_mnist.py end to end on a small subset: both pruned networks are
    built, fine-tuned and evaluated, and the table reports the weights each keeps."""
    import importlib.util
    import sys

    path = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "prune_cnn_fashion_mnist.py")
    spec = importlib.util.spec_from_file_location("prune_cnn_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(sys, "argv", ["prune_cnn", "--epochs", "1", "--finetune", "1", "--subset", "1500"])
    example.main()
    out = capsys.readouterr().out
    assert "| magnitude 90%, fine-tuned | 10.3% |" in out  # 90 % of conv2d_1 and dense gone
    assert "| channels 50 %, fine-tuned | 25.1% |" in out
    assert "layer 3: density 0.100" in out and "layer 7: density 0.100" in out

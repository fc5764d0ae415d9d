"""Command line: info (subprocess, as users run it), demo and train through main()."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import dropnet
from dropnet import cli
from dropnet.models import load_model

# The child must import the dropnet this process imported (installed, or the developer tree).
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(dropnet.__file__)))


def test_info_via_python_m():
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "dropnet", "info"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"dropnet {dropnet.__version__}" in out.stdout
    assert f"ISA: active {dropnet.cpu_features()['active']}" in out.stdout
    assert "threads:" in out.stdout and "CUDA:" in out.stdout


def test_demo_prints_both_runs_and_seed(capsys):
    assert cli.main(["demo", "--epochs", "2", "--seed", "5", "--max-samples", "1500"]) == 0
    text = capsys.readouterr().out
    assert "seed 5" in text
    lines = [ln for ln in text.splitlines() if "test accuracy" in ln]
    assert len(lines) == 2 and lines[0].startswith("no dropout") and lines[1].startswith("dropout 0.5")
    accs = [float(ln.split("test accuracy")[1].split()[0]) for ln in lines]
    assert all(0.4 < a <= 1.0 for a in accs)  # chance is 0.1: two epochs on 1500 images learn something


def test_train_writes_history_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "--dataset", "embedded", "--preset", "lenet300", "--epochs", "2", "--batch-size", "256",
                   "--max-samples", "1024",
                   "--optimizer", "sgd", "--lr", "0.05", "--step-every", "1", "--seed", "3", "--out", str(out),
                   "--verbose", "0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "seed 3" in text
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.025])
    model = load_model(str(out / "model.npz"))
    assert model.seed == 3 and [w.shape for w in model.get_weights()][::2] == [(300, 784), (100, 300), (10, 100)]
    assert np.isfinite(model.get_weights()[0]).all()


def test_train_reports_missing_data(tmp_path, capsys):
    rc = cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1"])
    assert rc == 2
    assert "looked in" in capsys.readouterr().err
    assert cli.main(["demo", "--max-samples", "0"]) == 2
    assert "--max-samples" in capsys.readouterr().err

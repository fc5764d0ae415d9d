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


def _run_cli(args, env_extra=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "dropnet", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.parametrize("flag,value", [
    ("--dropout", "-0.1"), ("--dropout", "nan"), ("--dropout", "1.5"), ("--input-dropout", "1"),
    ("--step-every", "-1"), ("--step-factor", "0"), ("--step-factor", "2"), ("--lr", "0"), ("--lr", "inf"),
    ("--momentum", "-0.5"), ("--epochs", "0"), ("--batch-size", "0"), ("--seed", "-3"), ("--max-samples", "0"),
    ("--epochs", "two"),
])
def test_train_rejects_bad_flag_values_naming_the_flag(flag, value, capsys):
    assert cli.main(["train", "--dataset", "embedded", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {flag}:" in err and repr(value) in err


def test_user_errors_are_one_line_without_traceback(tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    cases = [
        (["train", "--dataset", "embedded", "--out", str(a_file), "--epochs", "1"], {}, "--out"),
        (["info"], {"DROPNET_ISA": "bogus"}, "DROPNET_ISA"),
        (["train", "--dataset", "fashion_mnist", "--data-dir", str(tmp_path)], {}, "--data-dir"),
        (["train", "--dropout", "nan"], {}, "--dropout"),
    ]
    for args, env, needle in cases:
        out = _run_cli(args, env)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert needle in out.stderr
    assert a_file.read_text() == "x"  # nothing was written over it


def test_missing_dataset_names_data_dir_and_debian_package(tmp_path, capsys):
    assert cli.main(["train", "--dataset", "fashion_mnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "dataset-fashion-mnist" in err and str(tmp_path) in err


def test_data_dir_with_embedded_warns(tmp_path, capsys):
    assert cli.main(["train", "--dataset", "embedded", "--data-dir", str(tmp_path), "--epochs", "1",
                     "--max-samples", "256", "--verbose", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "--data-dir" in err and "ignored" in err


def test_train_help_shows_defaults(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--dropout", "0.5"), ("--epochs", "20"), ("--batch-size", "128"), ("--seed", "0"),
                          ("--input-dropout", "0.0"), ("--optimizer", "adam"), ("--dataset", "fashion_mnist")]:
        seg = text.split(flag, 2)[-1]  # the option's own help line (after the usage line)
        assert f"(default: {default})" in seg.split(" --")[0], (flag, seg[:120])


def test_ctrl_c_stops_after_the_step_and_names_the_checkpoint(tmp_path):
    import signal
    import time

    out_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "dropnet", "train", "--dataset", "embedded", "--epochs", "200",
                             "--batch-size", "64", "--out", str(out_dir), "--verbose", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        history = out_dir / "history.csv"
        while time.monotonic() < deadline:  # wait until one epoch is done and checkpointed
            if history.exists() and history.read_text().count("\n") >= 2:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted in epoch" in stderr and str(out_dir / "model.npz") in stderr
    model = load_model(str(out_dir / "model.npz"))
    assert np.isfinite(model.get_weights()[0]).all()

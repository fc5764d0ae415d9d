"""Every script in examples/ runs at its smallest settings (as users copy them), in a subprocess,
in a scratch directory; each must exit 0 and write what it says it writes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import dropnet

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(dropnet.__file__)))

# script, smallest arguments, files it must write (relative to the scratch directory)
CASES = [
    ("keras_style.py", ["--epochs", "1", "--out", "k.npz"], ["k.npz"]),
    ("dropout_mlp_fashion_mnist.py", ["--dataset", "embedded", "--epochs", "1", "--hidden", "16", "--out", "d.png"],
     []),
    ("lottery_ticket_fashion_mnist.py", ["--dataset", "embedded", "--rounds", "1", "--epochs", "1", "--subset", "300",
                                         "--validation", "0", "--controls", "--csv", "lt.csv", "--plot", "lt.png"],
     ["lt.csv"]),
    ("lottery_ticket_fashion_mnist.py", ["--dataset", "embedded", "--rounds", "1", "--epochs", "1", "--subset", "300",
                                         "--validation", "50", "--controls", "reinit", "--csv", "lt.csv",
                                         "--plot", "lt.png"], ["lt.csv"]),
    ("prune_cnn_fashion_mnist.py", ["--dataset", "embedded", "--epochs", "1", "--finetune", "1", "--subset", "256"],
     []),
]


def test_every_example_is_covered():
    scripts = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
    assert scripts == sorted({c[0] for c in CASES})


@pytest.mark.parametrize("script,args,writes", CASES, ids=[f"{c[0]}:{i}" for i, c in enumerate(CASES)])
def test_example_runs_at_smallest_settings(tmp_path, script, args, writes):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "Traceback" not in out.stderr
    for name in writes:
        assert (tmp_path / name).is_file(), f"{script} did not write {name}"

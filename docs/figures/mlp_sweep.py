"""Figure of the performance page: MLP epoch time against hidden width and batch size, dropnet
beside PyTorch, from the points the ``mlp_sweep`` suite recorded in
``docs/benchmarks/mlp_sweep.csv`` (``tools/record_benchmarks.sh mlp_sweep`` writes it with the
table; the plot is ``benchmarks/plots/mlp_sweep.py``'s).

    python docs/figures/mlp_sweep.py [out_dir]     # default: docs/_generated
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSV = "docs/benchmarks/mlp_sweep.csv"
INPUTS = [CSV, "benchmarks/plots/mlp_sweep.py"]
OUTPUTS = ["mlp_sweep.png"]


def main(out_dir) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.plots import mlp_sweep

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mlp_sweep.main(["--csv", str(ROOT / CSV), "--out", str(out / OUTPUTS[0])])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "_generated")

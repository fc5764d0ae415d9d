"""Plot the mlp_sweep suite's points: epoch time against hidden width and against batch size, one
line per library and thread count (log-log), and dropnet's speed-up over PyTorch.

    python -m benchmarks.run mlp_sweep --threads 1,2      # writes bench_out/mlp_sweep.csv
    python -m benchmarks.plots.mlp_sweep [--csv bench_out/mlp_sweep.csv] [--out bench_out/mlp_sweep.png]

Needs matplotlib (``pip install "dropnet[plot]"``).
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", default="bench_out/mlp_sweep.csv")
    p.add_argument("--out", default="bench_out/mlp_sweep.png")
    args = p.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        raise SystemExit("benchmarks.plots.mlp_sweep needs matplotlib: pip install 'dropnet[plot]'")
    series = defaultdict(list)  # (sweep, side, threads) -> [(value, seconds)]
    with open(args.csv) as f:
        for r in csv.DictReader(f):
            series[(r["sweep"], r["side"], int(r["threads"]))].append((int(r["value"]), float(r["median_s"])))
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (sweep, label) in enumerate([("width", "hidden width H (batch 128)"), ("batch", "batch size (H = 300)")]):
        ax, ax_ratio = axes[0][col], axes[1][col]
        for (s, side, t), pts in sorted(series.items()):
            if s != sweep:
                continue
            pts.sort()
            ax.plot([v for v, _ in pts], [sec for _, sec in pts], marker="o", label=f"{side}, {t} thr")
            if side == "dropnet fit" and (s, "torch loop", t) in series:
                peer = dict(series[(s, "torch loop", t)])
                ax_ratio.plot([v for v, _ in pts], [peer[v] / sec for v, sec in pts if v in peer], marker="o",
                              label=f"{t} thr")
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="seconds per epoch", title=f"epoch time vs {sweep}")
        ax.legend(fontsize=8)
        ax_ratio.axhline(1.0, color="grey", lw=0.8)
        ax_ratio.set(xscale="log", xlabel=label, ylabel="PyTorch time ÷ dropnet time", title="dropnet speed-up")
        ax_ratio.legend(fontsize=8)
        # Ticks at the measured points, written plainly (log axes' minor labels overlap here).
        values = sorted({v for (s, _, _), pts in series.items() if s == sweep for v, _ in pts})
        for a in (ax, ax_ratio):
            a.set_xticks(values, [str(v) for v in values])
            a.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    fig.savefig(args.out, dpi=110, metadata={"Software": None})  # same points, same bytes
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

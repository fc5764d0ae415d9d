"""Table and figure of the pruning page, from ``examples/results/lottery_ticket_fashion_mnist.csv``
(the mean over seeds 0-2 of ``examples/lottery_ticket_fashion_mnist.py --rounds 10 --epochs 10
--seeds 0 1 2``; see that script's docstring).

    python docs/figures/lottery_ticket.py [out_dir]     # default: docs/_generated
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSV = "examples/results/lottery_ticket_fashion_mnist.csv"
INPUTS = [CSV]
OUTPUTS = ["lottery_ticket.png", "lottery_ticket_table.md"]
ARMS = (("ticket", "winning ticket (rewound to init)"), ("reinit", "same mask, new init"),
        ("random_mask", "random mask, original init"))


def read_rows():
    with open(ROOT / CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    by_arm = {arm: [] for arm, _ in ARMS}
    for r in rows:
        by_arm[r["arm"]].append(r)
    dense = by_arm["ticket"][0]  # round 0 is the dense network; the controls start at round 1
    for arm, _ in ARMS[1:]:
        by_arm[arm].insert(0, dense)
    return by_arm


def main(out_dir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_arm = read_rows()
    fig, (ax_acc, ax_stop) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for k, (arm, label) in enumerate(ARMS):
        rows = by_arm[arm]
        remaining = [100 * float(r["weights_remaining"]) for r in rows]
        ax_acc.plot(remaining, [100 * float(r["best_test_accuracy"]) for r in rows], "o-", color=f"C{k}", label=label)
        ax_stop.plot(remaining, [float(r["early_stop_iteration"]) for r in rows], "o-", color=f"C{k}", label=label)
    for ax in (ax_acc, ax_stop):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.grid(alpha=0.3, which="both")
        ticks = [100, 51.3, 26.3, 10.8]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    ax_acc.set(ylabel="best test accuracy (%)", title="Accuracy")
    ax_stop.set(ylabel="iteration of least validation loss", title="Early-stop iteration")
    ax_acc.legend(fontsize=8)
    fig.suptitle("Lottery tickets in LeNet-300-100 on Fashion-MNIST (mean of 3 seeds, examples/results)", fontsize=9)
    fig.savefig(out / OUTPUTS[0], dpi=100, metadata={"Software": None})
    plt.close(fig)

    lines = ["| round | weights remaining | best test accuracy: ticket | same mask, new init | random mask | "
             "ticket: early-stop iteration |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, t in enumerate(by_arm["ticket"]):
        cells = [t["round"], f"{100 * float(t['weights_remaining']):.1f} %"]
        cells += [f"{100 * float(by_arm[arm][i]['best_test_accuracy']):.2f} %" for arm, _ in ARMS]
        cells.append(f"{float(t['early_stop_iteration']):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    (out / OUTPUTS[1]).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "_generated")

"""Learning curves from a ``History`` (matplotlib is an optional extra: ``pip install 'dropnet[plot]'``)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

__all__ = ["history"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("dropnet.plot needs matplotlib, an optional extra: pip install 'dropnet[plot]' "
                          "(or pip install matplotlib)") from None
    return plt


def history(hist: Any, keys: Optional[Sequence[str]] = None, path: Optional[str] = None, title: Optional[str] = None):
    """Plot the curves of a ``History`` (``model.fit``'s return value) or its ``.history`` dict.

    One panel per quantity: ``loss`` with ``val_loss`` and ``train_loss`` (from
    ``callbacks.EvaluateTrainSet``), ``accuracy`` with its ``val_`` / ``train_`` twins, and so on
    (``lr`` gets its own panel). keys: the base quantities to draw (default: all found). path:
    save the figure there (any format matplotlib knows) and close it. Returns the matplotlib
    ``Figure``."""
    plt = _pyplot()
    logs = getattr(hist, "history", hist)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"hist: expected a History or a dict of per-epoch lists, got {type(hist).__name__}")
    epochs = list(getattr(hist, "epoch", [])) or list(range(len(next(iter(logs.values())))))
    bases = []
    for k in logs:
        base = k[4:] if k.startswith("val_") else k[6:] if k.startswith("train_") else k
        if base not in bases:
            bases.append(base)
    if keys is not None:
        unknown = [k for k in keys if k not in bases]
        if unknown:
            raise ValueError(f"keys: {unknown} not in the history (it has {bases})")
        bases = list(keys)
    fig, axes = plt.subplots(1, len(bases), figsize=(4.5 * len(bases), 3.6), squeeze=False)
    labels = {"": "training batches (running, as trained)", "train_": "training set (evaluated)",
              "val_": "validation"}
    styles = {"": ":", "train_": "--", "val_": "-"}
    for ax, base in zip(axes[0], bases):
        for prefix in ("", "train_", "val_"):
            key = prefix + base
            if key in logs:
                label = labels[prefix] if base != "lr" else "learning rate"
                ax.plot(epochs[:len(logs[key])], logs[key], styles[prefix], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(base)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig

"""Per-epoch progress display for ``fit``.

verbose=1 on a terminal: a bar redrawn in place (at most ~10 times a second) with steps,
time per step, running loss; verbose=1 when stdout is not a terminal, or verbose=2: one line per
epoch; verbose=0: nothing.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, Optional, TextIO

_BAR_WIDTH = 24
_REDRAW_S = 0.1


def _fmt_logs(logs: Dict[str, float]) -> str:
    parts = []
    for k, v in logs.items():
        if k == "lr":
            parts.append(f"lr: {v:.3g}")
        else:
            parts.append(f"{k}: {v:.4f}")
    return " - ".join(parts)


def _fmt_step_time(s: float) -> str:
    return f"{s * 1e3:.1f}ms/step" if s < 1 else f"{s:.2f}s/step"


class EpochProgress:
    """Draws one epoch: ``start()``, ``update(step, loss)`` after each batch, ``finish(logs)``."""

    def __init__(self, epoch: int, epochs: int, steps: int, verbose: int,
                 stream: Optional[TextIO] = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.verbose = verbose
        self.live = verbose == 1 and bool(getattr(self.stream, "isatty", lambda: False)())
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self._t0 = 0.0
        self._last_draw = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        if self.live:
            self.stream.write(f"Epoch {self.epoch + 1}/{self.epochs}\n")

    def update(self, step: int, loss: float) -> None:
        """step: batches done so far (1-based); loss: running mean training loss."""
        if not self.live:
            return
        now = time.perf_counter()
        if step < self.steps and now - self._last_draw < _REDRAW_S:
            return
        self._last_draw = now
        done = int(_BAR_WIDTH * step / max(self.steps, 1))
        bar = "=" * max(done - 1, 0) + (">" if done < _BAR_WIDTH else "=") + "." * (_BAR_WIDTH - done)
        per_step = (now - self._t0) / max(step, 1)
        self.stream.write(f"\r{step}/{self.steps} [{bar}] {_fmt_step_time(per_step)} - loss: {loss:.4f}")
        self.stream.flush()

    def finish(self, logs: Dict[str, float]) -> None:
        if self.verbose == 0:
            return
        elapsed = time.perf_counter() - self._t0
        per_step = elapsed / max(self.steps, 1)
        text = f"{elapsed:.1f}s {_fmt_step_time(per_step)} - {_fmt_logs(logs)}"
        if self.live:
            self.stream.write(f"\r{self.steps}/{self.steps} [{'=' * _BAR_WIDTH}] {text}\n")
        else:
            self.stream.write(f"Epoch {self.epoch + 1}/{self.epochs} - {self.steps} steps - {text}\n")
        self.stream.flush()

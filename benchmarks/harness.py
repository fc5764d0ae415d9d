"""Timing protocol of docs/performance.md: warm up, interleave the sides (A B A B ...), take the median
of >= 5 repeats, print min/median/max and ratios against a peer measured in the same run.

A suite module in ``benchmarks/suites/<name>.py`` defines ``run(ctx: Context) -> None`` and calls
``ctx.compare(...)`` once per case. Rows are collected and printed as one markdown table.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence


@dataclasses.dataclass
class Row:
    case: str
    threads: int
    side: str
    median_s: float
    min_s: float
    max_s: float
    rate: Optional[float]  # work units per second (GB/s, GFLOP/s, G words/s)
    unit: str
    ratios: Dict[str, float]  # this side's speed / peer's speed, for each peer named
    note: str = ""


def _time_once(fn: Callable[[], object], inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _auto_inner(fn: Callable[[], object], target_s: float) -> int:
    """Calls per sample so one sample takes about target_s (amortises timer overhead)."""
    t = _time_once(fn, 1)
    return max(1, min(10_000, int(target_s / max(t, 1e-7))))


class Context:
    def __init__(self, threads: Sequence[int], repeats: int = 7, warmup: int = 2, target_s: float = 0.05,
                 quick: bool = False) -> None:
        self.threads = list(threads)
        self.repeats = max(5, repeats)
        self.warmup = warmup
        self.target_s = target_s
        self.quick = quick
        self.rows: List[Row] = []

    def set_threads(self, n: int) -> None:
        """Same thread count on every side."""
        import dropnet

        dropnet.set_num_threads(n)
        try:
            import torch

            torch.set_num_threads(n)
        except ImportError:
            pass

    def compare(self, case: str, sides: Dict[str, Callable[[], object]], *, threads: int,
                work: Optional[float] = None, unit: str = "", peers: Sequence[str] = (),
                validate: Optional[Callable[[], None]] = None, note: str = "") -> List[Row]:
        """Time every side interleaved; `work` is the units of work one call does (bytes / 1e9
        for GB/s, flops / 1e9 for GFLOP/s). Ratios are speed(side) / speed(peer)."""
        self.set_threads(threads)
        if validate is not None:
            validate()  # benchmarks validate before they time
        for fn in sides.values():
            for _ in range(self.warmup):
                fn()
        inner = {k: _auto_inner(fn, self.target_s) for k, fn in sides.items()}
        samples: Dict[str, List[float]] = {k: [] for k in sides}
        for _ in range(self.repeats):
            for k, fn in sides.items():  # A B A B ...: drift hits every side
                samples[k].append(_time_once(fn, inner[k]))
        med = {k: statistics.median(v) for k, v in samples.items()}
        rows = []
        for k, v in samples.items():
            ratios = {p: med[p] / med[k] for p in peers if p in med and p != k}
            rows.append(Row(case, threads, k, med[k], min(v), max(v),
                            (work / med[k]) if work else None, unit, ratios, note))
        self.rows.extend(rows)
        for r in rows:
            print(format_row(r), flush=True)
        return rows


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def format_row(r: Row) -> str:
    rate = f"{r.rate:.2f} {r.unit}" if r.rate is not None else ""
    ratios = ", ".join(f"{v:.2f}× vs {p}" for p, v in r.ratios.items())
    return (f"| {r.case} | {r.threads} | {r.side} | {_fmt_time(r.median_s)} | {_fmt_time(r.min_s)} | "
            f"{_fmt_time(r.max_s)} | {rate} | {ratios} | {r.note} |")


HEADER = ("| case | threads | side | median | min | max | rate | speed ratio | note |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def table(rows: List[Row]) -> str:
    return "\n".join([HEADER, *(format_row(r) for r in rows)])


def scaling_table(rows: List[Row]) -> str:
    """Speed-up from 1 thread to the most threads measured, per case and side ("" if no case ran at
    both): median at 1 thread ÷ median at n threads, from rows of the same run."""
    by_key: Dict[tuple, Dict[int, float]] = {}
    for r in rows:
        by_key.setdefault((r.case, r.side), {})[r.threads] = r.median_s
    lines = []
    for (case, side), t in by_key.items():
        n = max(t)
        if n > 1 and 1 in t:
            lines.append(f"| {case} | {side} | {n} | {t[1] / t[n]:.2f}× |")
    if not lines:
        return ""
    return "\n".join(["| case | side | threads n | speed-up 1 → n threads |", "| --- | --- | --- | --- |", *lines])

"""Run named benchmark suites: ``python -m benchmarks.run philox dropout --threads 1,2``.

Prints each row as it is measured and, at the end, the whole markdown table (also written to
``--out`` if given). Suites live in ``benchmarks/suites/<name>.py``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys

from . import harness, suites


def available_suites() -> list:
    return sorted(m.name for m in pkgutil.iter_modules(suites.__path__) if not m.name.startswith("_"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suites", nargs="*", help=f"suites to run (default: all): {', '.join(available_suites())}")
    p.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1,<cores>)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="smaller shapes and fewer repeats (smoke test)")
    p.add_argument("--out", default=None, help="also write the markdown table here")
    p.add_argument("--passive", action="store_true",
                   help="OMP_WAIT_POLICY=PASSIVE for both libraries (they share one OpenMP runtime; on a "
                        "loaded machine spinning workers starve each other)")
    args = p.parse_args(argv)
    if args.passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when the OpenMP runtime starts: before imports

    names = args.suites or available_suites()
    unknown = [n for n in names if n not in available_suites()]
    if unknown:
        p.error(f"unknown suite(s) {unknown}; available: {available_suites()}")
    cores = os.cpu_count() or 1
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})

    import dropnet

    print(f"# dropnet {dropnet.__version__} on {platform.processor() or platform.machine()}, "
          f"{cores} cores, ISA {dropnet.cpu_features()['active']}; python {sys.version.split()[0]}")
    try:
        import torch

        print(f"# peer: torch {torch.__version__}")
    except ImportError:
        print("# peer: torch not installed (pip install 'dropnet[bench]'); torch columns are skipped")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"# load average {load:.2f}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}")
    if load > 1.5:
        print("# WARNING: the machine is busy; figures are unreliable (docs/performance.md: shared, noisy machines)")
    print(harness.HEADER, flush=True)
    ctx = harness.Context(threads, repeats=3 if args.quick else args.repeats, quick=args.quick)
    for name in names:
        importlib.import_module(f"benchmarks.suites.{name}").run(ctx)
    text = harness.table(ctx.rows)
    scaling = harness.scaling_table(ctx.rows)
    if scaling:
        text += "\n\n" + scaling
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

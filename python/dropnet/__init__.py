"""dropnet: fast, bit-reproducible dropout, batch normalisation and pruning, from Python.

All arithmetic runs in the native core (``dropnet._core``); this package describes models and
runs the loop. Kernels flush denormals to zero (FTZ/DAZ) inside their own threads.
"""
from __future__ import annotations

import os as _os

# libgomp (GCC's OpenMP runtime) otherwise falls back to a throttled spin of ~1000 iterations
# before its worker threads sleep, and each training step then pays futex wake-ups between its
# parallel regions (an Adam step at 2 threads measured 1.35 ms instead of 0.90 ms). An explicit
# GOMP_SPINCOUNT (libgomp's documented default) keeps workers spinning for a short while and then
# sleeping as usual. It takes effect only if no OpenMP runtime was loaded before dropnet; a value
# the user set wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "300000")

from . import _core  # noqa: E402
from ._version_source import package_version as _package_version
from ._runtime import cpu_features, get_num_threads, set_isa, set_num_threads, isa, cuda_available
from . import cuda, ops, prune, random, sparse
from . import callbacks, constraints, datasets, io, layers, losses, metrics, models, optim, plot, regularizers
from .models import Sequential, load_model
from .random import Generator

__version__: str = _package_version()


def _running_as_cli() -> bool:
    """Whether this import is the ``dropnet`` command (console script or ``python -m dropnet``)."""
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    if _os.path.basename(argv0) == "dropnet":
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return argv0 == "-m" and any(a == "-m" and b == "dropnet" for a, b in zip(orig, orig[1:]))


# Read DROPNET_ISA now, so a bad value fails at import with a clear message, not mid-training.
# The command line reports it as every user error: one line and exit status 2, no traceback.
try:
    _core.core.active_isa()
except ValueError as _e:
    if not _running_as_cli():
        raise
    import sys as _sys

    print(f"dropnet: error: {_e}", file=_sys.stderr)
    raise SystemExit(2) from None

__all__ = [
    "Sequential",
    "load_model",
    "callbacks",
    "constraints",
    "datasets",
    "io",
    "layers",
    "losses",
    "metrics",
    "models",
    "optim",
    "plot",
    "regularizers",
    "__version__",
    "Generator",
    "cpu_features",
    "cuda",
    "cuda_available",
    "get_num_threads",
    "isa",
    "ops",
    "prune",
    "random",
    "sparse",
    "set_isa",
    "set_num_threads",
]

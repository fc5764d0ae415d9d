"""dropnet: fast, bit-reproducible dropout, batch normalisation and pruning, from Python.

All arithmetic runs in the native core (``dropnet._core``); this package describes models and
runs the loop. Kernels flush denormals to zero (FTZ/DAZ) inside their own threads.
"""
from __future__ import annotations

from . import _core
from ._runtime import cpu_features, get_num_threads, set_isa, set_num_threads, isa, cuda_available
from . import ops, prune, random, sparse
from . import callbacks, datasets, io, layers, losses, metrics, models, optim, regularizers
from .models import Sequential, load_model
from .random import Generator

__version__: str = _core.__version__

# Read DROPNET_ISA now, so a bad value fails at import with a clear message, not mid-training.
_core.core.active_isa()

__all__ = [
    "Sequential",
    "load_model",
    "callbacks",
    "datasets",
    "io",
    "layers",
    "losses",
    "metrics",
    "models",
    "optim",
    "regularizers",
    "__version__",
    "Generator",
    "cpu_features",
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

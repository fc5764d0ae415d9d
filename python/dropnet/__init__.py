"""dropnet: fast, bit-reproducible dropout, batch normalisation and pruning, from Python.

All arithmetic runs in the native core (``dropnet._core``); this package describes models and
runs the loop. Kernels flush denormals to zero (FTZ/DAZ) inside their own threads.
"""
from __future__ import annotations

from . import _core
from ._runtime import cpu_features, get_num_threads, set_isa, set_num_threads, isa, cuda_available
from . import ops, random
from .random import Generator

__version__: str = _core.__version__

# Read DROPNET_ISA now, so a bad value fails at import with a clear message, not mid-training.
_core.core.active_isa()

__all__ = [
    "__version__",
    "Generator",
    "cpu_features",
    "cuda_available",
    "get_num_threads",
    "isa",
    "ops",
    "random",
    "set_isa",
    "set_num_threads",
]

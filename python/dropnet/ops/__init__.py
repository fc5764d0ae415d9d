"""Stateless kernels on numpy arrays: dropout family, matmul/linear, convolution, sparse, augmentation.

Every function takes float32 C-contiguous arrays and, where it writes a float32 result, an
optional ``out=`` array to reuse memory. Bad input raises TypeError (dtype) or ValueError.
"""
from ._dropout import *  # noqa: F401,F403
from ._linalg import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._sparse import *  # noqa: F401,F403
from ._augment import *  # noqa: F401,F403
from . import _dropout, _linalg, _conv, _sparse, _augment

__all__ = [*_dropout.__all__, *_linalg.__all__, *_conv.__all__, *_sparse.__all__, *_augment.__all__]

"""Arrays that end flush against a PROT_NONE page, so that a kernel reading or writing one byte
past the end of its operand faults (SIGSEGV) instead of silently using a neighbour's memory.

``guarded(a)`` copies ``a`` into fresh anonymous pages whose last page is made inaccessible with
``mprotect`` and returns the copy: same shape, dtype and values, C-contiguous, writeable, ending
exactly at the guard page. ``misalign=k`` moves the start ``k`` bytes off the dtype's alignment
(the end is then ``itemsize - k`` bytes before the guard, so any whole-element over-read still
faults). The mapping lives as long as the returned array (numpy keeps the ``mmap`` object alive
through ``.base``) and is unmapped with it.

Linux/POSIX only (ctypes ``mprotect``); ``available()`` says whether the platform has it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import mmap
from typing import Optional

import numpy as np

PAGE = mmap.PAGESIZE
_PROT_NONE = 0

_libc: Optional[ctypes.CDLL]
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    _libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _libc.mprotect.restype = ctypes.c_int
except (OSError, AttributeError):  # pragma: no cover - non-POSIX
    _libc = None


def available() -> bool:
    return _libc is not None and hasattr(mmap, "MAP_ANONYMOUS")


def empty_guarded(shape, dtype=np.float32, *, misalign: int = 0) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` whose last byte (or, with ``misalign``,
    last whole element) touches a PROT_NONE page."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if not 0 <= misalign < max(dtype.itemsize, 1):
        raise ValueError(f"misalign: expected 0 <= misalign < itemsize {dtype.itemsize}, got {misalign}")
    slack = (dtype.itemsize - misalign) % dtype.itemsize
    data_pages = (nbytes + slack + PAGE - 1) // PAGE + 1  # +1: even an empty array sits below a guard
    mm = mmap.mmap(-1, (data_pages + 1) * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                   prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    guard = base + data_pages * PAGE
    if _libc.mprotect(ctypes.c_void_p(guard), PAGE, _PROT_NONE) != 0:  # pragma: no cover
        raise OSError(ctypes.get_errno(), "mprotect failed")
    offset = data_pages * PAGE - slack - nbytes
    # The guard page is never touched from Python: frombuffer only records the pointer.
    arr = np.frombuffer(mm, dtype=dtype, count=count, offset=offset).reshape(shape)
    assert arr.ctypes.data + nbytes + slack == guard
    return arr


def guarded(a, *, misalign: int = 0) -> np.ndarray:
    """A copy of ``a`` (any array-like) ending flush against a PROT_NONE page."""
    a = np.asarray(a)
    out = empty_guarded(a.shape, a.dtype, misalign=misalign)
    out[...] = a
    return out

"""
threads, ISA dispatch, devices
"""
from __future__ import annotations
import typing
__all__: list[str] = ['active_isa', 'built_with_cuda', 'cpu_flags', 'cuda_device_count', 'cuda_mem_get_info', 'cuda_unavailable_reason', 'get_num_threads', 'max_isa', 'set_isa', 'set_num_threads']
def active_isa() -> str:
    ...
def cpu_flags() -> dict:
    ...
def cuda_device_count() -> int:
    ...
def cuda_mem_get_info(device: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int]:
    """
    (free, total) bytes of a CUDA device; RuntimeError naming what is missing.
    """
def cuda_unavailable_reason() -> str:
    """
    Empty when a CUDA device is usable, else what is missing.
    """
def get_num_threads() -> int:
    """
    Threads the kernels use.
    """
def max_isa() -> str:
    ...
def set_isa(isa: str) -> None:
    ...
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Set the threads the kernels use (n >= 1).
    """
built_with_cuda: bool = True

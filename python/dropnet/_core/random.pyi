"""
Philox4x32-10 and the stream contract
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['fill_uniform_bits', 'philox4x32_10', 'uniform_bits']
def fill_uniform_bits(out: typing.Any, seed: typing.Any, stream: typing.Any, start: typing.Any = 0) -> None:
    ...
def philox4x32_10(counter: typing.Any, key: typing.Any) -> numpy.typing.NDArray[numpy.uint32]:
    ...
def uniform_bits(n: typing.SupportsInt | typing.SupportsIndex, seed: typing.Any, stream: typing.Any, start: typing.Any = 0, device: str = 'cpu') -> numpy.typing.NDArray[numpy.uint32]:
    ...

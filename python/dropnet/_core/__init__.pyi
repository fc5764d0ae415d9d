"""
dropnet native core (private; use the dropnet package)
"""
from __future__ import annotations
from . import core
from . import random
from . import ops
from . import device
from . import nn
__all__: list[str] = ['core', 'device', 'nn', 'ops', 'random']
__version__: str = '0.1.0+dev'

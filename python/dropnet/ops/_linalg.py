"""linalg ops (filled by the linalg work)."""
from __future__ import annotations

__all__: list = []

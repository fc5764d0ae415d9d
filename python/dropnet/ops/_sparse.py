"""sparse ops (filled by the sparse work)."""
from __future__ import annotations

__all__: list = []

"""dropout ops (filled by the dropout work)."""
from __future__ import annotations

__all__: list = []

"""conv ops (filled by the conv work)."""
from __future__ import annotations

__all__: list = []

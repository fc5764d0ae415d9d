"""Philox4x32-10 and dropnet's stream contract in plain numpy: the independent reference the
tests hold the native code to. Written from the algorithm (Salmon et al., SC'11; Random123)."""
from __future__ import annotations

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """counter (..., 4) uint32, key (..., 2) uint32 -> (..., 4) uint32."""
    c = [counter[..., i].astype(np.uint64) for i in range(4)]
    k0 = key[..., 0].astype(np.uint64)
    k1 = key[..., 1].astype(np.uint64)
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(W0)) & MASK32
            k1 = (k1 + np.uint64(W1)) & MASK32
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
    return np.stack(c, axis=-1).astype(np.uint32)


def stream_words(n: int, seed: int, stream: int, start: int = 0) -> np.ndarray:
    """Word of each element start .. start+n-1 of (seed, stream), per docs/design.md."""
    i = np.arange(start, start + n, dtype=np.uint64)
    b = i >> np.uint64(2)
    ctr = np.stack([b & MASK32, b >> np.uint64(32),
                    np.full_like(b, stream & 0xFFFFFFFF), np.full_like(b, stream >> 32)], axis=-1).astype(np.uint32)
    key = np.broadcast_to(np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32), (n, 2))
    words = philox4x32_10(ctr, key)
    return words[np.arange(n), (i & np.uint64(3)).astype(np.int64)]


def keep_threshold(p: float) -> int:
    """min(floor((1 - p) * 2**32), 2**32 - 1), in double precision as the contract says."""
    return min(int(np.floor((1.0 - float(p)) * 4294967296.0)), 0xFFFFFFFF)

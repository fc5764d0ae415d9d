"""Image augmentation as stateless ops on NCHW float32 batches, keyed by Philox streams.

Sample ``i`` of a batch draws words ``8i .. 8i+7`` of the stream ``(seed, stream)``, so an
augmented batch depends only on ``(x, seed, stream)``: never on the number of threads. A range
``[0, m)`` is drawn from a word ``u`` as ``(u * m) >> 32`` (exact integers):

- crop: offsets ``dy = (u0 * (2p + 1) >> 32) - p`` and ``dx`` likewise from ``u1``; output pixel
  ``(r, c)`` is input ``(r + dy, c + dx)``, zero outside the image (pad by p, crop H × W);
- flip: mirrored left-right when ``u2 < 2**31`` (before the crop offset is applied:
  output ``(r, c)`` reads input column ``W - 1 - c + dx``);
- erasing: when ``u3 < min(floor(p_erase * 2**32), 2**32 - 1)``, a rectangle of height
  ``1 + (u4 * eh >> 32)``, width ``1 + (u5 * ew >> 32)`` (``eh = max(1, floor(H * max_size))``,
  ``ew`` likewise) at top-left ``(u6 * (H - h + 1) >> 32, u7 * (W - w + 1) >> 32)`` is zeroed
  in every channel.

The layers ``dropnet.layers.RandomCrop``, ``RandomFlip`` and ``RandomErasing`` run the same
kernel on each training batch (one stream per layer and batch) and are the identity at inference.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _core
from . import _device

_ops = _core.ops

__all__ = ["augment_images", "random_crop", "random_flip", "random_erasing"]


@_device.host_only
def augment_images(x: np.ndarray, *, padding: int = 0, flip: bool = False, erase: float = 0.0,
                   erase_max_size: float = 0.5, seed: int, stream: int) -> np.ndarray:
    """Random crop with zero ``padding``, horizontal ``flip`` and random erasing with probability
    ``erase``, in one pass, as the module docstring defines. x: (N, C, H, W) float32. Returns a new
    array of x's shape."""
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding: expected an int >= 0, got {padding!r}")
    if not isinstance(flip, (bool, np.bool_)):
        raise TypeError(f"flip: expected a bool, got {type(flip).__name__}")
    for name, v, lo_open in (("erase", erase, False), ("erase_max_size", erase_max_size, True)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v) or \
                not ((0 < v) if lo_open else (0 <= v)) or v > 1:
            raise ValueError(f"{name}: expected a float in {'(0, 1]' if lo_open else '[0, 1]'}, got {v!r}")
    return _ops.augment_images(x, int(padding), bool(flip), float(erase), float(erase_max_size),
                               int(seed) if isinstance(seed, np.integer) else seed,
                               int(stream) if isinstance(stream, np.integer) else stream)


@_device.host_only
def random_crop(x: np.ndarray, padding: int, *, seed: int, stream: int) -> np.ndarray:
    """Pad by ``padding`` zeros and crop each image back to its size at a random offset."""
    return augment_images(x, padding=padding, seed=seed, stream=stream)


@_device.host_only
def random_flip(x: np.ndarray, *, seed: int, stream: int) -> np.ndarray:
    """Flip each image left-right with probability 1/2."""
    return augment_images(x, flip=True, seed=seed, stream=stream)


@_device.host_only
def random_erasing(x: np.ndarray, p: float = 0.5, max_size: float = 0.5, *, seed: int, stream: int) -> np.ndarray:
    """Zero a random rectangle (all channels) of each image with probability ``p``; sides up to
    ``max_size`` of the image's."""
    return augment_images(x, erase=p, erase_max_size=max_size, seed=seed, stream=stream)

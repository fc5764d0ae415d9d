"""Models whose first weight gradient spells out the dropout masks of a batch (shared by
test_distributed.py and distributed_worker.py).

Input row g is the one-hot vector e_g (GLOBAL_ROWS inputs), every weight is 1 and the mse target
is -1, so the output of row g is keep·scale (or alpha dropout's affine value) and never -1: the
weight gradient's column g is nonzero exactly where row g's elements were kept. Widths are odd
or not multiples of 64 so that shards start at unaligned Philox words."""
from __future__ import annotations

from typing import Dict

import numpy as np

import dropnet
from dropnet import layers as L

GLOBAL_ROWS = 26  # shards at 2, 3, 4 ranks start at rows 13 | 8, 17 | 6, 13, 19
SEED = 5
# name: (build, dropout rate, elements per row that draw words, spatial)
SPECS = {
    "dense_fused_37": (lambda: [L.Input(GLOBAL_ROWS), L.Dense(37, use_bias=False), L.Dropout(0.5)], 0.5, 37),
    "dropout_layer_37": (lambda: [L.Input(GLOBAL_ROWS), L.Dense(37, use_bias=False), L.Activation("relu"),
                                  L.Dropout(0.4)], 0.4, 37),
    "dropout_layer_36": (lambda: [L.Input(GLOBAL_ROWS), L.Dense(36, use_bias=False), L.Activation("relu"),
                                  L.Dropout(0.4)], 0.4, 36),
    "alpha_dropout_29": (lambda: [L.Input(GLOBAL_ROWS), L.Dense(29, use_bias=False), L.AlphaDropout(0.3)], 0.3, 29),
    "spatial_dropout_13": (lambda: [L.Input((GLOBAL_ROWS, 1, 1)), L.Conv2D(13, 1, use_bias=False),
                                    L.SpatialDropout2D(0.5), L.Flatten(), L.Dense(1, use_bias=False)], 0.5, 13),
}


def mask_models() -> Dict[str, dropnet.Sequential]:
    out = {}
    for name, (build, _, _) in SPECS.items():
        m = dropnet.Sequential(build(), seed=SEED)
        m.compile(optimizer="sgd", loss="mse")
        out[name] = m
    return out


def set_all_ones(model: dropnet.Sequential) -> None:
    x = np.zeros((1, *model.input_shape), dtype=np.float32)
    model.predict(x)  # builds the network
    model.set_weights([np.ones_like(w) for w in model.get_weights()])


def masks_from_grad(model: dropnet.Sequential) -> np.ndarray:
    """(GLOBAL_ROWS, elements per row) keep mask from the first weight's gradient in the arena."""
    net = model.network
    w = net.get_params()[0]
    g = net.grad_buffer[net.grad_offsets[0]:net.grad_offsets[0] + w.size].reshape(w.shape[0], GLOBAL_ROWS)
    return (g.T != 0).astype(np.uint8)

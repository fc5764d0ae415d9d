"""The dropnet side of the pruned-network step benchmarks (sparse_train, sparse_cnn): the same
masks run sparse, dense-masked and 'auto', one training step per call."""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

MODES = ("sparse", "dense", "auto")


def step_sides(make_net: Callable, masks, x: np.ndarray, y: np.ndarray) -> Tuple[Dict, Dict[str, Callable]]:
    """make_net(masks, mode) -> a Network. Returns the networks by mode and the timed sides
    'dropnet sparse', 'dropnet auto', 'dropnet dense-masked'."""
    nets = {mode: make_net(masks, mode) for mode in MODES}
    sides = {
        "dropnet sparse": lambda n=nets["sparse"]: n.train_step(x, y),
        "dropnet auto": lambda n=nets["auto"]: n.train_step(x, y),
        "dropnet dense-masked": lambda n=nets["dense"]: n.train_step(x, y),
    }
    return nets, sides


def check_sparse_step(make_net: Callable, masks, x: np.ndarray, y: np.ndarray, rtol: float, atol_scale: float,
                      param_atol: float = 0.0) -> None:
    """One step sparse and one dense-masked from the same weights: the gradients agree to summation
    order (atol relative to the largest gradient). With param_atol, the parameters too, within that
    absolute tolerance: Adam's first step m/sqrt(v) = g/|g| turns a last-bit difference of a
    near-zero gradient into a visible one, so only to a fraction of a step."""
    a, b = make_net(masks, "sparse"), make_net(masks, "dense")
    a.train_step(x, y)
    b.train_step(x, y)
    for p, q in zip(a.get_grads(), b.get_grads()):
        assert np.allclose(p, q, rtol=rtol, atol=atol_scale * np.abs(q).max()), "gradients disagree"
    if param_atol:
        for p, q in zip(a.get_params(), b.get_params()):
            assert np.allclose(p, q, rtol=rtol, atol=param_atol), "sparse and dense-masked steps disagree"


def auto_choices(net) -> str:
    """What 'auto' chose per layer, with the measured break-even."""
    out = []
    for i in net.sparse_info():
        be = i["break_even_density"]
        out.append(f"layer {i['layer']} {'sparse' if i['sparse'] else 'dense'} (density {i['density']:.3f}, "
                   f"break-even {'-' if be is None else f'{be:.3f}'} at batch {i['break_even_batch']})")
    return ", ".join(out)

"""Float64 numpy reimplementation of dropnet._core.nn's forward pass, losses, penalties,
initialisation and optimizers: the independent reference the nn tests check the native code against.

Only the Philox words come from dropnet (``_core.random.uniform_bits``, itself checked against
Random123's known answers by the philox tests); everything built on them (keep rule, scaling,
layers, losses, updates) is written here from the formulas.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from dropnet import _core

SELU_ALPHA = 1.6732632423543772
SELU_LAMBDA = 1.0507009873554805
LEAKY_SLOPE = 0.01
INIT_STREAM_BASE = 1 << 63
CROSSENTROPY = ("sparse_categorical_crossentropy", "categorical_crossentropy")

_erf = np.vectorize(math.erf, otypes=[np.float64])


def keep_mask(seed: int, stream: int, shape, rate: float) -> np.ndarray:
    """Dropout contract: element e is kept iff Philox word e of (seed, stream) < floor((1-p)·2^32)."""
    n = int(np.prod(shape))
    words = _core.random.uniform_bits(n, seed, stream, 0, "cpu").astype(np.uint64)
    threshold = min(math.floor((1.0 - rate) * 2.0**32), 2**32 - 1)
    return (words < np.uint64(threshold)).reshape(shape)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def activate(name: Optional[str], z: np.ndarray, slope: float = LEAKY_SLOPE) -> np.ndarray:
    if name in (None, "linear"):
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "gelu":
        return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
    if name == "selu":
        return SELU_LAMBDA * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0.0)))
    if name == "softmax":
        return softmax(z)
    raise ValueError(name)


def alpha_dropout(h: np.ndarray, keep: np.ndarray, rate: float) -> np.ndarray:
    alpha_p = -SELU_LAMBDA * SELU_ALPHA
    q = 1.0 - rate
    a = (q + alpha_p**2 * q * rate) ** -0.5
    b = -a * alpha_p * rate
    return a * np.where(keep, h, alpha_p) + b


def fused_softmax(layers: Sequence[dict], loss: str) -> bool:
    if loss not in CROSSENTROPY or not layers:
        return False
    last = layers[-1]
    return last["type"] in ("dense", "activation") and last.get("activation") == "softmax"


def forward(layers: Sequence[dict], params: Sequence[np.ndarray], x: np.ndarray, *, loss: str, training: bool,
            seed: int = 0, offset: int = 0, logits: bool = True) -> np.ndarray:
    """Network output in float64. With a fused softmax and logits=True returns the logits."""
    fuse = fused_softmax(layers, loss) and logits
    h = np.asarray(x, dtype=np.float64)
    it = iter(params)
    stream = offset
    for i, spec in enumerate(layers):
        last = i == len(layers) - 1
        kind = spec["type"]
        if kind == "flatten":
            h = h.reshape(len(h), -1)
        elif kind == "dense":
            w = np.asarray(next(it), dtype=np.float64)
            b = np.asarray(next(it), dtype=np.float64) if spec.get("use_bias", True) else 0.0
            act = spec.get("activation")
            h = activate(None if (last and fuse) else act, h @ w.T + b)
            rate = spec.get("dropout", 0.0)
            if training and rate > 0:
                h = h * keep_mask(seed, stream, h.shape, rate) / (1.0 - rate)
                stream += 1
        elif kind == "activation":
            act = spec.get("activation")
            h = activate(None if (last and fuse) else act, h)
        elif kind in ("dropout", "alpha_dropout"):
            rate = spec["rate"]
            if training and rate > 0:
                keep = keep_mask(seed, stream, h.shape, rate)
                stream += 1
                h = h * keep / (1.0 - rate) if kind == "dropout" else alpha_dropout(h, keep, rate)
        else:
            raise ValueError(kind)
    return h


def per_sample_loss(loss: str, out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Crossentropies take `out` as logits; mse is the mean over outputs."""
    if loss in CROSSENTROPY:
        m = out.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(out - m).sum(axis=1, keepdims=True)))[:, 0]
        if loss == "sparse_categorical_crossentropy":
            return lse - out[np.arange(len(out)), y]
        return np.sum(np.asarray(y, np.float64) * (lse[:, None] - out), axis=1)
    return np.mean((out - np.asarray(y, np.float64)) ** 2, axis=1)


def penalty(layers: Sequence[dict], params: Sequence[np.ndarray]) -> float:
    total = 0.0
    it = iter(params)
    for spec in layers:
        if spec["type"] != "dense":
            continue
        w = np.asarray(next(it), dtype=np.float64)
        if spec.get("use_bias", True):
            next(it)
        total += spec.get("l2", 0.0) * np.sum(w * w) + spec.get("l1", 0.0) * np.sum(np.abs(w))
    return float(total)


def objective(layers, params, x, y, *, loss: str, seed: int = 0, offset: int = 0, training: bool = True) -> float:
    """What train_step minimises: mean loss of the batch plus the weight penalties."""
    out = forward(layers, params, x, loss=loss, training=training, seed=seed, offset=offset)
    return float(np.mean(per_sample_loss(loss, out, y)) + penalty(layers, params))


def finite_difference_grads(f, params: Sequence[np.ndarray], h: float = 1e-6) -> List[np.ndarray]:
    """Central differences of f(list of float64 arrays) at params, element by element."""
    base = [np.asarray(p, dtype=np.float64).copy() for p in params]
    grads = []
    for p in base:
        g = np.zeros_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + h
            up = f(base)
            flat[j] = old - h
            down = f(base)
            flat[j] = old
            gflat[j] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def uniform_draw(seed: int, stream: int, n: int, limit: float) -> np.ndarray:
    """Documented init draw: u = (word >> 8)·2^-24 from Philox (seed, stream), (2u - 1)·limit."""
    words = _core.random.uniform_bits(n, seed, stream, 0, "cpu")
    u = (words >> 8).astype(np.float64) * 2.0**-24
    return ((2.0 * u - 1.0) * limit).astype(np.float32)


def init_weight(seed: int, dense_index: int, fan_in: int, fan_out: int, he: bool) -> np.ndarray:
    """He / Glorot weight from stream 2^63 + dense_index."""
    limit = math.sqrt(6.0 / fan_in) if he else math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_draw(seed, INIT_STREAM_BASE + dense_index, fan_in * fan_out, limit).reshape(fan_out, fan_in)


def torch_uniform_init(seed: int, index: int, shape, fan_in: int):
    """torch_uniform: weight from stream 2^63 + index, bias from 2^63 + 2^62 + index, both
    U(±1/sqrt(fan_in)) (PyTorch's nn.Linear / nn.Conv2d default)."""
    limit = 1.0 / math.sqrt(fan_in)
    w = uniform_draw(seed, INIT_STREAM_BASE + index, int(np.prod(shape)), limit).reshape(shape)
    b = uniform_draw(seed, INIT_STREAM_BASE + 2**62 + index, shape[0], limit)
    return w, b


class ReferenceOptimizer:
    """PyTorch's SGD / Adam / AdamW update rules in float64, one state per parameter."""

    def __init__(self, config: Dict):
        self.c = dict(config)
        self.t = 0
        self.state: Dict[int, Dict[str, np.ndarray]] = {}

    def step(self, params: List[np.ndarray], grads: List[np.ndarray], masks=None) -> List[np.ndarray]:
        c = self.c
        self.t += 1
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            p = np.asarray(p, np.float64).copy()
            g = np.asarray(g, np.float64).copy()
            st = self.state.setdefault(i, {})
            wd = c.get("weight_decay", 0.01 if c["type"] == "adamw" else 0.0)
            if c["type"] == "sgd":
                if wd:
                    g = g + wd * p
                mu = c.get("momentum", 0.0)
                if mu:
                    buf = st.get("buf")
                    buf = g.copy() if buf is None else mu * buf + g
                    st["buf"] = buf
                    g = g + mu * buf if c.get("nesterov", False) else buf
                p = p - c["lr"] * g
            else:
                b1, b2 = c.get("beta_1", 0.9), c.get("beta_2", 0.999)
                eps = c.get("epsilon", 1e-7)
                if c["type"] == "adamw":
                    p = p * (1 - c["lr"] * wd)
                elif wd:
                    g = g + wd * p
                m = st.get("m", np.zeros_like(p))
                v = st.get("v", np.zeros_like(p))
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                st["m"], st["v"] = m, v
                m_hat = m / (1 - b1**self.t)
                v_hat = v / (1 - b2**self.t)
                p = p - c["lr"] * m_hat / (np.sqrt(v_hat) + eps)
            out.append(p)
        return out

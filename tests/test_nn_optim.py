"""Optimizers of dropnet._core.nn (SGD plain/momentum/Nesterov/weight decay, Adam, AdamW) against
the numpy update rules of nn_reference.py and, where installed, torch.optim; optimizer state and
learning rate handling; pruning masks that keep weights, gradients and state exactly zero."""
from __future__ import annotations

import numpy as np
import pytest

from dropnet import _core

import nn_reference as ref

Network = _core.nn.Network
SPARSE = "sparse_categorical_crossentropy"

OPTIMIZERS = [
    {"type": "sgd", "lr": 0.1},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9},
    {"type": "sgd", "lr": 0.05, "momentum": 0.8, "nesterov": True},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
    {"type": "sgd", "lr": 0.1, "weight_decay": 0.05},
    {"type": "adam", "lr": 0.01},
    {"type": "adam", "lr": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "weight_decay": 0.02},
    {"type": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"type": "adamw", "lr": 0.02},  # default weight_decay 0.01 (PyTorch's)
]


def make_net(seed=0):
    layers = [
        {"type": "dense", "units": 12, "activation": "relu", "dropout": 0.3},
        {"type": "dense", "units": 4, "activation": "softmax"},
    ]
    return Network(layers, (6,), SPARSE, seed)


def batches(n, rows=16, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, 6)).astype(np.float32), rng.integers(0, 4, rows).astype(np.int64))
            for _ in range(n)]


def run_steps(net, data):
    """params before each step, the grads of each step, and params after the last."""
    trace = []
    for x, y in data:
        before = net.get_params()
        net.train_step(x, y)
        trace.append((before, net.get_grads()))
    return trace, net.get_params()


def ids(c):
    return "-".join(f"{k}={v}" for k, v in c.items())


@pytest.mark.parametrize("config", OPTIMIZERS, ids=ids)
def test_optimizer_steps_match_numpy(config):
    net = make_net()
    net.set_optimizer(config)
    trace, final = run_steps(net, batches(4))
    opt = ref.ReferenceOptimizer(config)
    for k, (before, grads) in enumerate(trace):
        want = opt.step(before, grads)
        got = trace[k + 1][0] if k + 1 < len(trace) else final
        for i, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"step {k + 1}, param {i}")
    assert net.get_optimizer_state()["step"] == 4


@pytest.mark.parametrize("config", OPTIMIZERS, ids=ids)
def test_optimizer_steps_match_torch(config):
    torch = pytest.importorskip("torch")
    net = make_net()
    net.set_optimizer(config)
    trace, final = run_steps(net, batches(4))
    params = [torch.tensor(p, dtype=torch.float32, requires_grad=True) for p in trace[0][0]]
    wd = config.get("weight_decay", 0.01 if config["type"] == "adamw" else 0.0)
    if config["type"] == "sgd":
        opt = torch.optim.SGD(params, lr=config["lr"], momentum=config.get("momentum", 0.0),
                              nesterov=config.get("nesterov", False), weight_decay=wd)
    else:
        cls = torch.optim.Adam if config["type"] == "adam" else torch.optim.AdamW
        opt = cls(params, lr=config["lr"], betas=(config.get("beta_1", 0.9), config.get("beta_2", 0.999)),
                  eps=config.get("epsilon", 1e-7), weight_decay=wd)
    for _, grads in trace:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        opt.step()
    for p, want in zip(final, params):
        np.testing.assert_allclose(p, want.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_lr_settable_between_steps():
    net = make_net()
    net.set_optimizer({"type": "sgd", "lr": 0.1})
    assert net.lr == pytest.approx(0.1)
    data = batches(2)
    net.train_step(*data[0])
    net.lr = 0.025
    assert net.lr == 0.025
    before = net.get_params()
    net.train_step(*data[1])
    for b, g, a in zip(before, net.get_grads(), net.get_params()):
        np.testing.assert_allclose(a, b - np.float32(0.025) * g, rtol=1e-6, atol=1e-7)
    assert net.get_optimizer_config() == {"type": "sgd", "lr": 0.025, "momentum": 0.0, "nesterov": False,
                                          "weight_decay": 0.0}
    with pytest.raises(ValueError, match="lr: expected a finite value >= 0, got -1"):
        net.lr = -1.0
    with pytest.raises(TypeError, match="lr: expected a number, got str"):
        net.lr = "0.1"
    assert net.lr == 0.025


def test_optimizer_state_round_trip_resumes_bit_for_bit():
    data = batches(5)
    net = make_net()
    net.set_optimizer({"type": "adam", "lr": 0.01, "weight_decay": 0.01})
    for x, y in data[:3]:
        net.train_step(x, y)
    saved = (net.get_params(), net.get_optimizer_state(), net.rng_offset)
    assert saved[1]["step"] == 3 and len(saved[1]["slots"]) == 8  # m, v of W1 b1 W2 b2
    for x, y in data[3:]:
        net.train_step(x, y)
    want = net.get_params()

    # The dropout masks need the same seed; everything else comes from the saved state.
    resumed = make_net(seed=0)
    resumed.set_optimizer({"type": "adam", "lr": 0.01, "weight_decay": 0.01})
    resumed.set_params(saved[0])
    resumed.set_optimizer_state(saved[1])
    resumed.rng_offset = saved[2]
    for a, b in zip(saved[1]["slots"], resumed.get_optimizer_state()["slots"]):
        np.testing.assert_array_equal(a, b)
    for x, y in data[3:]:
        resumed.train_step(x, y)
    for a, b in zip(want, resumed.get_params()):
        np.testing.assert_array_equal(a, b)


def test_optimizer_state_and_config_errors():
    net = make_net()
    net.set_optimizer({"type": "sgd", "lr": 0.1, "momentum": 0.9})
    state = net.get_optimizer_state()
    assert state == {"step": 0, "slots": state["slots"]} and len(state["slots"]) == 4
    assert all(not s.any() for s in state["slots"])
    with pytest.raises(ValueError, match=r"state\['slots'\]: expected 4 arrays, got 3"):
        net.set_optimizer_state({"step": 1, "slots": state["slots"][:3]})
    with pytest.raises(ValueError, match=r"state\['slots'\]\[1\]: expected shape \(12,\)"):
        net.set_optimizer_state({"step": 1, "slots": [state["slots"][0], state["slots"][0]] + state["slots"][2:]})
    with pytest.raises(ValueError, match=r"state\['step'\]: expected an int >= 0"):
        net.set_optimizer_state({"step": -1, "slots": state["slots"]})
    assert net.get_optimizer_state()["step"] == 0
    for bad, exc, msg in [
        ({"type": "rmsprop"}, ValueError, r"config\['type'\]: expected 'sgd', 'adam' or 'adamw', got 'rmsprop'"),
        ({"type": "sgd", "lr": -0.1}, ValueError, "lr: expected a finite value >= 0"),
        ({"type": "sgd", "lr": 0.1, "nesterov": True}, ValueError, "nesterov: needs momentum > 0"),
        ({"type": "adam", "beta_1": 1.0}, ValueError, r"beta_1: expected a value in \[0, 1\)"),
        ({"type": "adam", "epsilon": 0.0}, ValueError, "epsilon: expected a value > 0"),
        ({"type": "adam", "betas": (0.9, 0.99)}, ValueError, "unknown key 'betas'"),
        ({"type": "sgd", "lr": "fast"}, TypeError, r"config\['lr'\]: expected a number, got str"),
        ([("type", "sgd")], TypeError, "config: expected a dict, got list"),
    ]:
        with pytest.raises(exc, match=msg):
            net.set_optimizer(bad)
    assert net.get_optimizer_config()["momentum"] == 0.9  # a rejected config changes nothing


MASKED_OPTIMIZERS = [
    {"type": "sgd", "lr": 0.1},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"type": "adam", "lr": 0.01, "weight_decay": 0.01},
    {"type": "adamw", "lr": 0.01, "weight_decay": 0.1},
]


@pytest.mark.parametrize("config", MASKED_OPTIMIZERS, ids=ids)
def test_masks_keep_pruned_weights_exactly_zero(config):
    layers = [
        {"type": "dense", "units": 12, "activation": "relu", "dropout": 0.3, "l1": 1e-3, "l2": 1e-3},
        {"type": "dense", "units": 4, "activation": "softmax"},
    ]
    net = Network(layers, (6,), SPARSE, 0)
    net.set_optimizer(config)
    data = batches(12)
    for x, y in data[:2]:  # optimizer state is non-zero everywhere before pruning
        net.train_step(x, y)
    rng = np.random.default_rng(3)
    masks = {0: (rng.random((12, 6)) > 0.5).astype(np.float32), 2: (rng.random((4, 12)) > 0.3).astype(np.float32)}
    for i, m in masks.items():
        net.set_mask(i, m)
        np.testing.assert_array_equal(net.get_mask(i), m)
    assert net.get_mask(1) is None
    kept_before = {i: net.get_params()[i][m == 1] for i, m in masks.items()}
    for x, y in data[2:]:
        net.train_step(x, y)
        params, grads, slots = net.get_params(), net.get_grads(), net.get_optimizer_state()["slots"]
        per = len(slots) // len(params)
        for i, m in masks.items():
            assert np.all(params[i][m == 0] == 0)
            assert np.all(grads[i][m == 0] == 0)
            for s in slots[i * per:(i + 1) * per]:
                assert np.all(s[m == 0] == 0)
    for i, m in masks.items():
        assert np.all(net.get_params()[i][m == 1] != kept_before[i])  # the rest still trains
    # set_params cannot revive a pruned weight either
    net.set_params([p + 1 for p in net.get_params()])
    assert np.all(net.get_params()[0][masks[0] == 0] == 0)
    net.set_mask(0, None)
    assert net.get_mask(0) is None


def test_mask_errors():
    net = make_net()
    with pytest.raises(ValueError, match=r"mask: expected shape \(12, 6\) \(params\[0\]\), got \(6, 12\)"):
        net.set_mask(0, np.ones((6, 12), np.float32))
    with pytest.raises(ValueError, match="mask: expected only 0 and 1, got 0.5"):
        net.set_mask(0, np.full((12, 6), 0.5, np.float32))
    with pytest.raises(TypeError, match="mask: expected dtype float32, got bool"):
        net.set_mask(0, np.ones((12, 6), bool))
    with pytest.raises(ValueError, match=r"param_index: expected an int in \[0, 4\), got 4"):
        net.set_mask(4, np.ones((12, 6), np.float32))
    assert net.get_mask(0) is None

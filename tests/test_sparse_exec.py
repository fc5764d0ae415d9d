"""Sparse execution of pruned Dense layers (Network.set_sparse_mode, sparse_info,
Sequential.set_sparse_execution) against the dense masked path and the float64 numpy reference of
nn_reference.py: gradients by finite differences, training equivalence for every optimizer at
50/90/99 % sparsity, dropout masks bit for bit (numpy Philox reference), no stale compressed
copies after set_params / set_mask / optimizer state changes, thread and ISA determinism, empty
rows and fully pruned layers, and input errors."""
from __future__ import annotations

import numpy as np
import pytest

import dropnet
from dropnet import _core

import nn_reference as ref

Network = _core.nn.Network
SPARSE = "sparse_categorical_crossentropy"

LAYERS = [
    {"type": "dense", "units": 48, "activation": "relu", "dropout": 0.5},
    {"type": "dense", "units": 32, "activation": "gelu", "dropout": 0.3, "l2": 1e-3},
    {"type": "dense", "units": 24, "activation": "tanh", "l1": 1e-4},
    {"type": "dense", "units": 10, "activation": "softmax"},
]
N_IN = 40

OPTIMIZERS = [
    {"type": "sgd", "lr": 0.05},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"type": "adam", "lr": 0.01, "weight_decay": 1e-3},
    {"type": "adamw", "lr": 0.01, "weight_decay": 0.05},
]


def random_masks(net, sparsity, seed=1, output_rate=0.5):
    """0/1 masks for every weight (bias unmasked); the output layer pruned at half the rate."""
    rng = np.random.default_rng(seed)
    info = net.sparse_info()
    masks = {}
    for j, layer in enumerate(info):
        shape = net.get_params()[layer["param_index"]].shape
        rate = sparsity * (output_rate if j == len(info) - 1 else 1.0)
        masks[layer["param_index"]] = (rng.random(shape) >= rate).astype(np.float32)
    return masks


def make_net(mode, sparsity, *, layers=LAYERS, seed=7, mask_seed=1):
    net = Network(layers, (N_IN,), SPARSE, seed)
    for i, m in random_masks(net, sparsity, mask_seed).items():
        net.set_mask(i, m)
        net.set_sparse_mode(i, mode)
    return net


def batches(steps, rows=33, seed=3):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, N_IN)).astype(np.float32), rng.integers(0, 10, rows).astype(np.int64))
            for _ in range(steps)]


def assert_pruned_zero(net):
    params, grads = net.get_params(), net.get_grads()
    slots = net.get_optimizer_state()["slots"]
    per = len(slots) // len(params) if slots else 0
    for i, p in enumerate(params):
        m = net.get_mask(i)
        if m is None:
            continue
        assert np.all(p[m == 0] == 0) and np.all(grads[i][m == 0] == 0)
        for s in slots[i * per:(i + 1) * per]:
            assert np.all(s[m == 0] == 0)


def assert_close_lists(a, b, rtol=2e-5, atol=2e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ against the numpy reference

@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_sparse_gradients_match_finite_differences_of_the_masked_reference(dropout, isa_level):
    layers = [{"type": "dense", "units": 7, "activation": "relu", "dropout": dropout},
              {"type": "dense", "units": 5, "activation": "sigmoid"},
              {"type": "dense", "units": 3, "activation": "softmax"}]
    rng = np.random.default_rng(0)
    net = Network(layers, (6,), SPARSE, 3)
    masks = random_masks(net, 0.5, seed=4)
    params = [p + rng.normal(0, 0.1, p.shape).astype(np.float32) for p in net.get_params()]
    net.set_params(params)
    for i, m in masks.items():
        net.set_mask(i, m)
        net.set_sparse_mode(i, "sparse")
    params = net.get_params()
    x = rng.standard_normal((6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 6).astype(np.int64)
    net.set_optimizer({"type": "sgd", "lr": 0.0})
    offset = net.rng_offset
    loss = net.train_step(x, y)
    assert all(info["sparse"] for info in net.sparse_info())

    def f(ps):
        return ref.objective(layers, ps, x, y, loss=SPARSE, seed=3, offset=offset)

    assert loss == pytest.approx(f(params), rel=1e-5, abs=1e-6)
    fd = ref.finite_difference_grads(f, params)
    for i, (g, want) in enumerate(zip(net.get_grads(), fd)):
        if i in masks:
            want = want * masks[i]  # gradients never revive a pruned weight
        np.testing.assert_allclose(g, want, rtol=2e-3, atol=2e-5)


def test_sparse_dropout_mask_is_the_reference_philox_mask():
    # Identity output with dropout: an output is 0 exactly where the reference mask drops it.
    layers = [{"type": "dense", "units": 37, "activation": "linear", "dropout": 0.4}]
    net = Network(layers, (N_IN,), "mse", 5)
    net.set_params([p + 0.1 for p in net.get_params()])  # no exact zeros from the product
    net.set_mask(0, (np.random.default_rng(0).random((37, N_IN)) > 0.9).astype(np.float32))
    net.set_sparse_mode(0, "sparse")
    x = np.random.default_rng(1).standard_normal((19, N_IN)).astype(np.float32)
    out = net.forward(x, training=True, stream_offset=6)
    keep = ref.keep_mask(5, 6, out.shape, 0.4)
    np.testing.assert_array_equal(out != 0, keep)
    w, b = net.get_params()
    np.testing.assert_allclose(out, np.where(keep, (x @ w.T + b) / 0.6, 0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ sparse vs dense masked path

@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o["type"] + ("_m" if o.get("momentum") else ""))
def test_sparse_training_matches_dense_masked_training(sparsity, opt):
    nets = {mode: make_net(mode, sparsity) for mode in ("sparse", "dense")}
    data = batches(4)
    for mode, net in nets.items():
        net.set_optimizer(opt)
    for x, y in data:
        losses = {mode: net.train_step(x, y) for mode, net in nets.items()}
        assert losses["sparse"] == pytest.approx(losses["dense"], rel=1e-5)
        for net in nets.values():
            assert_pruned_zero(net)
    s, d = nets["sparse"], nets["dense"]
    assert [i["sparse"] for i in s.sparse_info()] == [True] * 4
    assert [i["sparse"] for i in d.sparse_info()] == [False] * 4
    assert s.rng_offset == d.rng_offset
    assert_close_lists(s.get_params(), d.get_params())
    assert_close_lists(s.get_grads(), d.get_grads(), rtol=1e-4, atol=1e-6)
    ss, ds = s.get_optimizer_state(), d.get_optimizer_state()
    assert ss["step"] == ds["step"]
    assert_close_lists(ss["slots"], ds["slots"], rtol=1e-4, atol=1e-6)
    for i in range(len(s.get_params())):
        m = s.get_mask(i)
        assert (m is None) == (d.get_mask(i) is None)
        if m is not None:
            np.testing.assert_array_equal(m, d.get_mask(i))


def test_inference_mc_dropout_and_evaluate_match_dense():
    s, d = make_net("sparse", 0.9), make_net("dense", 0.9)
    for net in (s, d):
        net.set_optimizer({"type": "adam", "lr": 0.01})
        for x, y in batches(2):
            net.train_step(x, y)
    x, y = batches(1, rows=77, seed=9)[0]
    np.testing.assert_allclose(s.forward(x), d.forward(x), rtol=1e-5, atol=1e-7)
    for k in (0, 5):  # MC dropout: the same masks at the same stream offset
        a, b = s.forward(x, training=True, stream_offset=k), d.forward(x, training=True, stream_offset=k)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    ls, cs = s.evaluate(x, y, batch_size=20)
    ld, cd = d.evaluate(x, y, batch_size=20)
    assert ls == pytest.approx(ld, rel=1e-5) and cs == cd
    assert all(i["sparse"] for i in s.sparse_info())


def test_switching_modes_mid_training_reads_no_stale_copy():
    # sparse -> dense -> sparse, with set_params, set_optimizer_state and a new mask in between,
    # must give what the dense path gives for the same sequence of calls.
    def run(modes):
        net = make_net(modes[0], 0.8)
        net.set_optimizer({"type": "adam", "lr": 0.01})
        data = batches(6, seed=11)
        for step, (x, y) in enumerate(data):
            for i in [j["param_index"] for j in net.sparse_info()]:
                net.set_sparse_mode(i, modes[step % len(modes)])
            net.train_step(x, y)
            if step == 1:
                net.set_params([p * 0.5 for p in net.get_params()])
            if step == 2:
                state = net.get_optimizer_state()
                state["slots"] = [sl * 0.25 for sl in state["slots"]]
                net.set_optimizer_state(state)
            if step == 3:
                m = net.get_mask(0)
                m[:, :5] = 0
                net.set_mask(0, m)
            assert_pruned_zero(net)
        return net

    a, b = run(["sparse", "dense", "sparse"]), run(["dense"])
    assert_close_lists(a.get_params(), b.get_params(), rtol=1e-4, atol=1e-6)
    assert_close_lists(a.get_optimizer_state()["slots"], b.get_optimizer_state()["slots"], rtol=1e-4, atol=1e-6)


def test_get_params_after_sparse_steps_are_current():
    net = make_net("sparse", 0.9)
    net.set_optimizer({"type": "sgd", "lr": 0.1})
    x, y = batches(1)[0]
    before = net.get_params()
    net.train_step(x, y)
    after, grads = net.get_params(), net.get_grads()
    for i in range(len(before)):  # plain SGD: w' = w - lr g, at every entry the dense view shows
        np.testing.assert_allclose(after[i], before[i] - 0.1 * grads[i], rtol=1e-6, atol=1e-7)
        assert not np.array_equal(after[i], before[i])
    # a fresh network given these parameters and masks predicts the same
    fresh = make_net("dense", 0.9)
    fresh.set_params(after)
    np.testing.assert_allclose(net.forward(x), fresh.forward(x), rtol=1e-5, atol=1e-7)


def test_one_and_two_threads_identical_bits_in_sparse_mode(isa_level):
    layers = [{"type": "dense", "units": 300, "activation": "relu", "dropout": 0.5},
              {"type": "dense", "units": 100, "activation": "relu", "dropout": 0.5},
              {"type": "dense", "units": 10, "activation": "softmax"}]
    results = []
    for threads in (1, 2):
        dropnet.set_num_threads(threads)
        net = Network(layers, (256,), SPARSE, 3)
        for i, m in random_masks(net, 0.9).items():
            net.set_mask(i, m)
            net.set_sparse_mode(i, "sparse")
        net.set_optimizer({"type": "adam", "lr": 0.001})
        rng = np.random.default_rng(0)
        losses = []
        for _ in range(2):
            x = rng.standard_normal((128, 256)).astype(np.float32)
            losses.append(net.train_step(x, rng.integers(0, 10, 128).astype(np.int64)))
        results.append((net.get_params(), net.get_grads(), losses))
    (p1, g1, l1), (p2, g2, l2) = results
    assert l1 == l2
    for a, b in zip(p1 + g1, p2 + g2):
        np.testing.assert_array_equal(a, b)


def test_empty_rows_and_fully_pruned_layer():
    net_s, net_d = (Network(LAYERS, (N_IN,), SPARSE, 2) for _ in range(2))
    masks = random_masks(net_s, 0.7)
    masks[0][::3] = 0            # empty rows of the first weight
    masks[0][:, ::4] = 0         # and empty columns (rows of the transposed copy)
    masks[2][:] = 0              # a fully pruned layer: its output is the bias alone
    for net, mode in ((net_s, "sparse"), (net_d, "dense")):
        net.set_optimizer({"type": "adam", "lr": 0.01})
        for i, m in masks.items():
            net.set_mask(i, m)
            net.set_sparse_mode(i, mode)
        for x, y in batches(3):
            net.train_step(x, y)
        assert_pruned_zero(net)
    assert_close_lists(net_s.get_params(), net_d.get_params())
    w2, b2 = net_s.get_params()[2], net_s.get_params()[3]
    assert np.all(w2 == 0) and np.any(b2 != 0)  # the bias still learns
    info = net_s.sparse_info()
    assert info[1]["density"] == 0.0 and info[1]["sparse"]


# ------------------------------------------------------------------ modes, info, errors

def test_sparse_info_and_auto_mode():
    net = Network(LAYERS, (N_IN,), SPARSE, 0)
    info = net.sparse_info()
    assert [i["layer"] for i in info] == [0, 1, 2, 3]
    assert [i["param_index"] for i in info] == [0, 2, 4, 6]
    assert all(i["density"] == 1.0 and i["mode"] == "auto" and not i["sparse"] for i in info)
    assert all(i["break_even_density"] is None and i["inference_break_even_density"] is None for i in info)
    masks = random_masks(net, 0.9)
    for i, m in masks.items():
        net.set_mask(i, m)
    net.set_sparse_mode(1, "dense")   # a bias index names its layer too
    net.set_sparse_mode(4, "sparse")
    x, y = batches(1)[0]
    net.train_step(x, y)
    info = net.sparse_info()
    assert [i["mode"] for i in info] == ["dense", "auto", "sparse", "auto"]
    for i, layer in enumerate(info):
        assert layer["density"] == pytest.approx(masks[layer["param_index"]].mean())
    assert not info[0]["sparse"] and info[2]["sparse"]
    for layer in (info[1], info[3]):  # auto: sparse exactly when below the measured break-even
        be = layer["break_even_density"]
        assert 0.0 <= be <= 1.0 and layer["break_even_batch"] == 64 and layer["dense_seconds"] > 0
        assert layer["sparse"] == (layer["density"] < be)
    net.forward(x[:20])  # inference decides by the forward pass's break-even (same batch bucket 32)
    for layer in (net.sparse_info()[1], net.sparse_info()[3]):
        be = layer["inference_break_even_density"]
        assert 0.0 <= be <= 1.0 and layer["break_even_batch"] == 32
        assert layer["sparse"] == (layer["density"] < be)
    net.set_mask(2, None)  # unmasked: never sparse, whatever the mode
    net.train_step(x, y)
    assert not net.sparse_info()[1]["sparse"] and net.sparse_info()[1]["density"] == 1.0


def test_bad_modes_raise_clear_errors():
    net = Network(LAYERS, (N_IN,), SPARSE, 0)
    with pytest.raises(ValueError, match="mode: expected 'auto', 'sparse' or 'dense', got 'on'"):
        net.set_sparse_mode(0, "on")
    with pytest.raises(TypeError, match="mode: expected"):
        net.set_sparse_mode(0, 1)
    with pytest.raises(ValueError, match="param_index"):
        net.set_sparse_mode(8, "sparse")
    assert [i["mode"] for i in net.sparse_info()] == ["auto"] * 4


def test_sequential_set_sparse_execution():
    from dropnet import layers as L
    from dropnet.models import Sequential

    model = Sequential([L.Dense(32, activation="relu"), L.Dropout(0.5), L.Dense(10, activation="softmax")],
                       input_shape=(N_IN,), seed=1)
    model.set_sparse_execution("on", layers=[0])  # before compile: kept for the build
    model.compile("adam")
    assert [i["mode"] for i in model.sparse_info()] == ["sparse", "auto"]
    model.set_sparse_execution("off")
    assert [i["mode"] for i in model.sparse_info()] == ["dense", "dense"]
    model.set_sparse_execution("auto", layers=[model.layers[2]])
    assert [i["mode"] for i in model.sparse_info()] == ["dense", "auto"]
    with pytest.raises(ValueError, match="mode: expected 'auto', 'on' or 'off', got 'sparse'"):
        model.set_sparse_execution("sparse")
    with pytest.raises(ValueError, match="layers"):
        model.set_sparse_execution("on", layers=[1])  # the Dropout layer
    with pytest.raises(ValueError, match="out of range"):
        model.set_sparse_execution("on", layers=[7])
    with pytest.raises(TypeError, match="layers"):
        model.set_sparse_execution("on", layers=3)
    assert [i["mode"] for i in model.sparse_info()] == ["dense", "auto"]

"""Sparse execution of pruned Conv2D layers (nn/sparse_conv.h, kernels/cpu/csr_matmul.h): gradients
against float64 finite differences of the numpy network of test_cnn.py with the masked weight,
training against the dense masked path for every optimizer and sparsity, the forward against the
numpy convolution for strides, padding, dilation and activations, identical bits for 1 and 2
threads and across ISAs, pruned weights that stay zero, empty filters and
a fully pruned layer, and the Python API."""
from __future__ import annotations

import numpy as np
import pytest

import dropnet
from dropnet import _core
from dropnet import layers as L
from dropnet import prune
from nn_reference import finite_difference_grads
from test_cnn import SCE, np_conv, small_net_layers, small_net_loss
from test_sparse_exec import OPTIMIZERS, assert_close_lists, assert_pruned_zero

Network = _core.nn.Network


def conv_mask(shape, sparsity, seed=0):
    return (np.random.default_rng(seed).random(shape) >= sparsity).astype(np.float32)


def sparse_conv_net(layers, in_shape, mode, sparsity, seed=3, mask_seed=0):
    net = Network(layers, in_shape, SCE, seed)
    net.set_mask(0, conv_mask(net.get_params()[0].shape, sparsity, mask_seed))
    net.set_sparse_mode(0, mode)
    return net


# ------------------------------------------------------------------ against float64 numpy
@pytest.mark.parametrize("pad,stride,dilation", [(1, 1, 1), (0, 2, 1), (2, 1, 2)])
def test_sparse_conv_gradients_match_finite_differences(pad, stride, dilation, isa_level):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 9, 9)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    net = sparse_conv_net(small_net_layers([pad, pad], stride, dilation), (2, 9, 9), "sparse", 0.6)
    params = [p.astype(np.float64) for p in net.get_params()]
    params[2] = 1.0 + 0.3 * rng.standard_normal(3)
    params[3] = 0.2 * rng.standard_normal(3)
    mask = net.get_mask(0)
    params[0] = params[0] * mask
    net.set_params([p.astype(np.float32) for p in params])
    params = [p.astype(np.float32).astype(np.float64) for p in params]
    net.set_optimizer({"type": "sgd", "lr": 0.0})
    loss = net.train_step(x, labels)
    assert net.sparse_info()[0]["sparse"]
    x64 = x.astype(np.float64)
    assert loss == pytest.approx(small_net_loss(params, x64, labels, pad, stride, dilation), rel=1e-5)
    grads = net.get_grads()
    fd = finite_difference_grads(lambda ps: small_net_loss(ps, x64, labels, pad, stride, dilation), params, h=1e-5)
    fd[0] *= mask  # pruned weights get no gradient
    for i, (g, want) in enumerate(zip(grads, fd)):
        np.testing.assert_allclose(g, want, rtol=2e-3, atol=2e-5, err_msg=f"param {i}")


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh", "leaky_relu"])
@pytest.mark.parametrize("cfg", [dict(pad=1, stride=1, dilation=1, hw=9), dict(pad=0, stride=2, dilation=1, hw=11),
                                 dict(pad=2, stride=1, dilation=2, hw=20), dict(pad=1, stride=1, dilation=1, hw=28)])
@pytest.mark.parametrize("sparsity", [0.0, 0.9, 1.0])
def test_sparse_conv_forward_matches_numpy(activation, cfg, sparsity):
    rng = np.random.default_rng(1)
    hw = cfg["hw"]  # 28: 784 output pixels, every vector width of the kernel's column chunks
    layers = [{"type": "conv2d", "filters": 5, "kernel_size": [3, 3], "strides": [cfg["stride"]] * 2,
               "padding": [cfg["pad"]] * 2, "dilation": [cfg["dilation"]] * 2, "activation": activation},
              {"type": "flatten"}, {"type": "dense", "units": 2, "activation": "linear"}]
    net = sparse_conv_net(layers, (3, hw, hw), "sparse", sparsity)
    params = net.get_params()
    params[1] = rng.standard_normal(5).astype(np.float32)  # a bias to add
    net.set_params(params)
    x = rng.standard_normal((4, 3, hw, hw)).astype(np.float32)
    out = net.forward(x)
    assert net.sparse_info()[0]["sparse"]
    w, b = (params[0] * net.get_mask(0)).astype(np.float64), params[1].astype(np.float64)
    z = np_conv(x.astype(np.float64), w, b, cfg["pad"], cfg["stride"], cfg["dilation"])
    h = {"relu": np.maximum(z, 0), "linear": z, "tanh": np.tanh(z), "leaky_relu": np.where(z > 0, z, 0.01 * z)}[activation]
    want = h.reshape(len(x), -1) @ params[2].T.astype(np.float64) + params[3]
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ sparse vs dense masked path
CNN = [{"type": "conv2d", "filters": 8, "kernel_size": [3, 3], "padding": [1, 1], "activation": "relu"},
       {"type": "max_pool2d", "pool_size": [2, 2]},
       {"type": "conv2d", "filters": 12, "kernel_size": [3, 3], "padding": [1, 1], "use_bias": False},  # BN follows
       {"type": "batch_norm", "relu": True},
       {"type": "flatten"},
       {"type": "dense", "units": 16, "activation": "relu", "dropout": 0.3},
       {"type": "dense", "units": 10, "activation": "softmax"}]


def cnn_pair(sparsity, opt):
    nets = {}
    for mode in ("sparse", "dense"):
        net = Network(CNN, (2, 12, 12), SCE, 11)
        rng = np.random.default_rng(5)
        for i, p in enumerate(net.get_params()):
            if p.ndim in (2, 4):
                net.set_mask(i, (rng.random(p.shape) >= sparsity).astype(np.float32))
                net.set_sparse_mode(i, mode)
        net.set_optimizer(opt)
        nets[mode] = net
    return nets


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o["type"] + ("_m" if o.get("momentum") else ""))
def test_sparse_cnn_training_matches_dense_masked_training(sparsity, opt):
    nets = cnn_pair(sparsity, opt)
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = rng.standard_normal((19, 2, 12, 12)).astype(np.float32)  # 19: a ragged last chunk of images
        y = rng.integers(0, 10, 19).astype(np.int64)
        losses = {mode: net.train_step(x, y) for mode, net in nets.items()}
        assert losses["sparse"] == pytest.approx(losses["dense"], rel=1e-4)
        for net in nets.values():
            assert_pruned_zero(net)
    s, d = nets["sparse"], nets["dense"]
    assert [i["sparse"] for i in s.sparse_info()] == [True] * 4
    assert [i["sparse"] for i in d.sparse_info()] == [False] * 4
    assert_close_lists(s.get_params(), d.get_params(), rtol=1e-4, atol=1e-5)
    assert_close_lists(s.get_grads(), d.get_grads(), rtol=1e-3, atol=1e-5)
    assert_close_lists(s.get_optimizer_state()["slots"], d.get_optimizer_state()["slots"], rtol=1e-3, atol=1e-6)
    x = rng.standard_normal((7, 2, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(s.forward(x), d.forward(x), rtol=1e-4, atol=1e-6)


def test_sparse_cnn_one_and_two_threads_identical_bits(isa_level):
    results = []
    for threads in (1, 2):
        dropnet.set_num_threads(threads)
        net = cnn_pair(0.8, {"type": "adam", "lr": 0.01})["sparse"]
        rng = np.random.default_rng(0)
        losses = [net.train_step(rng.standard_normal((21, 2, 12, 12)).astype(np.float32),
                                 rng.integers(0, 10, 21).astype(np.int64)) for _ in range(2)]
        results.append((net.get_params(), net.get_grads(), losses))
    (p1, g1, l1), (p2, g2, l2) = results
    assert l1 == l2
    for a, b in zip(p1 + g1, p2 + g2):
        np.testing.assert_array_equal(a, b)


def test_sparse_conv_forward_identical_bits_on_every_isa():
    # ReLU / identity and the bias are fused into the kernel, whose every path sums each output in
    # the same fma order: the ISAs agree bit for bit.
    layers = [{"type": "conv2d", "filters": 7, "kernel_size": [3, 3], "padding": [1, 1], "activation": "relu"},
              {"type": "flatten"}]
    net = Network(layers, (4, 15, 15), "mse", 3)
    net.set_mask(0, conv_mask(net.get_params()[0].shape, 0.7))
    net.set_sparse_mode(0, "sparse")
    x = np.random.default_rng(3).standard_normal((5, 4, 15, 15)).astype(np.float32)
    outs = []
    for isa in dropnet.cpu_features()["available"]:
        with dropnet.isa(isa):
            outs.append(net.forward(x))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_empty_filters_and_fully_pruned_conv():
    for kill in ("filters", "all"):
        nets = {}
        for mode in ("sparse", "dense"):
            net = Network(CNN, (2, 12, 12), SCE, 4)
            m = conv_mask(net.get_params()[0].shape, 0.5)
            if kill == "filters":
                m[::2] = 0  # whole filters pruned: empty rows of the CSR
                m[:, :, 1, 1] = 0  # and a kernel tap in every filter: empty columns
            else:
                m[:] = 0
            net.set_mask(0, m)
            net.set_sparse_mode(0, mode)
            net.set_optimizer({"type": "sgd", "lr": 0.1, "momentum": 0.9})
            nets[mode] = net
        rng = np.random.default_rng(1)
        for _ in range(2):
            x = rng.standard_normal((9, 2, 12, 12)).astype(np.float32)
            y = rng.integers(0, 10, 9).astype(np.int64)
            ls, ld = (nets[k].train_step(x, y) for k in ("sparse", "dense"))
            assert ls == pytest.approx(ld, rel=1e-4)
        assert_close_lists(nets["sparse"].get_params(), nets["dense"].get_params(), rtol=1e-4, atol=1e-5)
        assert_pruned_zero(nets["sparse"])


def test_sequential_sparse_execution_of_conv_layers():
    model = dropnet.models.Sequential([L.Conv2D(6, 3, padding="same", activation="relu"), L.MaxPool2D(2),
                                       L.Flatten(), L.Dense(10, activation="softmax")],
                                      input_shape=(1, 8, 8), seed=0)
    model.compile(optimizer="adam", loss=SCE)
    prune.magnitude(model, 0.9)
    model.set_sparse_execution("on", layers=[model.layers[0]])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    info = model.sparse_info()
    assert [i["layer"] for i in info] == [0, 3] and info[0]["sparse"] and info[0]["density"] < 0.2
    w = model.get_weights()[0]
    assert np.all(w[prune.get_masks(model)[0] == 0] == 0)
    with pytest.raises(ValueError, match="expected Dense or Conv2D layers"):
        model.set_sparse_execution("on", layers=[model.layers[1]])

"""Convolutional networks end to end: Conv2D, pooling, BatchNormalization and SpatialDropout2D in
the native Network and in ``Sequential``, checked against a float64 numpy reimplementation
written here (and PyTorch where installed)."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import dropnet
from dropnet import _core
from dropnet import layers as L
from nn_reference import keep_mask

SCE = "sparse_categorical_crossentropy"


# ------------------------------------------------------------------ float64 numpy reference
def np_conv(x, w, b, pad, stride=1, dilation=1):
    """Cross-correlation, PyTorch semantics: x (N, C, H, W), w (F, C, kh, kw), symmetric pad."""
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    win = sliding_window_view(xp, (span_h, span_w), axis=(2, 3))[:, :, ::stride, ::stride, ::dilation, ::dilation]
    y = np.einsum("nchwij,fcij->nfhw", win, w)
    return y if b is None else y + b[None, :, None, None]


def np_bn(x, gamma, beta, eps, mean=None, var=None):
    """Batch norm over all axes but 1; batch statistics (biased variance) unless mean/var given."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    if mean is None:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) + beta.reshape(shape)


def np_maxpool2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def np_xent(z, labels):
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean()


def small_net_layers(pad, stride=1, dilation=1):
    return [{"type": "conv2d", "filters": 3, "kernel_size": [3, 3], "strides": [stride, stride], "padding": pad,
             "dilation": [dilation, dilation]},
            {"type": "batch_norm", "relu": True},
            {"type": "max_pool2d", "pool_size": [2, 2]},
            {"type": "flatten"},
            {"type": "dense", "units": 4, "activation": "softmax"}]


def small_net_loss(params, x, labels, pad, stride=1, dilation=1):
    w, b, gamma, beta, dw, db = params
    h = np_conv(x, w, b, pad, stride, dilation)
    h = np.maximum(np_bn(h, gamma, beta, 1e-5), 0.0)
    h = np_maxpool2(h).reshape(len(x), -1)
    return np_xent(h @ dw.T + db, labels)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("pad,stride,dilation", [(1, 1, 1), (0, 2, 1), (2, 1, 2)])
def test_gradients_match_float64_finite_differences(pad, stride, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 9, 9)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    net = _core.nn.Network(small_net_layers([pad, pad], stride, dilation), (2, 9, 9), SCE, seed=3)
    params = [p.astype(np.float64) for p in net.get_params()]
    # Non-trivial gamma / beta so their gradients are exercised.
    params[2] = 1.0 + 0.3 * rng.standard_normal(3)
    params[3] = 0.2 * rng.standard_normal(3)
    net.set_params([p.astype(np.float32) for p in params])
    params = [p.astype(np.float32).astype(np.float64) for p in params]
    net.set_optimizer({"type": "sgd", "lr": 1e-3})
    loss = net.train_step(x, labels)
    grads = net.get_grads()
    x64 = x.astype(np.float64)
    assert loss == pytest.approx(small_net_loss(params, x64, labels, pad, stride, dilation), rel=1e-5)
    eps = 1e-5
    for i, p in enumerate(params):
        fd = np.zeros_like(p)
        for j in range(p.size):
            plus = [q.copy() for q in params]
            minus = [q.copy() for q in params]
            plus[i].flat[j] += eps
            minus[i].flat[j] -= eps
            fd.flat[j] = (small_net_loss(plus, x64, labels, pad, stride, dilation)
                          - small_net_loss(minus, x64, labels, pad, stride, dilation)) / (2 * eps)
        np.testing.assert_allclose(grads[i], fd, rtol=2e-3, atol=2e-5, err_msg=f"param {i}")


def test_conv_kernel_regularizer_adds_its_penalty_and_gradient():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 2, 9, 9)).astype(np.float32)
    labels = rng.integers(0, 4, 4)
    plain = small_net_layers([1, 1])
    reg = [dict(plain[0], l1=0.003, l2=0.01)] + plain[1:]
    a = _core.nn.Network(plain, (2, 9, 9), SCE, seed=3)
    b = _core.nn.Network(reg, (2, 9, 9), SCE, seed=3)
    for n in (a, b):
        n.set_optimizer({"type": "sgd", "lr": 1e-3})
    w = a.get_params()[0].astype(np.float64)
    loss_a, loss_b = a.train_step(x, labels), b.train_step(x, labels)
    assert loss_b - loss_a == pytest.approx(0.003 * np.abs(w).sum() + 0.01 * np.square(w).sum(), rel=1e-4)
    np.testing.assert_allclose(b.get_grads()[0] - a.get_grads()[0], 0.003 * np.sign(w) + 0.02 * w, rtol=1e-3,
                               atol=1e-6)


def test_forward_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    m = dropnet.Sequential([L.Conv2D(4, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"),
                            L.MaxPool2D(), L.Conv2D(3, (2, 3), strides=(1, 2)), L.Flatten(), L.Dense(5)],
                           input_shape=(2, 8, 8), seed=2)
    m.compile("sgd", loss="mse")
    w = m.get_weights()
    conv1 = torch.nn.Conv2d(2, 4, 3, padding=1)
    bn = torch.nn.BatchNorm2d(4)
    conv2 = torch.nn.Conv2d(4, 3, (2, 3), stride=(1, 2))
    dense = torch.nn.Linear(3 * 3 * 1, 5)
    tm = torch.nn.Sequential(conv1, bn, torch.nn.ReLU(), torch.nn.MaxPool2d(2), conv2, torch.nn.Flatten(), dense)
    with torch.no_grad():
        for t, v in zip([conv1.weight, conv1.bias, bn.weight, bn.bias, conv2.weight, conv2.bias, dense.weight,
                         dense.bias], w):
            t.copy_(torch.from_numpy(v))
    y = rng.standard_normal((5, 5)).astype(np.float32)
    m.network.train_step(x, y)  # one step: running statistics move as torch's do in train mode
    tm.train()
    tm(torch.from_numpy(x))
    np.testing.assert_allclose(m.get_state()[0], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.get_state()[1], bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
    tm.eval()
    m.set_weights(w)  # undo the SGD step: compare inference with the same weights and statistics
    with torch.no_grad():
        expect = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m.predict(x), expect, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ batch norm statistics and modes
@pytest.mark.parametrize("input_shape", [(3, 4, 5), (6,)])
def test_running_statistics_follow_pytorch_definition(input_shape):
    rng = np.random.default_rng(2)
    momentum = 0.25
    net = _core.nn.Network([{"type": "batch_norm", "momentum": momentum}, {"type": "flatten"},
                            {"type": "dense", "units": 3, "activation": "softmax"}], input_shape, SCE, seed=0)
    c = input_shape[0]
    mean, var = np.zeros(c), np.ones(c)
    axes = (0,) if len(input_shape) == 1 else (0, 2, 3)
    for step in range(4):
        x = (rng.standard_normal((7,) + input_shape) * (1 + step) + step).astype(np.float32)
        net.train_step(x, rng.integers(0, 3, 7))
        m = x.size // c
        mean = (1 - momentum) * mean + momentum * x.astype(np.float64).mean(axis=axes)
        var = (1 - momentum) * var + momentum * x.astype(np.float64).var(axis=axes) * m / (m - 1)
    got_mean, got_var = net.get_state()
    np.testing.assert_allclose(got_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_var, var, rtol=1e-5, atol=1e-6)


def bn_model(rate=0.0, seed=0):
    layers = [L.Conv2D(4, 3, padding="same"), L.BatchNormalization(momentum=0.5), L.Activation("relu"),
              L.MaxPool2D(), L.Flatten()]
    if rate:
        layers.append(L.Dropout(rate))
    layers.append(L.Dense(3, activation="softmax"))
    m = dropnet.Sequential(layers, input_shape=(1, 6, 6), seed=seed)
    m.compile("adam")
    return m


def np_bn_model_forward(m, x, batch_stats):
    w, b, gamma, beta, dw, db = [p.astype(np.float64) for p in m.get_weights()]
    h = np_conv(x.astype(np.float64), w, b, 1)
    if batch_stats:
        h = np_bn(h, gamma, beta, 1e-5)
    else:
        rm, rv = [s.astype(np.float64) for s in m.get_state()]
        h = np_bn(h, gamma, beta, 1e-5, rm, rv)
    h = np_maxpool2(np.maximum(h, 0)).reshape(len(x), -1)
    z = h @ dw.T + db
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_inference_uses_running_statistics_and_training_uses_batch_ones():
    rng = np.random.default_rng(3)
    m = bn_model()
    x = (rng.standard_normal((16, 1, 6, 6)) * 2 + 1).astype(np.float32)
    m.fit(x, rng.integers(0, 3, 16), epochs=2, batch_size=8, verbose=0)
    state = m.get_state()
    assert not np.allclose(state[0], 0) and not np.allclose(state[1], 1)
    np.testing.assert_allclose(m.predict(x), np_bn_model_forward(m, x, False), rtol=1e-4, atol=1e-6)
    for a, b in zip(state, m.get_state()):
        np.testing.assert_array_equal(a, b)  # inference leaves them alone
    out = m.network.forward(x, training=True, bn_training=True)
    np.testing.assert_allclose(out, np_bn_model_forward(m, x, True), rtol=1e-4, atol=1e-6)
    assert not np.allclose(m.get_state()[0], state[0])  # batch statistics were folded in


def test_mc_predict_keeps_batch_norm_in_inference_mode():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 1, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 3, 10)
    m = bn_model(rate=0.0)
    m.fit(x, labels, epochs=1, batch_size=5, verbose=0)
    state = m.get_state()
    mean, std = m.predict(x, mc_samples=4)
    # Without dropout every MC sample is the inference output: nothing else may vary.
    np.testing.assert_array_equal(std, np.zeros_like(std))
    np.testing.assert_allclose(mean, m.predict(x), rtol=1e-6, atol=1e-7)
    for a, b in zip(state, m.get_state()):
        np.testing.assert_array_equal(a, b)

    d = bn_model(rate=0.5)
    d.fit(x, labels, epochs=1, batch_size=5, verbose=0)
    state = d.get_state()
    mean, std = d.predict(x, mc_samples=6, seed=1)
    assert std.max() > 0
    for a, b in zip(state, d.get_state()):
        np.testing.assert_array_equal(a, b)
    # One MC pass = the running-statistics forward with the dropout mask of its stream.
    net, stream = d.network, 12345
    out = net.forward(x, training=True, stream_offset=stream)
    w, b, gamma, beta, dw, db = [p.astype(np.float64) for p in d.get_weights()]
    rm, rv = [s.astype(np.float64) for s in d.get_state()]
    h = np.maximum(np_bn(np_conv(x.astype(np.float64), w, b, 1), gamma, beta, 1e-5, rm, rv), 0)
    h = np_maxpool2(h).reshape(len(x), -1)
    h = h * keep_mask(d.seed, stream, h.shape, 0.5) * 2.0
    z = h @ dw.T + db
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ spatial dropout
def test_spatial_dropout_zeroes_whole_channels():
    rng = np.random.default_rng(5)
    shape, rate, stream = (6, 3, 4), 0.4, 7
    n_in = int(np.prod(shape))
    net = _core.nn.Network([{"type": "spatial_dropout2d", "rate": rate}, {"type": "flatten"},
                            {"type": "dense", "units": n_in, "use_bias": False}], shape, "mse", seed=11)
    net.set_params([np.eye(n_in, dtype=np.float32)])
    x = (rng.random((20,) + shape) + 0.5).astype(np.float32)
    out = net.forward(x, training=True, stream_offset=stream).reshape((20,) + shape)
    keep = keep_mask(11, stream, (20, shape[0]), rate)
    expect = np.where(keep[:, :, None, None], x * np.float32(1 / (1 - rate)), 0.0)
    np.testing.assert_allclose(out, expect, rtol=1e-6)
    assert 0 < (~keep).sum() < keep.size
    np.testing.assert_array_equal(net.forward(x), x.reshape(20, -1))  # identity at inference
    # Its backward lets the gradient through the kept channels only.
    net.rng_offset = stream
    y = rng.standard_normal((20, n_in)).astype(np.float32)
    net.set_optimizer({"type": "sgd", "lr": 1e-3})
    net.train_step(x, y)
    dz = 2 * (out.reshape(20, -1).astype(np.float64) - y) / (20 * n_in)  # mse gradient at the output
    np.testing.assert_allclose(net.get_grads()[0], dz.T @ out.reshape(20, -1), rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------ persistence and determinism
def test_save_load_round_trip_includes_running_statistics(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((12, 1, 6, 6)).astype(np.float32)
    m = bn_model(rate=0.3, seed=5)
    m.fit(x, rng.integers(0, 3, 12), epochs=2, batch_size=4, verbose=0)
    path = tmp_path / "cnn.npz"
    m.save(str(path))
    back = dropnet.load_model(str(path))
    for a, b in zip(m.get_state(), back.get_state()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.predict(x), back.predict(x))
    y = rng.integers(0, 3, 12)
    m.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=1)
    back.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=1)
    for a, b in zip(m.get_weights() + m.get_state(), back.get_weights() + back.get_state()):
        np.testing.assert_array_equal(a, b)


def train_cnn(threads, seed=0):
    dropnet.set_num_threads(threads)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((32, 2, 10, 10)).astype(np.float32)
    labels = rng.integers(0, 3, 32)
    m = dropnet.Sequential([L.Conv2D(8, 3, padding="same", activation="relu"), L.BatchNormalization(),
                            L.SpatialDropout2D(0.2), L.MaxPool2D(), L.Conv2D(4, 3, strides=2),
                            L.BatchNormalization(), L.Activation("relu"), L.GlobalAveragePooling2D(),
                            L.Dense(3, activation="softmax")], input_shape=(2, 10, 10), seed=seed)
    m.compile("adam")
    m.fit(x, labels, epochs=2, batch_size=16, verbose=0)
    return m.get_weights() + m.get_state()


def test_one_and_two_threads_give_identical_weights():
    one, two = train_cnn(1), train_cnn(2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    again = train_cnn(2)
    for a, b in zip(two, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(train_cnn(2, seed=1)[0], one[0])


def test_every_isa_path_trains_deterministically_across_threads(isa_level):
    # Identical across thread counts on each path (across paths: test_isa_determinism.py).
    one, two = train_cnn(1), train_cnn(2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(a).all() for a in one)


# ------------------------------------------------------------------ shapes, summary and errors
def test_summary_and_counts():
    m = dropnet.Sequential([L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"),
                            L.MaxPool2D(), L.Conv2D(64, 3, padding="same"), L.BatchNormalization(),
                            L.Activation("relu"), L.MaxPool2D(), L.Flatten(), L.Dense(128, activation="relu"),
                            L.Dropout(0.5), L.Dense(10, activation="softmax")], input_shape=(1, 28, 28))
    m.compile("adam")
    text = m._summary_text()
    assert "(None, 32, 28, 28)" in text and "(None, 64, 7, 7)" in text and "(None, 3136)" in text
    trainable = (32 * 9 + 32) + 64 + (64 * 32 * 9 + 64) + 128 + (3136 * 128 + 128) + (128 * 10 + 10)
    assert f"Trainable params: {trainable:,}" in text
    assert f"Non-trainable params: {2 * 32 + 2 * 64:,}" in text
    assert sum(w.size for w in m.get_weights()) == trainable
    assert m.count_params() == trainable + 192
    assert [w.shape for w in m.get_weights()][:4] == [(32, 1, 3, 3), (32,), (32,), (32,)]
    assert [s.shape for s in m.get_state()] == [(32,), (32,), (64,), (64,)]
    info = m.network.layer_info()
    # BatchNormalization + ReLU + MaxPool2D(2) run as one native layer (the pooled output).
    assert [i["output_shape"] for i in info[:3]] == [(32, 28, 28), (32, 14, 14), (64, 14, 14)]
    assert "max_pool" not in [i["type"] for i in info[:4]]


@pytest.mark.parametrize("kernel,stride,dilation,padding", [
    (3, 1, 1, "same"), (2, 1, 1, "same"), (4, 2, 1, "same"), (3, 2, 2, "same"), (3, 3, 1, "valid"), (2, 1, 1, 1)])
def test_padding_and_shape_inference_match_the_native_layer(kernel, stride, dilation, padding):
    rng = np.random.default_rng(9)
    h, w = 7, 6
    m = dropnet.Sequential([L.Conv2D(2, kernel, strides=stride, dilation_rate=dilation, padding=padding,
                                     use_bias=False), L.Flatten(), L.Dense(2)], input_shape=(1, h, w), seed=0)
    m.compile("sgd", loss="mse")
    out_shape = m.layers[0].output_shape((1, h, w))
    assert m.network.layer_info()[0]["output_shape"] == out_shape
    # Keras "same": ceil(size / stride) outputs, padding split with the odd cell at the end.
    span = dilation * (kernel - 1) + 1
    if padding == "same":
        pads = []
        for size in (h, w):
            total = max((-(-size // stride) - 1) * stride + span - size, 0)
            pads.append((total // 2, total - total // 2))
    else:
        p = 0 if padding == "valid" else padding
        pads = [(p, p), (p, p)]
    x = rng.standard_normal((3, 1, h, w))
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    cw = m.get_weights()[0].astype(np.float64)
    expect = np_conv(xp, cw, None, 0, stride, dilation)
    assert expect.shape[1:] == out_shape
    dw, db = m.get_weights()[1:]
    got = m.predict(x.astype(np.float32))
    np.testing.assert_allclose(got, expect.reshape(3, -1) @ dw.T.astype(np.float64) + db, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec,shape,match", [
    ({"type": "conv2d", "filters": 2, "kernel_size": [0, 3]}, (1, 8, 8), "window sizes must be >= 1"),
    ({"type": "conv2d", "filters": 2, "kernel_size": [3, 3], "strides": [1, 0]}, (1, 8, 8), "strides must be >= 1"),
    ({"type": "conv2d", "filters": 2, "kernel_size": [9, 3]}, (1, 8, 8), "larger than the height"),
    ({"type": "conv2d", "filters": 2, "kernel_size": [3, 3], "dilation": [4, 1]}, (1, 8, 8), "larger than the"),
    ({"type": "conv2d", "filters": 0, "kernel_size": 3}, (1, 8, 8), "filters must be >= 1"),
    ({"type": "conv2d", "filters": 2, "kernel_size": 3}, (64,), "expected an image input"),
    ({"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "gelu"}, (1, 8, 8), "cannot be fused"),
    ({"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"}, (1, 8, 8), "padding"),
    ({"type": "max_pool2d", "pool_size": [2, 2], "padding": [2, 0]}, (1, 8, 8), "at most half"),
    ({"type": "max_pool2d", "pool_size": 9}, (1, 8, 8), "larger than the"),
    ({"type": "batch_norm", "momentum": 1.5}, (1, 8, 8), "momentum"),
    ({"type": "batch_norm"}, (2, 3), "expected an input"),
    ({"type": "spatial_dropout2d", "rate": 1.0}, (1, 8, 8), "rate"),
    ({"type": "spatial_dropout2d", "rate": 0.1}, (64,), "image input"),
])
def test_bad_layer_specs_raise_value_error(spec, shape, match):
    with pytest.raises(ValueError, match=match):
        _core.nn.Network([spec, {"type": "flatten"}, {"type": "dense", "units": 2}], shape, SCE, seed=0)


def test_bad_python_layer_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        L.Conv2D(4, 0)
    with pytest.raises(TypeError, match="kernel_size"):
        L.Conv2D(4, "3")
    with pytest.raises(ValueError, match="padding"):
        L.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="padding"):
        L.MaxPool2D(padding="same")
    with pytest.raises(ValueError, match="momentum"):
        L.BatchNormalization(momentum=0.99 + 1)
    with pytest.raises(ValueError, match="Conv2D.*larger than"):
        dropnet.Sequential([L.Conv2D(2, 5), L.Flatten(), L.Dense(2)], input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="image input"):
        dropnet.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(2)], input_shape=(16,))
    with pytest.raises(ValueError, match="Flatten"):
        dropnet.Sequential([L.Conv2D(2, 3), L.Dense(2)], input_shape=(1, 6, 6))


def test_bad_inputs_leave_the_network_unchanged():
    rng = np.random.default_rng(8)
    m = bn_model(rate=0.2)
    x = rng.standard_normal((8, 1, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 3, 8)
    m.fit(x, labels, epochs=1, batch_size=4, verbose=0)
    before = m.get_weights() + m.get_state()
    offset = m.rng_offset
    net = m.network
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 1, 6, 6\)"):
        net.train_step(rng.standard_normal((8, 2, 6, 6)).astype(np.float32), labels)
    with pytest.raises(ValueError, match="expected shape"):
        m.predict(rng.standard_normal((8, 6, 6)).astype(np.float32))
    with pytest.raises(ValueError, match="labels in"):
        net.train_step(x, np.full(8, 7, dtype=np.int64))
    with pytest.raises(ValueError, match=r"weights\[0\]: expected shape \(4, 1, 3, 3\)"):
        m.set_weights([np.zeros((4, 2, 3, 3), np.float32)] + before[1:6])
    with pytest.raises(ValueError, match="state"):
        m.set_state([np.zeros(5, np.float32), np.ones(4, np.float32)])
    with pytest.raises(ValueError, match="running variance"):
        m.set_state([np.zeros(4, np.float32), -np.ones(4, np.float32)])
    with pytest.raises(ValueError, match="more than one value per channel"):
        dense_bn = _core.nn.Network([{"type": "batch_norm"}, {"type": "dense", "units": 2}], (3,), SCE, seed=0)
        state = dense_bn.get_state()
        dense_bn.train_step(np.ones((1, 3), np.float32), np.zeros(1, np.int64))
    for a, b in zip(state, dense_bn.get_state()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before, m.get_weights() + m.get_state()):
        np.testing.assert_array_equal(a, b)
    assert m.rng_offset == offset


# ------------------------------------------------------------------ learning
def test_small_cnn_learns_embedded_fashion_mnist():
    (x, y), (xt, yt) = dropnet.datasets.embedded()
    x, y = x[:1200].reshape(-1, 1, 28, 28), y[:1200]
    xt, yt = xt.reshape(-1, 1, 28, 28), yt
    m = dropnet.Sequential([L.Conv2D(8, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"),
                            L.MaxPool2D(), L.SpatialDropout2D(0.1), L.Flatten(), L.Dense(10, activation="softmax")],
                           input_shape=(1, 28, 28), seed=0)
    m.compile("adam", metrics=["accuracy"])
    before = m.evaluate(xt, yt)["loss"]
    hist = m.fit(x, y, epochs=3, batch_size=64, verbose=0)
    losses = hist.history["loss"]
    assert losses[-1] < losses[0] * 0.8
    after = m.evaluate(xt, yt)
    assert after["loss"] < before * 0.5
    assert after["accuracy"] > 0.6  # 10 classes: chance is 0.1


def test_unfusable_conv_activation_runs_as_its_own_layer_and_configs_round_trip(tmp_path):
    from dropnet import regularizers

    m = dropnet.Sequential([L.Conv2D(2, 3, activation="gelu", kernel_regularizer=regularizers.L1L2(l2=0.01)),
                            L.AveragePooling2D(2), L.Flatten(), L.Dense(2, activation="softmax")],
                           input_shape=(1, 6, 6), seed=4)
    m.compile("adam")
    assert [i["type"] for i in m.network.layer_info()] == ["conv2d", "activation", "avg_pool2d", "flatten", "dense"]
    x = np.random.default_rng(11).standard_normal((3, 1, 6, 6)).astype(np.float32)
    w, b = (a.astype(np.float64) for a in m.get_weights()[:2])
    from math import erf
    h = np_conv(x.astype(np.float64), w, b, 0)
    h = 0.5 * h * (1 + np.vectorize(erf)(h / np.sqrt(2)))
    h = h.reshape(3, 2, 2, 2, 2, 2).mean(axis=(3, 5)).reshape(3, -1)
    z = h @ m.get_weights()[2].T.astype(np.float64) + m.get_weights()[3]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(m.predict(x), e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    m.save(str(tmp_path / "m.npz"))
    back = dropnet.load_model(str(tmp_path / "m.npz"))
    assert back.get_config() == m.get_config()
    np.testing.assert_array_equal(back.predict(x), m.predict(x))


# ------------------------------------------------------------------ batch norm + ReLU + max pooling fused
def _bn_pool_model(input_shape, pool, seed=4):
    return dropnet.Sequential([L.Conv2D(5, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"), pool,
                               L.Conv2D(6, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"),
                               L.MaxPool2D(2), L.Flatten(), L.Dense(4, activation="softmax")],
                              input_shape=input_shape, seed=seed)


def _train_bn_pool(input_shape, threads, fuse, monkeypatch, pool=None):
    monkeypatch.setattr(dropnet.layers, "_FUSE_BN_RELU_MAX_POOL", fuse)
    before = dropnet.get_num_threads()
    dropnet.set_num_threads(threads)
    try:
        m = _bn_pool_model(input_shape, pool or L.MaxPool2D(2))
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(7)
        x = (rng.standard_normal((40, *input_shape)) * 2 + 0.5).astype(np.float32)
        y = rng.integers(0, 4, 40)
        m.fit(x, y, epochs=2, batch_size=16, verbose=0)
        loss, _ = m.compute_gradients(x[:9], y[:9])
        return m, [*m.get_weights(), *m.get_state(), m.predict(x), np.float32(loss), m.network.grad_buffer.copy()]
    finally:
        dropnet.set_num_threads(before)


# Rows of 6, 14 and 33 windows then 3, 7 and 16: the fused pooling's steps of 8 and 4
# windows, their overlapping last steps and the padded rows of fewer than 4 windows (the unfused
# pooling goes 4 windows a step on every ISA path).
@pytest.mark.parametrize("input_shape", [(1, 12, 12), (2, 9, 7), (1, 4, 5), (1, 28, 28), (1, 6, 66)])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_norm_relu_max_pool_fused_have_the_bits_of_the_three_layers(input_shape, threads, monkeypatch):
    fused_model, fused = _train_bn_pool(input_shape, threads, True, monkeypatch)
    apart_model, apart = _train_bn_pool(input_shape, threads, False, monkeypatch)
    types = [i["type"] for i in fused_model.network.layer_info()]
    assert "max_pool2d" not in types and types.count("batch_norm") == 2
    assert [i["type"] for i in apart_model.network.layer_info()].count("max_pool2d") == 2
    assert len(fused) == len(apart)
    for a, b in zip(fused, apart):
        np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


@pytest.mark.parametrize("pool", [lambda: L.MaxPool2D(3), lambda: L.MaxPool2D(2, strides=1),
                                  lambda: L.MaxPool2D(2, padding=1), lambda: L.AveragePooling2D(2)])
def test_other_pooling_after_batch_norm_relu_stays_its_own_layer(pool, monkeypatch):
    m, _ = _train_bn_pool((1, 8, 8), 1, True, monkeypatch, pool=pool())
    types = [i["type"] for i in m.network.layer_info()]  # the model's second pooling is MaxPool2D(2): fused
    assert types.count("batch_norm") == 2 and types.count("max_pool2d") + types.count("avg_pool2d") == 1


def test_fused_batch_norm_pooling_is_marked_in_the_summary():
    text = _bn_pool_model((1, 8, 8), L.MaxPool2D(2))._summary_text()
    assert sum("(MaxPool2D(2x2)) *" in line for line in text.splitlines()) == 2
    assert "a 2x2 MaxPool2D after them" in text

"""A model's device: ``Sequential(..., device=...)``, ``model.to``, ``load_model(path, device=...)``.

Without a GPU these check the device strings, that a CUDA device which cannot be used raises a
RuntimeError naming what is missing before anything changes, and that the CPU path is the one it
was. The tests marked ``gpu`` train the same model on the CPU and on the GPU from the same seed and
hold the GPU to the CPU within the tolerance of
docs/design.md, "Devices: one network, two backends"
(the C++ twin of that test, on the simulated device, runs everywhere:
cpp/tests/test_device_network.cpp).
"""
import re

import numpy as np
import pytest

import dropnet
from dropnet import Sequential, callbacks, layers, load_model

HAS_GPU = dropnet.cuda.is_available()
REASON = dropnet.cuda.unavailable_reason()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason=f"no usable CUDA device: {REASON}")
no_gpu = pytest.mark.skipif(HAS_GPU, reason="a CUDA device is usable here: the GPU tests below cover it")


def mlp(device="cpu", seed=3):
    model = Sequential([layers.Dense(32, activation="relu"), layers.Dropout(0.25), layers.BatchNormalization(),
                        layers.Dense(16, activation="tanh"), layers.Dropout(0.2),
                        layers.Dense(4, activation="softmax")], input_shape=(12,), seed=seed, device=device)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def cnn(device="cpu", seed=3):
    # BatchNormalization + ReLU + MaxPool2D(2) runs fused on the CPU and as three layers on a GPU.
    # No bias before batch norm: its gradient is 0 in exact arithmetic, and Adam turns the rounding
    # noise that is left into steps of size lr, which differ between devices (docs/design.md,
    # "Devices: one network, two backends").
    model = Sequential([layers.Conv2D(6, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                        layers.Activation("relu"),
                        layers.MaxPool2D(2), layers.Dropout(0.2), layers.Conv2D(8, 3, activation="tanh"),
                        layers.SpatialDropout2D(0.25), layers.GlobalAveragePooling2D(),
                        layers.Dense(4, activation="softmax")],
                       input_shape=(2, 8, 8), seed=seed, device=device)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=96, seed=0, shape=(12,)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = (x.reshape(n, -1)[:, :4].argmax(axis=1)).astype(np.int64)
    return x, y


# ----------------------------------------------------------------- device strings
@pytest.mark.parametrize("text", ["cpu", "CPU", " cpu "])
def test_parse_device_accepts_the_cpu(text):
    assert dropnet.cuda.parse_device(text) == "cpu"


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:0:1", "", "cuda:1234567890"])
def test_parse_device_rejects_malformed_strings_naming_the_forms(bad):
    with pytest.raises(ValueError, match=r"device: expected 'cpu', 'cuda' or 'cuda:<index>', got"):
        dropnet.cuda.parse_device(bad)


@pytest.mark.parametrize("bad", [0, None, 1.5, b"cpu"])
def test_parse_device_rejects_non_strings(bad):
    with pytest.raises(TypeError, match=f"device: expected 'cpu', 'cuda' or 'cuda:<index>', got {type(bad).__name__}"):
        dropnet.cuda.parse_device(bad)


def test_native_network_rejects_an_unknown_device():
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda:<index>', got 'tpu'"):
        dropnet._core.nn.Network([{"type": "dense", "units": 2}], (3,), "mse", 0, "tpu")


def test_unfused_batch_norm_relu_max_pool_gives_the_fused_bits():
    # A device network runs BatchNormalization + ReLU + MaxPool2D(2) as three layers (no fused
    # twin); on the CPU the two forms must train to the same bits.
    x, y = data(shape=(2, 8, 8))
    fused = cnn()
    assert [d["type"] for d in dropnet.layers.to_native(fused.layers, (2, 8, 8))][:3] == [
        "conv2d", "batch_norm", "dropout"]
    fused.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    native = dropnet.layers.to_native(cnn().layers, (2, 8, 8), fuse_max_pool=False)
    assert [d["type"] for d in native][:4] == ["conv2d", "batch_norm", "max_pool2d", "dropout"]
    net = dropnet._core.nn.Network(native, (2, 8, 8), "sparse_categorical_crossentropy", 3)
    net.set_optimizer(fused.optimizer.get_config())
    for lo in range(0, len(x), 32):
        net.train_step(x[lo:lo + 32], y[lo:lo + 32])
    for a, b in zip(fused.get_weights(), net.get_params()):
        np.testing.assert_array_equal(a, b)


def test_cpu_model_reports_its_device_and_to_cpu_is_a_no_op():
    model = mlp()
    assert model.device == "cpu" and model.network.device == "cpu"
    net = model.network
    assert model.to("cpu") is model and model.network is net


# ----------------------------------------------------------------- no usable GPU
@no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_names_what_is_missing(device):
    with pytest.raises(RuntimeError, match=rf"device: '{device if ':' in device else 'cuda:0'}' requested but"
                                           rf" .*{re.escape((REASON or '')[:20])}"):
        Sequential([layers.Dense(2)], input_shape=(3,), device=device)


@no_gpu
def test_to_cuda_without_a_gpu_leaves_the_model_unchanged(tmp_path):
    model = mlp()
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    before = model.get_weights()
    offset, step = model.rng_offset, model.network.get_optimizer_state()["step"]
    net = model.network
    with pytest.raises(RuntimeError, match="device: 'cuda:0' requested but"):
        model.to("cuda")
    assert model.device == "cpu" and model.network is net
    assert model.rng_offset == offset and model.network.get_optimizer_state()["step"] == step
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@no_gpu
def test_load_model_checks_the_device_before_reading_the_file(tmp_path):
    with pytest.raises(RuntimeError, match="device: 'cuda:0' requested but"):
        load_model(tmp_path / "does_not_exist.dnet", device="cuda")
    with pytest.raises(ValueError, match="device: expected"):
        load_model(tmp_path / "does_not_exist.dnet", device="gpu")


def test_load_model_on_the_cpu_continues_training_bit_for_bit(tmp_path):
    x, y = data()
    model = mlp()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "m.dnet")
    loaded = load_model(tmp_path / "m.dnet", device="cpu")
    assert loaded.device == "cpu"
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, initial_epoch=1)
    loaded.fit(x, y, epochs=1, batch_size=32, verbose=0, initial_epoch=1)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- on a device
# Each test runs on the simulated device "_sim" (developer builds with the C++ tests: the GPU
# kernels' per-thread code on the host, memory the host cannot read outside a kernel call) and,
# marked gpu, on a real GPU. Tolerance of a trained model against the CPU (a few float ulps per
# step; wider on a GPU until measured there): docs/design.md, "Devices: one network, two backends".
SIM = "_sim" in dropnet._core.nn.test_devices
needs_sim = pytest.mark.skipif(not SIM, reason="this build has no simulated device '_sim' "
                                               "(the extension was built without DROPNET_BUILD_TESTS)")
DEVICES = [pytest.param("_sim", marks=needs_sim, id="sim"),
           pytest.param("cuda", marks=[pytest.mark.gpu, needs_gpu], id="cuda")]
NAMES = {"_sim": "_sim", "cuda": "cuda:0"}
TOLERANCE = {"_sim": (1e-6, 1e-5), "cuda": (1e-5, 1e-4)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("build, shape", [(mlp, (12,)), (cnn, (2, 8, 8))], ids=["mlp", "cnn"])
def test_device_model_trains_like_the_cpu_model(device, build, shape):
    atol, rtol = TOLERANCE[device]
    x, y = data(shape=shape)
    cpu, dev = build("cpu"), build(device)
    assert dev.device == NAMES[device] and dev.network.device == NAMES[device]
    for a, b in zip(cpu.get_weights(), dev.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same initial bits, copied to the device
    h_cpu = cpu.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    h_dev = dev.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert cpu.rng_offset == dev.rng_offset
    np.testing.assert_allclose(h_dev.history["loss"], h_cpu.history["loss"], atol=atol, rtol=rtol)
    for a, b in zip(dev.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    for a, b in zip(dev.get_state(), cpu.get_state()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    np.testing.assert_allclose(dev.predict(x), cpu.predict(x), atol=atol, rtol=rtol)
    np.testing.assert_allclose(dev.evaluate(x, y)["loss"], cpu.evaluate(x, y)["loss"], atol=atol, rtol=rtol)
    # Monte Carlo dropout: the same masks from the same streams.
    mean_cpu, std_cpu = cpu.predict(x[:8], mc_samples=4)
    mean_dev, std_dev = dev.predict(x[:8], mc_samples=4)
    np.testing.assert_allclose(mean_dev, mean_cpu, atol=atol, rtol=rtol)
    np.testing.assert_allclose(std_dev, std_cpu, atol=10 * atol, rtol=10 * rtol)


@pytest.mark.parametrize("device", DEVICES)
def test_device_round_trip_through_to_and_load_model(device, tmp_path):
    x, y = data()
    model, twin = mlp("cpu"), mlp("cpu")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    twin.fit(x, y, epochs=1, batch_size=32, verbose=0)
    weights, state = model.get_weights(), model.network.get_optimizer_state()
    assert model.to(device) is model and model.device == NAMES[device]
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # a copy, no arithmetic
    moved = model.network.get_optimizer_state()
    assert moved["step"] == state["step"] and model.rng_offset == twin.rng_offset
    for a, b in zip(state["slots"], moved["slots"]):
        np.testing.assert_array_equal(a, b)
    # Training goes on where it stopped: as the twin that stayed on the CPU, within tolerance.
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, initial_epoch=1)
    twin.fit(x, y, epochs=2, batch_size=32, verbose=0, initial_epoch=1)
    atol, rtol = TOLERANCE[device]
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    model.save(tmp_path / "d.dnet")
    back = load_model(tmp_path / "d.dnet", device=device)
    assert back.device == NAMES[device] and back.rng_offset == model.rng_offset
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.to("cpu")
    assert model.device == "cpu" and model.network.device == "cpu"
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def regression_mlp(device, loss, seed=5):
    # Kernel penalties (l1, l2, both), a max-norm constraint on two layers, batch norm and dropout:
    # every CPU-side step of a regression or binary head on the device.
    out = "sigmoid" if loss == "binary_crossentropy" else None
    model = Sequential([layers.Dense(32, activation="relu", kernel_regularizer=dropnet.regularizers.l1(1e-3),
                                     kernel_constraint=dropnet.constraints.MaxNorm(0.5)),
                        layers.Dropout(0.2), layers.BatchNormalization(),
                        layers.Dense(16, activation="tanh", kernel_regularizer=dropnet.regularizers.l2(2e-3),
                                     kernel_constraint=dropnet.constraints.MaxNorm(0.5)),
                        layers.Dense(3, activation=out,
                                     kernel_regularizer=dropnet.regularizers.l1_l2(5e-4, 1e-3))],
                       input_shape=(12,), seed=seed, device=device)
    model.compile(optimizer=dropnet.optim.SGD(0.05, momentum=0.9, nesterov=True), loss=loss)
    return model


def row_norms(w):
    # A dense kernel is (units, inputs): a unit's incoming weights are a row.
    return np.sqrt((w.astype(np.float64) ** 2).sum(axis=1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_crossentropy"])
def test_device_model_with_elementwise_loss_penalties_sample_weights_and_max_norm_trains_like_the_cpu(device, loss):
    atol, rtol = TOLERANCE[device]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((96, 12)).astype(np.float32)
    if loss == "binary_crossentropy":
        y = (x[:, :3] > 0).astype(np.float32)
    else:
        y = (0.5 * x[:, :3] + 0.1 * rng.standard_normal((96, 3))).astype(np.float32)
    w = rng.uniform(0.0, 2.0, 96).astype(np.float32)
    w[::11] = 0.0
    cpu, dev = regression_mlp("cpu", loss), regression_mlp(device, loss)
    assert dev.device == NAMES[device]
    # The constraints have work to do: some unit starts above its max norm.
    assert row_norms(cpu.get_weights()[0]).max() > 0.5 and row_norms(cpu.get_weights()[4]).max() > 0.5
    h_cpu = cpu.fit(x, y, epochs=2, batch_size=32, shuffle=False, sample_weight=w, verbose=0)
    h_dev = dev.fit(x, y, epochs=2, batch_size=32, shuffle=False, sample_weight=w, verbose=0)
    np.testing.assert_allclose(h_dev.history["loss"], h_cpu.history["loss"], atol=atol, rtol=rtol)
    for a, b in zip(dev.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    for k in (0, 4):  # held on the device
        assert row_norms(dev.get_weights()[k]).max() <= 0.5 * (1 + 1e-6)
    # and binding: after one step from the start, the largest unit of each sits on the bound.
    probe = regression_mlp(device, loss)
    probe.fit(x[:32], y[:32], epochs=1, batch_size=32, sample_weight=w[:32], verbose=0)
    for k in (0, 4):
        assert row_norms(probe.get_weights()[k]).max() == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(dev.predict(x), cpu.predict(x), atol=atol, rtol=rtol)
    np.testing.assert_allclose(dev.evaluate(x, y, sample_weight=w)["loss"], cpu.evaluate(x, y, sample_weight=w)["loss"],
                               atol=atol, rtol=rtol)


@pytest.mark.parametrize("device", DEVICES)
def test_device_sample_weights_scale_the_softmax_cross_entropy_like_the_cpu(device):
    atol, rtol = TOLERANCE[device]
    x, y = data()
    w = np.random.default_rng(2).uniform(0.0, 3.0, len(x)).astype(np.float32)
    cpu, dev = mlp("cpu"), mlp(device)
    h_cpu = cpu.fit(x, y, epochs=2, batch_size=32, shuffle=False, sample_weight=w, verbose=0)
    h_dev = dev.fit(x, y, epochs=2, batch_size=32, shuffle=False, sample_weight=w, verbose=0)
    np.testing.assert_allclose(h_dev.history["loss"], h_cpu.history["loss"], atol=atol, rtol=rtol)
    for a, b in zip(dev.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    # The weights matter: unweighted training ends elsewhere.
    plain = mlp("cpu")
    plain.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert max(np.abs(a - b).max() for a, b in zip(plain.get_weights(), cpu.get_weights())) > 100 * atol
    with pytest.raises(ValueError, match="sample_weight"):
        dev.fit(x, y, epochs=1, sample_weight=-w, verbose=0)


@pytest.mark.parametrize("device", DEVICES)
def test_device_refuses_cpu_only_layers_and_options_before_anything_changes(device):
    name = NAMES[device]
    model = Sequential([layers.RandomFlip(), layers.Conv2D(4, 3), layers.Flatten(),
                        layers.Dense(3, activation="softmax")], input_shape=(1, 8, 8), seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before, net = model.get_weights(), model.network
    with pytest.raises(ValueError, match=rf"layers\[0\] augment: runs on the CPU only, not on device '{name}'"):
        model.to(device)
    assert model.device == "cpu" and model.network is net
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)

    dev = mlp(device)
    x, y = data()
    with pytest.raises(ValueError, match=rf"compute_gradients \(data-parallel training\) runs on the CPU only, "
                                         rf"not on device '{name}'"):
        dev.network.compute_gradients(x[:8], y[:8])
    with pytest.raises(ValueError, match=rf"grad_buffer: data-parallel training runs on the CPU only, not on device "
                                         rf"'{name}'"):
        dev.network.grad_buffer
    assert dev.network.get_optimizer_state()["step"] == 0


@pytest.mark.parametrize("device", DEVICES)
def test_device_fit_keeps_the_dataset_on_the_device_and_follows_the_cpu(device, monkeypatch):
    # fit copies the training set to the device once; batches are gathered there and each chunk
    # of steps (the whole epoch, or one step with a batch callback) fetches its losses and counts.
    kept = []
    keep = Sequential._keep_dataset

    def spy(self, *args):
        kept.append(keep(self, *args))
        return kept[-1]

    monkeypatch.setattr(Sequential, "_keep_dataset", spy)
    atol, rtol = TOLERANCE[device]
    x, y = data(n=100)
    batch_losses = {"cpu": [], device: []}

    class Recorder(callbacks.Callback):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_batch_end(self, batch, logs=None):
            batch_losses[self.name].append(logs["loss"])

    def recorder(name):
        return Recorder(name)

    cpu, dev = mlp("cpu"), mlp(device)
    for epochs, cbs in ((2, False), (3, True)):
        h_cpu = cpu.fit(x, y, epochs=epochs, initial_epoch=epochs - 2 if cbs else 0, batch_size=16, shuffle=True,
                        verbose=0, callbacks=[recorder("cpu")] if cbs else None)
        h_dev = dev.fit(x, y, epochs=epochs, initial_epoch=epochs - 2 if cbs else 0, batch_size=16, shuffle=True,
                        verbose=0, callbacks=[recorder(device)] if cbs else None)
        np.testing.assert_allclose(h_dev.history["loss"], h_cpu.history["loss"], atol=atol, rtol=rtol)
        assert h_dev.history["accuracy"] == h_cpu.history["accuracy"]
    assert kept == [False, True, False, True]
    assert len(batch_losses[device]) == len(batch_losses["cpu"]) == 2 * 7  # two epochs of 7 batches
    np.testing.assert_allclose(batch_losses[device], batch_losses["cpu"], atol=atol, rtol=rtol)
    for a, b in zip(dev.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    # A dataset the device has no room for (here: a failing copy) is copied in batch by batch.
    monkeypatch.setattr(Sequential, "_keep_dataset", keep)
    both = mlp(device)
    twin = mlp(device)
    with monkeypatch.context() as m:
        m.setattr(Sequential, "_keep_dataset", lambda self, *args: False)
        h_copied = twin.fit(x, y, epochs=1, batch_size=16, shuffle=True, verbose=0)
    h_kept = both.fit(x, y, epochs=1, batch_size=16, shuffle=True, verbose=0)
    assert h_kept.history["loss"] == h_copied.history["loss"]  # the same batches, the same kernels
    for a, b in zip(both.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- pruning and DropConnect on a device
def pruned_mlp(device="cpu", seed=5):
    model = Sequential([layers.Dense(48, activation="relu"), layers.Dropout(0.25),
                        layers.Dense(24, activation="tanh"), layers.Dense(4, activation="softmax")],
                       input_shape=(40,), seed=seed, device=device)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def assert_pruned(model, masks):
    """The model's masks are `masks`, bit for bit, and its pruned weights are exactly 0."""
    got = dropnet.prune.get_masks(model)
    assert len(got) == len(masks)
    for a, b, layer in zip(got, masks, dropnet.prune.prunable_layers(model)):
        np.testing.assert_array_equal(a, b)
        w = model.get_weights()[layer.param]
        assert np.all(w[b == 0] == 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["on", "off"])
def test_magnitude_pruned_model_trains_on_the_device_like_the_cpu(device, mode):
    atol, rtol = TOLERANCE[device]
    x, y = data(shape=(40,))
    cpu, dev = pruned_mlp("cpu"), pruned_mlp(device)
    for model in (cpu, dev):
        dropnet.prune.magnitude(model, 0.85)  # the same initial weights: the same masks
        model.set_sparse_execution(mode)
    masks = dropnet.prune.get_masks(cpu)
    assert 0.1 < np.mean(masks[0]) < 0.2
    assert_pruned(dev, masks)
    h_cpu = cpu.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    h_dev = dev.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert [row["sparse"] for row in dev.sparse_info()] == [mode == "on"] * 3
    assert [row["sparse"] for row in cpu.sparse_info()] == [mode == "on"] * 3
    np.testing.assert_allclose(h_dev.history["loss"], h_cpu.history["loss"], atol=atol, rtol=rtol)
    for a, b in zip(dev.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    for a, b in zip(dev.network.get_optimizer_state()["slots"], cpu.network.get_optimizer_state()["slots"]):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    # The last step's gradients, 0 at the pruned weights on both devices.
    for a, b in zip(dev.network.get_grads(), cpu.network.get_grads()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    for layer, m in zip(dropnet.prune.prunable_layers(dev), masks):
        assert np.all(dev.network.get_grads()[layer.param][m == 0] == 0)
    assert_pruned(dev, masks)
    assert_pruned(cpu, masks)
    np.testing.assert_allclose(dev.predict(x), cpu.predict(x), atol=atol, rtol=rtol)


@pytest.mark.parametrize("device", DEVICES)
def test_pruned_device_model_keeps_its_masks_through_to_and_load_model(device, tmp_path):
    x, y = data(shape=(40,))
    model = pruned_mlp()
    dropnet.prune.magnitude(model, 0.8)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    masks = dropnet.prune.get_masks(model)
    weights = model.get_weights()
    model.to(device)
    assert model.device == NAMES[device]
    assert_pruned(model, masks)
    model.set_sparse_execution("on")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, initial_epoch=1)
    assert all(row["sparse"] for row in model.sparse_info())
    assert_pruned(model, masks)
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))  # it trained
    model.save(tmp_path / "p.dnet")
    back = load_model(tmp_path / "p.dnet", device=device)
    assert back.device == NAMES[device]
    assert_pruned(back, masks)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.to("cpu")
    assert model.device == "cpu"
    assert_pruned(model, masks)
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Pruning further on the device reads its weights through the boundary, as on the CPU.
    twin = load_model(tmp_path / "p.dnet", device="cpu")
    dropnet.prune.magnitude(back, 0.5)
    dropnet.prune.magnitude(twin, 0.5)
    assert_pruned(back, dropnet.prune.get_masks(twin))


@pytest.mark.parametrize("device", DEVICES)
def test_drop_connect_model_trains_on_the_device_like_the_cpu(device):
    atol, rtol = TOLERANCE[device]
    x, y = data(shape=(40,))

    def build(dev):
        model = Sequential([layers.DropConnect(32, rate=0.4, activation="tanh"),
                            layers.Dense(4, activation="softmax")], input_shape=(40,), seed=9, device=dev)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    cpu, dev = build("cpu"), build(device)
    cpu.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    dev.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert cpu.rng_offset == dev.rng_offset
    for a, b in zip(dev.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    # The last step's weight gradient is 0 exactly where DropConnect dropped the weight: the same
    # mask bits on both devices, about 40 % of them.
    g_cpu, g_dev = cpu.network.get_grads()[0], dev.network.get_grads()[0]
    np.testing.assert_array_equal(g_dev == 0, g_cpu == 0)
    assert abs(np.mean(g_cpu == 0) - 0.4) < 0.05
    np.testing.assert_allclose(dev.predict(x), cpu.predict(x), atol=atol, rtol=rtol)


@pytest.mark.parametrize("device", DEVICES)
def test_pruned_conv2d_runs_dense_on_the_device_and_refuses_sparse_execution(device):
    name = NAMES[device]
    atol, rtol = TOLERANCE[device]
    x, y = data(shape=(2, 8, 8))
    cpu, dev = cnn("cpu"), cnn(device)
    for model in (cpu, dev):
        dropnet.prune.magnitude(model, 0.7, include_output=False)
    before = [row["mode"] for row in dev.sparse_info()]
    with pytest.raises(ValueError, match=rf"layers\[0\] conv2d: sparse execution runs on the CPU only, not on "
                                         rf"device '{name}'"):
        dev.set_sparse_execution("on")
    assert [row["mode"] for row in dev.sparse_info()] == before  # nothing changed
    dev.set_sparse_execution("on", layers=[len(dev.layers) - 1])  # the Dense layer may
    cpu.set_sparse_execution("on", layers=[len(cpu.layers) - 1])
    cpu.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    dev.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert [row["sparse"] for row in dev.sparse_info()] == [False, False, False]  # the Dense has no mask
    masks = dropnet.prune.get_masks(cpu)
    assert_pruned(dev, masks)
    for a, b in zip(dev.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)
    cpu.set_sparse_execution("on")
    net = cpu.network
    with pytest.raises(ValueError, match=r"layers\[0\] conv2d: sparse execution runs on the CPU only"):
        cpu.to(device)
    assert cpu.device == "cpu" and cpu.network is net

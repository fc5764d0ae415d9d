"""benchmarks/suites/gpu_epoch.py: its code paths without a GPU (dropnet on the simulated device of
test builds, torch on the CPU), its skip without a GPU, and the CUDA-graph peer on a GPU."""
import pathlib
import sys

import numpy as np
import pytest

import dropnet

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the repository root: benchmarks/

torch = pytest.importorskip("torch")
from benchmarks import harness  # noqa: E402
from benchmarks.suites import _models, _torch_peer, gpu_epoch  # noqa: E402


def _has_sim() -> bool:
    try:
        dropnet.Sequential([dropnet.layers.Dense(2)], input_shape=(3,), device="_sim")
    except ValueError:
        return False
    return True


needs_sim = pytest.mark.skipif(not _has_sim(), reason="a release build: no simulated device '_sim'")
needs_gpu = pytest.mark.skipif(gpu_epoch.unavailable_reason() is not None,
                               reason=f"no GPU suite here: {gpu_epoch.unavailable_reason()}")


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


@pytest.mark.skipif(gpu_epoch.unavailable_reason() is None, reason="a GPU is usable here: the suite runs")
def test_suite_skips_without_a_gpu_naming_why(capsys):
    ctx = harness.Context([1], quick=True)
    gpu_epoch.run(ctx)
    out = capsys.readouterr().out
    assert ctx.rows == []
    assert out.strip() == f"# gpu_epoch suite skipped: {gpu_epoch.unavailable_reason()}"


@needs_sim
@pytest.mark.parametrize("name", ["lenet", "cnn"])
def test_device_model_and_torch_peer_are_the_same_network(name):
    # The suite's pairing: torch's draw copied into the dropnet model on a device gives the same
    # function (inference: dropout off, batch norm on its initial running statistics).
    peer = _torch_peer.TorchClassifier(_models.torch_builder(name), 5, 128, device="cpu")
    model = _models.dropnet_model(name, 5, device="_sim")
    model.set_weights(peer.weights())
    x, _ = _data(4, seed=1)
    peer.net.eval()
    with torch.no_grad():
        want = torch.softmax(peer.net(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-6)


@needs_sim
def test_suite_rows_on_the_simulated_device(capsys):
    ctx = harness.Context([1], repeats=5, warmup=0, target_s=0.0)
    x, y = _data(128)
    gpu_epoch.run_on(ctx, x, y, "_sim", "cpu", graphs=False, label="(sim)", cases=("lenet", "pruned"))
    lenet = {r.side: r for r in ctx.rows if r.case.startswith("lenet epoch (128 samples")}
    assert set(lenet) == {"dropnet fit", "torch eager"}
    assert set(lenet["dropnet fit"].ratios) == {"torch eager"} and lenet["dropnet fit"].median_s > 0
    pruned = {r.side: r for r in ctx.rows if r.case.startswith("pruned lenet 90% step")}
    # Pruned layers run on the device: the compressed step beside the dense-masked one, validated
    # against each other (the same gradients up to summation order) before timing.
    assert set(pruned) == {"dropnet sparse", "dropnet dense-masked"}
    assert pruned["dropnet sparse"].median_s > 0 and "refused" not in pruned["dropnet sparse"].note
    assert "sparse execution refused" not in capsys.readouterr().out


def test_graphed_peer_needs_full_batches():
    x, y = torch.zeros(200, 1, 28, 28), torch.zeros(200, dtype=torch.int64)
    with pytest.raises(ValueError, match="multiple of 128 rows, got 200"):
        _torch_peer.GraphedClassifier(_models.torch_builder("lenet"), 0, 128, x, y, device="cpu")


@pytest.mark.gpu
@needs_gpu
def test_graphed_step_gives_the_eager_gradients():
    # Without dropout the step is deterministic up to the products' rounding: one replay's
    # gradients against an eager backward from the parameters it started from, on the same batch.
    def build(nn):
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))

    x, y = (torch.from_numpy(a).cuda() for a in _data(256))
    g = _torch_peer.GraphedClassifier(build, 0, 128, x, y)
    before = [p.detach().clone() for p in g.net.parameters()]
    g.idx.copy_(torch.arange(128, 256, device="cuda"))
    g.graph.replay()
    torch.cuda.synchronize()
    ref = build(torch.nn).cuda()
    with torch.no_grad():
        for p, b in zip(ref.parameters(), before):
            p.copy_(b)
    torch.nn.functional.cross_entropy(ref(x[128:]), y[128:]).backward()
    for p, q in zip(g.net.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(p.detach(), b) for p, b in zip(g.net.parameters(), before)), "no Adam step"


def test_training_data_falls_back_to_random_images_of_the_same_shape(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu_epoch.datasets, "SYSTEM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DROPNET_DATA", str(tmp_path))
    x, y, what = gpu_epoch.training_data(256)
    assert what == "random data (Fashion-MNIST not found)" and "timing on random data" in capsys.readouterr().out
    assert x.shape == (256, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    assert y.shape == (256,) and y.dtype == np.int64 and set(np.unique(y)) <= set(range(10))


def test_pruned_rows_where_sparse_execution_runs():
    # The CPU network takes pruning masks: the row times sparse against dense-masked steps (after
    # validating that they agree) and names the measured break-even.
    ctx = harness.Context([1], repeats=5, warmup=0, target_s=0.0)
    x, y = _data(128)
    gpu_epoch.run_on(ctx, x, y, "cpu", "cpu", graphs=False, label="(cpu)", cases=("pruned",))
    assert [r.side for r in ctx.rows] == ["dropnet sparse", "dropnet dense-masked"]
    assert set(ctx.rows[0].ratios) == {"dropnet dense-masked"}
    assert ctx.rows[0].note.startswith("break-even density layer 1: ")


@needs_sim
@pytest.mark.skipif(torch.cuda.is_available(), reason="torch has CUDA here: capture may work")
def test_failed_graph_capture_is_a_note():
    ctx = harness.Context([1], repeats=5, warmup=0, target_s=0.0)
    x, y = _data(128)
    gpu_epoch.run_on(ctx, x, y, "_sim", "cpu", graphs=True, label="(sim)", cases=("lenet",))
    assert [r.side for r in ctx.rows] == ["dropnet fit", "torch eager"]
    assert "torch CUDA graph capture failed" in ctx.rows[0].note

"""Data-parallel training (docs/distributed.md): the split step, masks keyed by global rows, and
real MPI runs at 1, 2, 3 and 4 ranks started with mpiexec (subprocesses, each with a timeout).

References: the fused train_step (bits), a numpy Philox (masks), the one-process fit (losses and
weights within float tolerance: the gradient of a global batch is summed in another order)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import dropnet
from dropnet import layers as L

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed_models import GLOBAL_ROWS, SEED, SPECS, mask_models, masks_from_grad, set_all_ones  # noqa: E402
from philox_ref import keep_threshold, stream_words  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "distributed_worker.py")


def reference_masks(name: str) -> np.ndarray:
    _, p, width = SPECS[name]
    words = stream_words(GLOBAL_ROWS * width, SEED, 0)  # the first dropout takes stream 0
    return (words < keep_threshold(p)).astype(np.uint8).reshape(GLOBAL_ROWS, width)


def one_hot_batch(model):
    x = np.eye(GLOBAL_ROWS, dtype=np.float32).reshape((GLOBAL_ROWS, *model.input_shape))
    y = np.full((GLOBAL_ROWS, model.network.output_shape[0]), -1.0, dtype=np.float32)
    return x, y


# ------------------------------------------------------------------ in one process


def small_model(seed=3):
    m = dropnet.Sequential([L.Input(20), L.Dense(33, activation="relu"), L.Dropout(0.3),
                            L.BatchNormalization(), L.Dense(19, activation="tanh"), L.Dropout(0.2),
                            L.Dense(5, activation="softmax")], seed=seed)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_compute_then_apply_gives_the_bits_of_train_step():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 20)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    fused, split = small_model(), small_model()
    for _ in range(3):
        loss = fused.network.train_step(x, y)
        loss_sum, correct = split.compute_gradients(x, y)
        penalty = split.apply_gradients()
        assert loss_sum / 64 + penalty == loss
        assert correct == fused.network.last_batch_correct
    for a, b in zip(fused.get_weights() + fused.get_state(), split.get_weights() + split.get_state()):
        np.testing.assert_array_equal(a, b)
    assert fused.rng_offset == split.rng_offset == 6


def test_grad_buffer_is_one_arena_holding_every_gradient():
    rng = np.random.default_rng(1)
    m = small_model()
    x = rng.standard_normal((16, 20)).astype(np.float32)
    m.compute_gradients(x, rng.integers(0, 5, 16))
    net = m.network
    buf, offsets = net.grad_buffer, net.grad_offsets
    assert buf.dtype == np.float32 and buf.flags.c_contiguous and buf.flags.writeable
    grads = net.get_grads()
    for i, g in enumerate(grads):
        assert offsets[i] % 16 == 0  # 64-byte aligned slices
        np.testing.assert_array_equal(buf[offsets[i]:offsets[i] + g.size], g.ravel())
    # The view is the network's own storage: writing it changes the gradient the update reads.
    buf[offsets[0]] = 123.0
    assert net.get_grads()[0].ravel()[0] == 123.0


def test_apply_without_compute_is_refused_and_changes_nothing():
    m = small_model()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 20)).astype(np.float32)
    m.predict(x)
    before = m.get_weights()
    with pytest.raises(ValueError, match="call compute_gradients first"):
        m.apply_gradients()
    m.compute_gradients(x, rng.integers(0, 5, 8))
    m.apply_gradients()
    with pytest.raises(ValueError, match="call compute_gradients first"):
        m.apply_gradients()
    assert any((a != b).any() for a, b in zip(before, m.get_weights()))


def test_compute_gradients_rejects_bad_arguments():
    m = small_model()
    x = np.zeros((8, 20), np.float32)
    y = np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="grad_rows"):
        m.compute_gradients(x, y, grad_rows=4)
    with pytest.raises(TypeError, match="grad_rows"):
        m.compute_gradients(x, y, grad_rows=8.0)
    with pytest.raises((ValueError, TypeError), match="row_offset"):
        m.compute_gradients(x, y, row_offset=-1)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_masks_of_the_whole_batch_follow_the_philox_contract(name, isa_level):
    model = mask_models()[name]
    set_all_ones(model)
    x, y = one_hot_batch(model)
    model.compute_gradients(x, y)
    np.testing.assert_array_equal(masks_from_grad(model), reference_masks(name))


@pytest.mark.parametrize("n_ranks", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_shards_with_global_row_offsets_draw_the_whole_batch_masks(name, n_ranks, isa_level):
    """Simulated ranks in one process: each shard's gradient with its row offset, summed."""
    model = mask_models()[name]
    set_all_ones(model)
    x, y = one_hot_batch(model)
    total = np.zeros_like(model.network.grad_buffer)
    for r in range(n_ranks):
        lo, hi = (r * GLOBAL_ROWS) // n_ranks, ((r + 1) * GLOBAL_ROWS) // n_ranks
        model.compute_gradients(x[lo:hi], y[lo:hi], row_offset=lo, grad_rows=GLOBAL_ROWS)
        total += model.network.grad_buffer
    model.network.grad_buffer[:] = total
    np.testing.assert_array_equal(masks_from_grad(model), reference_masks(name))


def test_shard_gradients_sum_to_the_whole_batch_gradient():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 20)).astype(np.float32)
    y = rng.integers(0, 5, 30)
    m = dropnet.Sequential([L.Input(20), L.Dense(33, activation="relu"), L.Dropout(0.3), L.Dense(5)], seed=9)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss_all, _ = m.compute_gradients(x, y)
    whole = m.network.grad_buffer.copy()
    total, loss_parts = np.zeros_like(whole), 0.0
    for lo, hi in [(0, 11), (11, 12), (12, 30)]:
        s, _ = m.compute_gradients(x[lo:hi], y[lo:hi], row_offset=lo, grad_rows=30)
        loss_parts += s
        total += m.network.grad_buffer
    np.testing.assert_allclose(total, whole, rtol=1e-5, atol=1e-7)
    assert loss_parts == pytest.approx(loss_all, rel=1e-12)


# ------------------------------------------------------------------ real ranks under mpiexec


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    exe = shutil.which("mpiexec")
    return exe


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason='mpi4py/mpiexec not installed (pip install "dropnet[mpi]")')


def _env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               # Loopback only, no network probing: a test machine may have none.
               OMPI_MCA_btl="self,vader,tcp", OMPI_MCA_btl_tcp_if_include="lo",
               OMPI_MCA_oob_tcp_if_include="lo", OMPI_MCA_rmaps_base_oversubscribe="1",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")
    # The ranks import the dropnet this test imported (a source tree or the installed package).
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(dropnet.__file__)))
    env["PYTHONPATH"] = package_parent + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_ranks(n_ranks, *args, timeout=120, check=True):
    """Run the worker at n_ranks (0: one process without mpiexec); returns (rc, output, seconds)."""
    cmd = [sys.executable, WORKER, *map(str, args)]
    if n_ranks:
        cmd = [MPIEXEC, "-n", str(n_ranks), "--oversubscribe", *cmd]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{out[-4000:]}"
    return proc.returncode, out, took


@needs_mpi
@pytest.mark.parametrize("n_ranks", [2, 3, 4])
def test_masks_at_2_3_4_ranks_are_the_one_process_masks(tmp_path, n_ranks):
    out = tmp_path / "masks.npz"
    run_ranks(n_ranks, "masks", out)
    got = np.load(out)
    for name in SPECS:
        np.testing.assert_array_equal(got[name], reference_masks(name), err_msg=name)


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The training run once per world size (0: plain one-process fit), reused by several tests."""
    if MPIEXEC is None:
        pytest.skip('mpi4py/mpiexec not installed (pip install "dropnet[mpi]")')
    d = tmp_path_factory.mktemp("runs")
    out = {}
    run_ranks(0, "train", d / "plain.npz", "--plain")
    out["plain"] = _load(d / "plain.npz")
    for n in (1, 2, 3):
        run_ranks(n, "train", d / f"r{n}.npz")
        out[n] = _load(d / f"r{n}.npz")
    run_ranks(2, "train", d / "r2_again.npz")
    out["2 again"] = _load(d / "r2_again.npz")
    run_ranks(0, "train", d / "bn_plain.npz", "--plain", "--bn")
    out["bn plain"] = _load(d / "bn_plain.npz")
    run_ranks(3, "train", d / "bn_r3.npz", "--bn")  # the worker asserts all ranks hold the same weights
    out["bn 3"] = _load(d / "bn_r3.npz")
    return out


def _weights(run):
    return [run[f"arr_{i}"] for i in range(int(run["n_weights"]))]


def test_one_rank_under_mpiexec_gives_the_bits_of_plain_fit(runs):
    for a, b in zip(_weights(runs["plain"]), _weights(runs[1])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs["plain"]["loss"], runs[1]["loss"])


@pytest.mark.parametrize("n_ranks", [2, 3])
def test_losses_and_weights_match_the_one_process_run(runs, n_ranks):
    ref, got = runs["plain"], runs[n_ranks]
    assert int(got["rng_offset"]) == int(ref["rng_offset"])
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=2e-4)
    np.testing.assert_allclose(got["val_loss"], ref["val_loss"], rtol=2e-3)
    np.testing.assert_allclose(got["accuracy"], ref["accuracy"], atol=0.02)
    for a, b in zip(_weights(ref), _weights(got)):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=2e-3)
    # evaluate and predict shard the rows and gather them
    np.testing.assert_allclose(got["pred"], ref["pred"], rtol=1e-2, atol=2e-3)
    np.testing.assert_allclose(got["eval_loss"], ref["eval_loss"], rtol=2e-3)


def test_batch_norm_with_per_rank_statistics_trains_like_one_process(runs):
    """Per-rank batch statistics are not the global batch's: close, not equal (as with DDP). The
    running statistics are averaged at epoch end, and every rank holds the same ones (the worker
    compares the ranks' digests of weights and statistics)."""
    ref, got = runs["bn plain"], runs["bn 3"]
    assert int(got["rng_offset"]) == int(ref["rng_offset"])
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=0.1)
    assert not np.array_equal(got["loss"], ref["loss"])


def test_same_seed_same_world_size_gives_the_same_bits(runs):
    for a, b in zip(_weights(runs[2]), _weights(runs["2 again"])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[2]["loss"], runs["2 again"]["loss"])


@needs_mpi
@pytest.mark.parametrize("die", [False, True])
def test_a_failing_rank_ends_every_rank_quickly_and_is_named(tmp_path, die):
    args = ["fail", tmp_path / "x.npz", "--epochs", "50", "--bad-rank", "1"] + (["--die"] if die else [])
    rc, out, took = run_ranks(3, *args, timeout=90, check=False)
    assert rc != 0
    assert took < 60, f"ranks took {took:.0f} s to stop"
    if die:
        # Open MPI names the process [job,rank] that exited first
        assert re.search(r"exited with non-zero status", out) and re.search(r"@\d+,1\]", out), out[-2000:]
    else:
        assert "rank 1 of 3 failed in fit: RuntimeError: injected failure" in out, out[-2000:]
    assert not (tmp_path / "x.npz").exists()


@needs_mpi
def test_ranks_with_different_seeds_are_stopped_at_the_start(tmp_path):
    rc, out, _ = run_ranks(2, "mismatch", tmp_path / "x.npz", "--bad-rank", "1")
    assert out.count("CONFIG-ERROR") == 2, out[-2000:]  # every rank gets the same error
    assert "rank 1: data-order seed, model, model seed" in out


@needs_mpi
def test_checkpoint_saved_at_2_ranks_resumes_at_3_with_the_same_order(tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    run_ranks(2, "resume", tmp_path / "first.npz", "--epochs", "1", "--save", ckpt)
    run_ranks(3, "resume", tmp_path / "resumed.npz", "--epochs", "3", "--initial-epoch", "1", "--load", ckpt)
    run_ranks(0, "resume", tmp_path / "whole.npz", "--epochs", "3", "--plain")
    resumed, whole = _load(tmp_path / "resumed.npz"), _load(tmp_path / "whole.npz")
    assert int(resumed["rng_offset"]) == int(whole["rng_offset"])
    np.testing.assert_allclose(resumed["loss"], whole["loss"][1:], rtol=1e-3)
    for a, b in zip(_weights(whole), _weights(resumed)):
        np.testing.assert_allclose(b, a, rtol=2e-2, atol=5e-3)


@needs_mpi
def test_lottery_ticket_runs_distributed_and_only_rank_0_writes(tmp_path):
    run_ranks(0, "lottery", tmp_path / "plain.npz", "--plain")
    _, out, _ = run_ranks(2, "lottery", tmp_path / "dist.npz", "--save", tmp_path / "ckpt")
    plain, got = _load(tmp_path / "plain.npz"), _load(tmp_path / "dist.npz")
    np.testing.assert_array_equal(got["left"], plain["left"])  # the same pruning schedule
    np.testing.assert_allclose(got["acc"], plain["acc"], atol=0.05)
    assert out.count("round 0 ticket") == 1  # one voice
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["lottery.json", "rewind.dnet", "round_00_ticket.dnet",
                                                     "round_01_reinit.dnet", "round_01_ticket.dnet",
                                                     "round_02_reinit.dnet", "round_02_ticket.dnet"]


@needs_mpi
def test_dropnet_train_command_under_mpiexec(tmp_path):
    cmd = [MPIEXEC, "-n", "2", "--oversubscribe", sys.executable, "-m", "dropnet", "train", "--dataset", "embedded",
           "--max-samples", "600", "--epochs", "1", "--batch-size", "60", "--verbose", "0", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("test accuracy") == 1 and "(2 ranks)" in proc.stdout, proc.stdout
    assert (tmp_path / "model.npz").exists() and (tmp_path / "history.csv").exists()


@needs_mpi
def test_fixed_order_sum_gives_the_same_bits_at_1_2_and_4_ranks(tmp_path):
    """FixedOrder(4): the four micro-shards' gradients are added in micro-shard order on every
    rank, so the weights do not depend on how many ranks computed them."""
    runs = {}
    for n in (1, 2, 4):
        run_ranks(n, "train", tmp_path / f"f{n}.npz", "--fixed", "4")
        runs[n] = _load(tmp_path / f"f{n}.npz")
    for n in (2, 4):
        for a, b in zip(_weights(runs[1]), _weights(runs[n])):
            np.testing.assert_array_equal(a, b)
    # and it is still the same training as the one-process run, up to rounding
    run_ranks(0, "train", tmp_path / "plain.npz", "--plain")
    plain = _load(tmp_path / "plain.npz")
    np.testing.assert_allclose(runs[1]["loss"], plain["loss"], rtol=2e-4)


def test_distributed_argument_is_checked():
    from dropnet import distributed as dist

    m = small_model()
    x = np.zeros((8, 20), np.float32)
    y = np.zeros(8, np.int64)
    with pytest.raises(TypeError, match="distributed: expected a bool or dropnet.distributed.Options, got str"):
        m.fit(x, y, distributed="yes", verbose=0)
    with pytest.raises(ValueError, match="micro_shards: expected None or an int >= 1, got 0"):
        dist.FixedOrder(0)
    with pytest.raises(ValueError, match="micro_shards and sync_batchnorm: choose one"):
        dist.Options(micro_shards=2, sync_batchnorm=True)
    with pytest.raises(TypeError, match="sync_batchnorm: expected a bool, got int"):
        dist.Options(sync_batchnorm=1)


def test_synchronised_batch_norm_over_two_threads_is_batch_norm_over_the_whole_batch():
    """Two networks in two threads stand for two processes; the sum across them is a barrier.
    Their summed gradients and their batch norm statistics must be those of one network on the
    whole batch (the reference), for dense (N, C) and image (N, C, H, W) batch norm."""
    import threading

    for shape, layers_ in [((12,), lambda: [L.Input(12), L.Dense(16), L.BatchNormalization(), L.Activation("relu"),
                                            L.Dense(3, activation="softmax")]),
                           ((2, 5, 5), lambda: [L.Input((2, 5, 5)), L.Conv2D(4, 3, padding="same"),
                                                L.BatchNormalization(), L.Flatten(),
                                                L.Dense(3, activation="softmax")]),
                           # batch norm + ReLU + 2x2 max pooling: one fused native layer
                           ((2, 6, 7), lambda: [L.Input((2, 6, 7)), L.Conv2D(4, 3, padding="same"),
                                                L.BatchNormalization(), L.Activation("relu"), L.MaxPool2D(2),
                                                L.Flatten(), L.Dense(3, activation="softmax")])]:
        def build():
            m = dropnet.Sequential(layers_(), seed=11)
            m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            return m

        rng = np.random.default_rng(5)
        x = (rng.standard_normal((22, *shape)) * 3 + 1).astype(np.float32)
        y = rng.integers(0, 3, 22)
        whole = build()
        whole.compute_gradients(x, y)
        want = whole.network.grad_buffer.copy()
        parts = [build(), build()]
        barrier = threading.Barrier(2)
        slots = [None, None]
        calls = [0, 0]

        def make_sum(i):
            def sum_across(a):
                slots[i] = a.copy()
                calls[i] += 1
                barrier.wait()
                total = slots[0] + slots[1]
                barrier.wait()
                a[:] = total
            return sum_across

        bounds = [(0, 9), (9, 22)]
        errors = []

        def work(i):
            try:
                m = parts[i]
                m.predict(x[:2])
                m.network.set_batchnorm_sync(make_sum(i))
                lo, hi = bounds[i]
                m.compute_gradients(x[lo:hi], y[lo:hi], row_offset=lo, grad_rows=22)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)
                barrier.abort()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert calls == [3, 3]  # two sums forward, one backward, for the one batch norm layer
        got = parts[0].network.grad_buffer + parts[1].network.grad_buffer
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
        for a, b in zip(parts[0].get_state(), whole.get_state()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        for a, b in zip(parts[0].get_state(), parts[1].get_state()):
            np.testing.assert_array_equal(a, b)
        parts[0].network.set_batchnorm_sync(None)


def test_set_batchnorm_sync_wants_a_callable():
    m = small_model()
    m.predict(np.zeros((2, 20), np.float32))
    with pytest.raises(TypeError, match="sum: expected a callable or None, got int"):
        m.network.set_batchnorm_sync(3)


@needs_mpi
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_sync_batchnorm_at_2_and_3_ranks_trains_as_one_process(tmp_path, n_ranks):
    """With synchronised batch norm the multi-rank run is the one-process run up to rounding."""
    run_ranks(0, "train", tmp_path / "plain.npz", "--plain", "--bn")
    run_ranks(n_ranks, "train", tmp_path / "sync.npz", "--bn", "--sync-bn")
    ref, got = _load(tmp_path / "plain.npz"), _load(tmp_path / "sync.npz")
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=2e-4)
    np.testing.assert_allclose(got["val_loss"], ref["val_loss"], rtol=2e-3)
    for a, b in zip(_weights(ref), _weights(got)):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=2e-3)


@needs_mpi
def test_plateau_and_early_stopping_decide_together_on_the_global_validation_loss(tmp_path):
    """Every rank logs the same global metrics (the worker compares the ranks' histories and
    weights), so ReduceLROnPlateau and EarlyStopping act on every rank at the same epoch."""
    run_ranks(3, "train", tmp_path / "p.npz", "--plateau", "--epochs", "30")
    got = _load(tmp_path / "p.npz")
    assert len(got["loss"]) < 30  # stopped early, on every rank (or the ranks would hang or differ)
    assert got["lr"][-1] < got["lr"][0]  # and lowered the learning rate on the way
    val = got["val_loss"]
    # The decisions follow the logged (global) validation loss: reductions come after epochs that
    # failed to improve on the best by min_delta.
    best, expect_lr, lr = val[0], [], got["lr"][0]
    for e in range(len(val)):
        expect_lr.append(lr)
        if e > 0 and not val[e] < best - 0.05:
            lr *= 0.5
        best = min(best, val[e]) if e == 0 or val[e] < best - 0.05 else best
    np.testing.assert_allclose(got["lr"], expect_lr, rtol=1e-6)


@needs_mpi
def test_sample_weights_train_and_evaluate_distributed_as_in_one_process(tmp_path):
    run_ranks(0, "train", tmp_path / "plain.npz", "--plain", "--weights")
    run_ranks(3, "train", tmp_path / "w3.npz", "--weights")
    ref, got = _load(tmp_path / "plain.npz"), _load(tmp_path / "w3.npz")
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=2e-4)
    np.testing.assert_allclose(got["eval_loss"], ref["eval_loss"], rtol=2e-3)
    np.testing.assert_allclose(got["eval_accuracy"], ref["eval_accuracy"], atol=0.02)
    # and the weights mattered: the unweighted run differs by more than the tolerance
    run_ranks(0, "train", tmp_path / "unweighted.npz", "--plain")
    assert not np.allclose(_load(tmp_path / "unweighted.npz")["loss"], ref["loss"], rtol=2e-3)

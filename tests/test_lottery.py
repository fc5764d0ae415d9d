"""dropnet.prune.LotteryTicket on a tiny problem: pruning schedule, rewinding, controls,
reproducibility, resuming from a checkpoint directory, results output, errors."""
from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest

from dropnet import callbacks, datasets, layers, load_model, optim, prune
from dropnet.models import Sequential
from dropnet.prune.lottery import derived_seed

TIMING = "mean_epoch_seconds"


def model_fn(seed: int) -> Sequential:
    # Glorot, as Frankle & Carbin's LeNet.
    m = Sequential([layers.Dense(32, activation="relu", kernel_initializer="glorot_uniform"),
                    layers.Dense(16, activation="relu", kernel_initializer="glorot_uniform"),
                    layers.Dense(10, activation="softmax", kernel_initializer="glorot_uniform")],
                   input_shape=(784,), seed=seed)
    m.compile(optimizer=optim.Adam(lr=1.2e-3), loss="sparse_categorical_crossentropy")
    return m


@pytest.fixture(scope="module")
def tiny():
    (x, y), (xt, yt) = datasets.embedded(flatten=True)
    return (x[:480], y[:480]), (x[480:720], y[480:720]), (xt[:200], yt[:200])


def run(tiny, tmp=None, rounds=2, **kw):
    (x, y), val, test = tiny
    lt = prune.LotteryTicket(model_fn, rate=0.2, output_rate=0.1, rounds=rounds, seed=3, **kw)
    res = lt.run(x, y, epochs=1, batch_size=60, validation_data=val, test_data=test, checkpoint_dir=tmp, verbose=0)
    return lt, res


def strip(records):
    return [{k: v for k, v in r.items() if k != TIMING} for r in records]


def remaining_after(rounds: int, sizes, rate=0.2, output_rate=0.1):
    """Weights left after `rounds` rounds with the per-layer count rule floor(a * n + 0.5)."""
    left = list(sizes)
    for _ in range(rounds):
        left = [n - int(math.floor((output_rate if i == len(left) - 1 else rate) * n + 0.5))
                for i, n in enumerate(left)]
    return sum(left) / sum(sizes)


def test_rounds_arms_sparsity_and_reproducible(tiny):
    lt, res = run(tiny)
    lt2, res2 = run(tiny)
    assert strip(res.records) == strip(res2.records)
    assert [(r["round"], r["arm"]) for r in res.records] == [
        (0, "ticket"), (1, "ticket"), (1, "reinit"), (1, "random_mask"), (2, "ticket"), (2, "reinit"),
        (2, "random_mask")]
    sizes = [784 * 32, 32 * 16, 16 * 10]
    for r in res.records:
        assert r["weights_remaining"] == pytest.approx(remaining_after(r["round"], sizes), abs=1e-12)
        assert 0.0 <= r["best_test_accuracy"] <= 1.0 and r["final_test_accuracy"] <= r["best_test_accuracy"]
        assert r["early_stop_iteration"] == 8 and r["iterations"] == 8  # one epoch, one evaluation
        assert r[TIMING] > 0
    assert res.records[0]["best_test_accuracy"] > 0.3  # the dense net learned something in 8 steps
    assert res.records[2]["model_seed"] == derived_seed(3, 1, "reinit") != 3
    assert res.records[3]["mask_seed"] == derived_seed(3, 1, "random_mask")
    # Rewinding to init: the rewind weights are model_fn(seed)'s initial weights, bit for bit.
    for a, b in zip(lt.rewind_weights, model_fn(3).get_weights()):
        assert a.tobytes() == b.tobytes()


def test_resume_skips_finished_arms_and_matches(tiny, tmp_path):
    _, full = run(tiny)
    d = str(tmp_path / "ck")
    _, first = run(tiny, d, rounds=1)  # stops after round 1
    assert sorted(f for f in os.listdir(d) if f.endswith(".dnet")) == [
        "rewind.dnet", "round_00_ticket.dnet", "round_01_random_mask.dnet", "round_01_reinit.dnet",
        "round_01_ticket.dnet"]
    stamp = os.path.getmtime(os.path.join(d, "round_01_ticket.dnet"))
    _, resumed = run(tiny, d, rounds=2)
    assert os.path.getmtime(os.path.join(d, "round_01_ticket.dnet")) == stamp  # not retrained
    assert resumed.records[:4] == first.records  # loaded, timings included
    assert strip(resumed.records) == strip(full.records)
    assert prune.LotteryResults.load(d).records == resumed.records
    # Settings or data changed: refuse the directory.
    (x, y), val, test = tiny
    with pytest.raises(ValueError, match="checkpoint_dir.*rate"):
        prune.LotteryTicket(model_fn, rate=0.3, rounds=1, seed=3).run(
            x, y, epochs=1, batch_size=60, validation_data=val, test_data=test, checkpoint_dir=d, verbose=0)


def test_controls_use_the_ticket_masks(tiny, tmp_path):
    d = str(tmp_path / "ck")
    run(tiny, d, rounds=1)
    ticket, reinit, rnd = (prune.sparsity(load_model(os.path.join(d, f"round_01_{a}.dnet")))
                           for a in ("ticket", "reinit", "random_mask"))
    assert [r["nnz"] for r in ticket.rows] == [r["nnz"] for r in reinit.rows] == [r["nnz"] for r in rnd.rows]
    mt, mr, mm = (prune.get_masks(load_model(os.path.join(d, f"round_01_{a}.dnet")))
                  for a in ("ticket", "reinit", "random_mask"))
    assert all(np.array_equal(a, b) for a, b in zip(mt, mr))
    assert not np.array_equal(mt[0], mm[0])
    # The round 1 ticket's mask is the magnitude pruning of the trained dense weights.
    dense = load_model(os.path.join(d, "round_00_ticket.dnet"))
    prune.magnitude(dense, 0.2, amounts={-1: 0.1})
    assert all(np.array_equal(a, b) for a, b in zip(prune.get_masks(dense), mt))


def test_iteration_rewind_is_the_dense_run_after_k_batches(tiny):
    (x, y), _, _ = tiny
    lt, _ = run(tiny, rounds=0, rewind=("iteration", 3))

    class StopAfter(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch + 1 == 3:
                self.model.stop_training = True

    ref = model_fn(3)
    ref.fit(x, y, epochs=1, batch_size=60, seed=3, callbacks=[StopAfter()], verbose=0)
    for a, b in zip(lt.rewind_weights, ref.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert not np.array_equal(lt.rewind_weights[0], model_fn(3).get_weights()[0])


def test_results_table_csv_plot(tiny, tmp_path):
    _, res = run(tiny, rounds=1, eval_every=4)
    assert [r["early_stop_iteration"] in (4, 8) for r in res.records] == [True] * 4
    table = res.table()
    assert table.splitlines()[0].startswith("| round | arm |") and len(table.splitlines()) == 2 + 4
    assert "random_mask" in table and f"{100 * res.records[1]['weights_remaining']:.2f}" in table
    path = tmp_path / "r.csv"
    res.to_csv(str(path))
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == ["ticket", "ticket", "reinit", "random_mask"]
    assert float(rows[1]["best_test_accuracy"]) == res.records[1]["best_test_accuracy"]
    png = tmp_path / "r.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            res.plot(str(png))
    else:
        res.plot(str(png))
        assert png.stat().st_size > 0


def test_errors(tiny):
    (x, y), val, _ = tiny
    with pytest.raises(ValueError, match="rate"):
        prune.LotteryTicket(model_fn, rate=1.0)
    with pytest.raises(TypeError, match="output_rate"):
        prune.LotteryTicket(model_fn, output_rate="0.1")
    with pytest.raises(ValueError, match="rewind"):
        prune.LotteryTicket(model_fn, rewind=("step", 2))
    with pytest.raises(ValueError, match="scope"):
        prune.LotteryTicket(model_fn, scope="all")
    with pytest.raises(TypeError, match="model_fn"):
        prune.LotteryTicket("model")
    lt = prune.LotteryTicket(model_fn, rounds=1, rewind=("epoch", 2))
    with pytest.raises(ValueError, match="rewind.*past the end"):
        lt.run(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="controls"):
        prune.LotteryTicket(model_fn).run(x, y, controls=("shuffle",), verbose=0)
    with pytest.raises(ValueError, match="early_stopping.*validation_data"):
        prune.LotteryTicket(model_fn).run(x, y, early_stopping=2, verbose=0)

    def unbuilt(seed):
        m = Sequential([layers.Dense(10, activation="softmax")], seed=seed)
        m.compile()
        return m

    with pytest.raises(ValueError, match="model_fn.*unbuilt"):
        prune.LotteryTicket(unbuilt).run(x, y, verbose=0)


def test_epoch_rewind_global_scope_and_early_stopping(tiny):
    (x, y), val, test = tiny
    lt = prune.LotteryTicket(model_fn, rate=0.5, output_rate=0.2, rounds=1, rewind=("epoch", 1), scope="global",
                             seed=4)
    res = lt.run(x, y, epochs=3, batch_size=60, validation_data=val, test_data=test, controls=(),
                 early_stopping=1, verbose=0)
    # ("epoch", 1): the dense run's weights after its first epoch.
    ref = model_fn(4)
    ref.fit(x, y, epochs=1, batch_size=60, seed=4, verbose=0)
    for a, b in zip(lt.rewind_weights, ref.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert [r["arm"] for r in res.records] == ["ticket", "ticket"]
    for r in res.records:
        assert r["iterations"] in (8, 16, 24)  # stopped at an epoch end, by validation loss
        assert r["early_stop_iteration"] <= r["iterations"]
    # Global scope with the output layer on its own: hidden layers pruned 50 % together.
    sizes = [784 * 32, 32 * 16]
    hidden_left = sum(sizes) - int(math.floor(0.5 * sum(sizes) + 0.5))
    out_left = 160 - int(math.floor(0.2 * 160 + 0.5))
    assert res.records[1]["weights_remaining"] == pytest.approx((hidden_left + out_left) / (sum(sizes) + 160))

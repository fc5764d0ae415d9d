"""One rank of the data-parallel tests (tests/test_distributed.py starts it under mpiexec).

python distributed_worker.py MODE OUT [options]; rank 0 writes OUT (an .npz) with what the test
compares. Modes:
  masks     the dropout masks of one global batch, read from the first weight's gradient
  train     fit with dropout, batch norm and validation; the history and the weights
  fail      rank --bad-rank raises in the middle of an epoch (--die: it exits without a word)
  mismatch  rank --bad-rank builds its model with another seed
  resume    --load a checkpoint (or start fresh), train to --epochs, --save a checkpoint per epoch
  lottery   prune.LotteryTicket (2 rounds, one control) with --save as its checkpoint_dir
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import dropnet
from dropnet import callbacks as cb
from dropnet import distributed as dist
from dropnet import layers as L

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed_models import GLOBAL_ROWS, mask_models, masks_from_grad, set_all_ones  # noqa: E402


def data(n: int = 300, d: int = 24, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)).astype(np.float32) * 2
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.standard_normal((n, d)).astype(np.float32)).astype(np.float32)
    return x, y.astype(np.int64)


def train_model(seed: int = 7, bn: bool = False) -> dropnet.Sequential:
    """bn: with batch norm, whose per-rank statistics make a multi-rank run differ from the
    one-process run by more than rounding (DDP's semantics; docs/distributed.md)."""
    m = dropnet.Sequential([L.Input(24), L.Dense(32, activation="relu"), L.Dropout(0.3),
                            *([L.BatchNormalization()] if bn else []),
                            L.Dense(17, activation="relu"), L.Dropout(0.25), L.Dense(4, activation="softmax")],
                           seed=seed)
    m.compile(optimizer=dropnet.optim.Adam(lr=3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--initial-epoch", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=40)
    p.add_argument("--bad-rank", type=int, default=1)
    p.add_argument("--die", action="store_true")
    p.add_argument("--load", default=None)
    p.add_argument("--save", default=None)
    p.add_argument("--plain", action="store_true", help="fit() without distributed (the one-process reference)")
    p.add_argument("--bn", action="store_true", help="a batch norm layer in the model")
    p.add_argument("--fixed", type=int, default=0, help="distributed=FixedOrder(micro_shards=FIXED)")
    p.add_argument("--sync-bn", action="store_true", help="distributed=Options(sync_batchnorm=True)")
    p.add_argument("--plateau", action="store_true", help="ReduceLROnPlateau and EarlyStopping on val_loss")
    p.add_argument("--weights", action="store_true", help="sample weights in fit and evaluate")
    a = p.parse_args()
    dropnet.set_num_threads(1)
    r = dist.rank() if not a.plain else 0
    n_ranks = dist.size() if not a.plain else 1

    if a.mode == "masks":
        out = {}
        for name, model in mask_models().items():
            set_all_ones(model)
            x = np.eye(GLOBAL_ROWS, dtype=np.float32).reshape((GLOBAL_ROWS, *model.input_shape))
            y = np.full((GLOBAL_ROWS, model.network.output_shape[0]), -1.0, dtype=np.float32)
            lo, hi = dist.shard_bounds(GLOBAL_ROWS, r, n_ranks)
            model.compute_gradients(x[lo:hi], y[lo:hi], row_offset=lo, grad_rows=GLOBAL_ROWS)
            dist.allreduce_(model.network.grad_buffer)
            out[name] = masks_from_grad(model)
        if r == 0:
            np.savez(a.out, **out)
        return 0

    if a.mode == "mismatch":
        m = train_model(seed=8 if r == a.bad_rank else 7)
        x, y = data()
        try:
            m.fit(x, y, epochs=1, batch_size=a.batch_size, verbose=0, distributed=True)
        except dist.DistributedConfigError as e:
            print(f"CONFIG-ERROR rank {r}: {e}", flush=True)
            return 0
        return 1

    x, y = data()
    xv, yv = data(n=90, seed=1)
    if a.mode == "lottery":
        from dropnet import prune

        lt = prune.LotteryTicket(lambda s: train_model(seed=s), rate=0.4, rounds=2, seed=3)
        res = lt.run(x, y, epochs=2, batch_size=a.batch_size, test_data=(xv, yv), controls=("reinit",),
                     checkpoint_dir=a.save, verbose=1, distributed=not a.plain)
        if r == 0:
            recs = res.records if hasattr(res, "records") else list(res)
            np.savez(a.out, acc=np.array([rec["best_test_accuracy"] for rec in recs]),
                     left=np.array([rec["weights_remaining"] for rec in recs]))
        return 0
    if a.load:
        model = dropnet.load_model(a.load)
    else:
        model = train_model(bn=a.bn)
    cbs = []
    if a.mode == "fail":
        class Fail(cb.Callback):
            def on_batch_end(self, batch, logs=None):
                if batch == 3 and r == a.bad_rank:
                    if a.die:
                        os._exit(3)
                    raise RuntimeError("injected failure")
        cbs.append(Fail())
    if a.save:
        cbs.append(cb.ModelCheckpoint(a.save, monitor="val_loss"))
    if a.plateau:
        cbs += [cb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0, min_delta=0.05),
                cb.EarlyStopping(monitor="val_loss", patience=2, min_delta=0.05)]
    sw = np.random.default_rng(3).uniform(0.2, 2.0, len(x)).astype(np.float32) if a.weights else None
    hist = model.fit(x, y, epochs=a.epochs, batch_size=a.batch_size, validation_data=(xv, yv), callbacks=cbs,
                     verbose=0, initial_epoch=a.initial_epoch, sample_weight=sw,
                     distributed=dist.FixedOrder(a.fixed) if a.fixed else
                     dist.Options(sync_batchnorm=True) if a.sync_bn else not a.plain)
    digest = dist.weights_digest(model)
    if not a.plain:
        everyone = dist.comm().allgather((digest, repr(hist.history)))
        assert len(set(everyone)) == 1, f"ranks hold different weights or logs: {everyone}"
    pred = model.predict(xv, distributed=not a.plain)
    vw = np.linspace(0.5, 1.5, len(xv)).astype(np.float32) if a.weights else None
    ev = model.evaluate(xv, yv, distributed=not a.plain, sample_weight=vw)
    if r == 0:
        np.savez(a.out, *model.get_weights(), *model.get_state(), loss=np.array(hist.history["loss"]),
                 val_loss=np.array(hist.history["val_loss"]), lr=np.array(hist.history["lr"]), accuracy=np.array(hist.history["accuracy"]),
                 rng_offset=np.array(model.rng_offset), pred=pred, eval_loss=np.array(ev["loss"]),
                 eval_accuracy=np.array(ev["accuracy"]),
                 n_weights=np.array(len(model.get_weights()) + len(model.get_state())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

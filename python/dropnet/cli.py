"""Command line: ``dropnet demo | train | info`` (also ``python -m dropnet``)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence

PRESETS = {
    "lenet300": (300, 100),  # LeNet-300-100
    "mlp3": (1024, 1024, 1024),  # the 3-hidden-layer MLP of Srivastava et al. (2014)
}


def build_mlp(n_in: int, n_classes: int, hidden: Sequence[int], dropout: float, input_dropout: float, seed: int):
    """An MLP ``n_in -> hidden... -> n_classes`` with ReLU, dropout after each hidden layer and
    optional input dropout."""
    from . import layers
    from .models import Sequential

    stack: list = [layers.Input((n_in,))]
    if input_dropout > 0:
        stack.append(layers.Dropout(input_dropout))
    for units in hidden:
        stack.append(layers.Dense(units, activation="relu"))
        if dropout > 0:
            stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(n_classes, activation="softmax"))
    return Sequential(stack, seed=seed)


def _flat(x):
    return x.reshape(len(x), -1)


def _limit(x, y, max_samples: Optional[int]):
    """The first max_samples training samples (all when None)."""
    if max_samples is None:
        return x, y
    if max_samples < 1:
        raise ValueError(f"--max-samples: expected an int >= 1, got {max_samples}")
    return x[:max_samples], y[:max_samples]


def cmd_info(args) -> int:
    import dropnet

    feats = dropnet.cpu_features()
    print(f"dropnet {dropnet.__version__}")
    print(f"python {sys.version.split()[0]}")
    print(f"ISA: active {feats['active']}, available {', '.join(feats['available'])}")
    print(f"threads: {feats['threads']}")
    print(f"CUDA: built {'yes' if feats['cuda_built'] else 'no'}, devices {feats['cuda_devices']}")
    return 0


def cmd_demo(args) -> int:
    from . import datasets, optim

    t0 = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = datasets.embedded(flatten=True)
    x_train, y_train = _limit(x_train, y_train, args.max_samples)
    print(f"embedded Fashion-MNIST subset: {len(x_train)} train, {len(x_test)} test; seed {args.seed}; "
          f"{args.epochs} epochs")
    results = []
    for name, p_hidden, p_input in (("no dropout", 0.0, 0.0), ("dropout 0.5 (input 0.2)", 0.5, 0.2)):
        model = build_mlp(784, 10, PRESETS["lenet300"], p_hidden, p_input, args.seed)
        model.compile(optimizer=optim.Adam(lr=1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
        train = model.evaluate(x_train, y_train)["accuracy"]
        test = model.evaluate(x_test, y_test)["accuracy"]
        results.append((name, train, test))
        print(f"{name:<26} train accuracy {train:.4f}  test accuracy {test:.4f}  (gap {train - test:+.4f})")
    print(f"done in {time.perf_counter() - t0:.1f} s (seed {args.seed}; same seed -> same numbers)")
    return 0


def cmd_train(args) -> int:
    from . import callbacks, datasets, distributed, optim

    # Under mpiexec with several ranks, train data-parallel (docs/distributed.md); rank 0 speaks.
    parallel = distributed.launched_size() > 1
    main = distributed.is_main() if parallel else True
    say = print if main else (lambda *a, **k: None)

    (x_train, y_train), (x_test, y_test) = datasets.load(args.dataset, path=args.data_dir, flatten=True)
    x_train, x_test = _flat(x_train), _flat(x_test)
    x_train, y_train = _limit(x_train, y_train, args.max_samples)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    model = build_mlp(x_train.shape[1], n_classes, PRESETS[args.preset], args.dropout, args.input_dropout, args.seed)
    if args.optimizer == "sgd":
        opt = optim.SGD(lr=args.lr if args.lr is not None else 0.1, momentum=args.momentum,
                        nesterov=args.momentum > 0)
    else:
        opt = optim.get({"type": args.optimizer, "lr": args.lr if args.lr is not None else 1e-3})
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs: List[callbacks.Callback] = []
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        cbs += [callbacks.CSVLogger(os.path.join(args.out, "history.csv")),
                callbacks.ModelCheckpoint(os.path.join(args.out, "model.npz"), monitor="val_loss")]
    if args.step_every:
        cbs.append(callbacks.StepDecay(factor=args.step_factor, every=args.step_every))
    if main:
        model.summary()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, validation_data=(x_test, y_test),
              callbacks=cbs, verbose=args.verbose, distributed=parallel)
    result = model.evaluate(x_test, y_test, distributed=parallel)
    say(f"test loss {result['loss']:.4f}  test accuracy {result['accuracy']:.4f}  (seed {args.seed})"
        + (f"  ({distributed.size()} ranks)" if parallel else ""))
    if args.out:
        say(f"wrote {os.path.join(args.out, 'history.csv')} and {os.path.join(args.out, 'model.npz')}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dropnet", description="dropnet: reproducible dropout training from the shell")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, CPU ISA paths, threads, CUDA")
    demo = sub.add_parser("demo", help="train an MLP with and without dropout on the embedded Fashion-MNIST subset")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--max-samples", type=int, default=None, help="train on the first N images only (quick check)")
    tr = sub.add_parser("train", help="train an MLP preset on a dataset")
    tr.add_argument("--dataset", choices=["fashion_mnist", "mnist", "cifar10", "embedded"], default="fashion_mnist")
    tr.add_argument("--data-dir", default=None, help="directory with the dataset files (default: search paths)")
    tr.add_argument("--preset", choices=sorted(PRESETS), default="lenet300")
    tr.add_argument("--dropout", type=float, default=0.5, help="dropout after each hidden layer")
    tr.add_argument("--input-dropout", type=float, default=0.0)
    tr.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam")
    tr.add_argument("--lr", type=float, default=None, help="default 1e-3 (adam/adamw), 0.1 (sgd)")
    tr.add_argument("--momentum", type=float, default=0.9, help="SGD (Nesterov) momentum")
    tr.add_argument("--step-every", type=int, default=0, help="multiply the lr by --step-factor every N epochs (0: never)")
    tr.add_argument("--step-factor", type=float, default=0.5)
    tr.add_argument("--epochs", type=int, default=20)
    tr.add_argument("--batch-size", type=int, default=128)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--max-samples", type=int, default=None, help="train on the first N samples only")
    tr.add_argument("--out", default=None, help="directory for history.csv and model.npz")
    tr.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"info": cmd_info, "demo": cmd_demo, "train": cmd_train}
    try:
        return handlers[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"dropnet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

"""Command line: ``dropnet demo | train | info`` (also ``python -m dropnet``)."""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from typing import List, NoReturn, Optional, Sequence

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
    return x[:max_samples], y[:max_samples]


def cmd_info(args) -> int:
    import dropnet

    feats = dropnet.cpu_features()
    print(f"dropnet {dropnet.__version__}")
    print(f"python {sys.version.split()[0]}")
    print(f"ISA: active {feats['active']}, available {', '.join(feats['available'])}")
    print(f"threads: {feats['threads']}")
    print(f"CUDA: built {'yes' if feats['cuda_built'] else 'no'}, devices {feats['cuda_devices']}")
    reason = dropnet.cuda.unavailable_reason()
    if reason is not None:
        print(f"CUDA unavailable: {reason}")
    for device in range(dropnet.cuda.device_count()):
        free, total = dropnet.cuda.mem_get_info(device)
        print(f"CUDA device {device}: memory free {free / 2**30:.2f} GiB of {total / 2**30:.2f} GiB")
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


class _StopOnInterrupt:
    """While training runs, the first Ctrl-C (SIGINT) asks ``fit`` to stop after the current step
    (a batch callback makes ``fit`` return to Python after every step); a second one interrupts at
    once. Records where training stopped."""

    def __init__(self) -> None:
        from . import callbacks

        outer = self

        class _Callback(callbacks.Callback):
            def on_train_begin(self, logs=None) -> None:
                outer.install(self.model)

            def on_epoch_begin(self, epoch: int, logs=None) -> None:
                outer.epoch = epoch

            def on_batch_end(self, batch: int, logs=None) -> None:
                outer.step = batch + 1

            def on_train_end(self, logs=None) -> None:
                outer.restore()

        self.callback = _Callback()
        self.interrupted = False
        self.epoch = 0
        self.step = 0
        self._previous = None

    def install(self, model) -> None:
        def handler(signum, frame):
            if self.interrupted:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.interrupted = True
            model.stop_training = True
            print("\ninterrupt: stopping after the current step (Ctrl-C again to abort at once)", file=sys.stderr)

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave Ctrl-C as it is
            self._previous = None

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _load_dataset(args):
    from . import datasets

    if args.dataset == "embedded" and args.data_dir is not None:
        print(f"dropnet train: warning: --data-dir {args.data_dir} is ignored with --dataset embedded (the subset "
              "ships inside dropnet)", file=sys.stderr)
    try:
        return datasets.load(args.dataset, path=args.data_dir, flatten=True)
    except FileNotFoundError as e:
        hint = "give --data-dir DIR or set DROPNET_DATA"
        if args.dataset == "fashion_mnist":
            hint += "; on Debian/Ubuntu the package dataset-fashion-mnist installs it"
        hint += "; --dataset embedded needs no files"
        raise FileNotFoundError(str(e).replace("(pass path=..., or set DROPNET_DATA)", f"({hint})")) from None


def _check_out_dir(out: Optional[str]) -> None:
    if out is None:
        return
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out: expected a directory (history.csv and model.npz go into it), but {out} is an "
                         "existing file")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out: cannot create directory {out} ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out: directory {out} is not writable")


def cmd_train(args) -> int:
    from . import callbacks, distributed, optim

    # Under mpiexec with several ranks, train data-parallel (docs/distributed.md); rank 0 speaks.
    parallel = distributed.launched_size() > 1
    main = distributed.is_main() if parallel else True
    say = print if main else (lambda *a, **k: None)

    _check_out_dir(args.out)
    (x_train, y_train), (x_test, y_test) = _load_dataset(args)
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
    checkpoint = None
    if args.out:
        checkpoint = callbacks.ModelCheckpoint(os.path.join(args.out, "model.npz"), monitor="val_loss")
        cbs += [callbacks.CSVLogger(os.path.join(args.out, "history.csv")), checkpoint]
    if args.step_every:
        cbs.append(callbacks.StepDecay(factor=args.step_factor, every=args.step_every))
    stop = _StopOnInterrupt()
    # Ranks would see Ctrl-C at different steps and part ways: distributed, it ends the job instead.
    if not parallel:
        cbs.append(stop.callback)
    if main:
        model.summary()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=(x_test, y_test), callbacks=cbs, verbose=args.verbose, distributed=parallel)
    if stop.interrupted:
        steps = history.params.get("steps", 0)
        where = (f"last checkpoint: {checkpoint.last_saved} (written when training stopped)"
                 if checkpoint is not None and checkpoint.last_saved else
                 "no checkpoint written (give --out DIR to save one each epoch)")
        print(f"dropnet train: interrupted in epoch {stop.epoch + 1}/{args.epochs} after step {stop.step}/{steps}; "
              f"{where}", file=sys.stderr)
        return 130
    result = model.evaluate(x_test, y_test, distributed=parallel)
    say(f"test loss {result['loss']:.4f}  test accuracy {result['accuracy']:.4f}  (seed {args.seed})"
        + (f"  ({distributed.size()} ranks)" if parallel else ""))
    if args.out:
        say(f"wrote {os.path.join(args.out, 'history.csv')} and {os.path.join(args.out, 'model.npz')}")
    return 0


def _checked(kind, lo=None, hi=None, lo_open=False, hi_open=False, what=""):
    """An argparse ``type=`` that parses ``kind`` and checks the range; argparse names the flag in
    the error ("argument --dropout: expected a float in [0, 1), got -0.1")."""
    lo_txt = "(" if lo_open else "["
    hi_txt = ")" if hi_open else "]"
    expect = what or (f"{'an int' if kind is int else 'a float'} in {lo_txt}{'-inf' if lo is None else lo}, "
                      f"{'inf' if hi is None else hi}{hi_txt}")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}")
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}")
        if hi is not None and (value >= hi if hi_open else value > hi):
            raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}")
        return value

    parse.__name__ = "int" if kind is int else "float"
    return parse


_RATE = _checked(float, 0.0, 1.0, hi_open=True)
_POSITIVE_INT = _checked(int, 1, what="an int >= 1")
_COUNT = _checked(int, 0, what="an int >= 0")
_SEED = _checked(int, 0, (1 << 63) - 1, what="an int in [0, 2**63)")
_LR = _checked(float, 0.0, lo_open=True, what="a float > 0")


class _HelpWithDefaults(argparse.HelpFormatter):
    """Appends "(default: X)" to every option's help, except when there is no default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and not any(action.default is v for v in (None, argparse.SUPPRESS, False)):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """User errors (a bad flag or value) as one line naming the flag, exit status 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    fmt = _HelpWithDefaults
    p = _Parser(prog="dropnet", description="dropnet: reproducible dropout training from the shell")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, CPU ISA paths, threads, CUDA", formatter_class=fmt)
    demo = sub.add_parser("demo", help="train an MLP with and without dropout on the embedded Fashion-MNIST subset",
                          formatter_class=fmt)
    demo.add_argument("--epochs", type=_POSITIVE_INT, default=30, help="training epochs of each run")
    demo.add_argument("--seed", type=_SEED, default=0, help="weights, dropout masks and data order")
    demo.add_argument("--max-samples", type=_POSITIVE_INT, default=None,
                      help="train on the first N images only (quick check)")
    tr = sub.add_parser("train", help="train an MLP preset on a dataset", formatter_class=fmt)
    tr.add_argument("--dataset", choices=["fashion_mnist", "mnist", "cifar10", "embedded"], default="fashion_mnist",
                    help="embedded: the Fashion-MNIST subset shipped with dropnet")
    tr.add_argument("--data-dir", default=None,
                    help="directory with the dataset files (default: $DROPNET_DATA, then /usr/share/datasets)")
    tr.add_argument("--preset", choices=sorted(PRESETS), default="lenet300", help="hidden layer sizes")
    tr.add_argument("--dropout", type=_RATE, default=0.5, help="dropout after each hidden layer")
    tr.add_argument("--input-dropout", type=_RATE, default=0.0, help="dropout on the input")
    tr.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam", help="optimizer")
    tr.add_argument("--lr", type=_LR, default=None, help="learning rate (default: 1e-3 for adam/adamw, 0.1 for sgd)")
    tr.add_argument("--momentum", type=_checked(float, 0.0, 1.0, hi_open=True), default=0.9,
                    help="SGD (Nesterov) momentum")
    tr.add_argument("--step-every", type=_COUNT, default=0,
                    help="multiply the lr by --step-factor every N epochs (0: never)")
    tr.add_argument("--step-factor", type=_checked(float, 0.0, 1.0, lo_open=True), default=0.5,
                    help="lr factor of each step")
    tr.add_argument("--epochs", type=_POSITIVE_INT, default=20, help="training epochs")
    tr.add_argument("--batch-size", type=_POSITIVE_INT, default=128, help="samples per training step")
    tr.add_argument("--seed", type=_SEED, default=0, help="weights, dropout masks and data order")
    tr.add_argument("--max-samples", type=_POSITIVE_INT, default=None, help="train on the first N samples only")
    tr.add_argument("--out", default=None, help="directory for history.csv and model.npz (created if missing)")
    tr.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="0 silent, 1 progress bar, 2 one line "
                    "per epoch")
    return p


def _fail(command: str, message: object, code: int = 2) -> int:
    """One line on stderr, no traceback: the exit status of a user error."""
    text = " ".join(str(message).split())
    print(f"dropnet {command}: error: {text}", file=sys.stderr)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad flag (2, already reported on one line)
        return int(e.code or 0)
    handlers = {"info": cmd_info, "demo": cmd_demo, "train": cmd_train}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return _fail(args.command, "interrupted", 130)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        return _fail(args.command, e)


if __name__ == "__main__":
    raise SystemExit(main())

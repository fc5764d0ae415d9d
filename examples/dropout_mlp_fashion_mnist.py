"""Dropout vs no dropout on a 3-hidden-layer MLP (Srivastava et al., 2014, section 6.1).

Trains the same MLP twice on Fashion-MNIST (or CIFAR-10 with --dataset cifar10 --data-dir DIR):
once plain, once with dropout p=0.5 on the hidden layers and p=0.2 on the input. SGD with Nesterov
momentum and a step decay of the learning rate. Prints the final accuracies and saves a plot of
train/test accuracy and loss for both runs (needs matplotlib: pip install 'dropnet[plot]';
without it the curves are written as CSV next to the plot path).

    python examples/dropout_mlp_fashion_mnist.py --epochs 30 --hidden 1024 --out dropout.png

Train accuracy and loss are measured on the whole training set with dropout off after each epoch
(``callbacks.EvaluateTrainSet``: ``train_accuracy``, ``train_loss``), the quantity the dropout
paper plots, so the two runs are compared on equal terms. Keras' ``accuracy`` -- the running
average over the epoch's training batches, with dropout on -- is drawn dotted for reference: for
the dropout run it sits below the clean training curve, and would put the training curve under
the test curve if it were read as the training accuracy.
"""
from __future__ import annotations

import argparse
import csv
import os

from dropnet import callbacks, datasets, layers, optim
from dropnet.models import Sequential


def build(n_in: int, n_classes: int, hidden: int, dropout: bool, seed: int) -> Sequential:
    stack = [layers.Input((n_in,))]
    if dropout:
        stack.append(layers.Dropout(0.2))
    for _ in range(3):
        stack.append(layers.Dense(hidden, activation="relu"))
        if dropout:
            stack.append(layers.Dropout(0.5))  # fused into the Dense above: one native pass
    stack.append(layers.Dense(n_classes, activation="softmax"))
    return Sequential(stack, seed=seed, name="dropout" if dropout else "plain")


def save_curves(histories: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        base = os.path.splitext(path)[0]
        for name, hist in histories.items():
            with open(f"{base}_{name}.csv", "w", newline="") as f:
                w = csv.writer(f)
                keys = list(hist.history)
                w.writerow(["epoch", *keys])
                for i, epoch in enumerate(hist.epoch):
                    w.writerow([epoch, *(hist.history[k][i] for k in keys)])
        print(f"matplotlib not installed: wrote {base}_<run>.csv instead of {path}")
        return
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for (name, hist), color in zip(histories.items(), ("tab:blue", "tab:red")):
        h = hist.history
        ax_acc.plot(hist.epoch, h["train_accuracy"], "--", color=color, label=f"{name} train (dropout off)")
        ax_acc.plot(hist.epoch, h["val_accuracy"], "-", color=color, label=f"{name} test")
        ax_acc.plot(hist.epoch, h["accuracy"], ":", color=color, alpha=0.6,
                    label=f"{name} running batch average" + (" (dropout on)" if name == "dropout" else ""))
        ax_loss.plot(hist.epoch, h["train_loss"], "--", color=color, label=f"{name} train (dropout off)")
        ax_loss.plot(hist.epoch, h["val_loss"], "-", color=color, label=f"{name} test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="crossentropy", title="loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["fashion_mnist", "cifar10", "embedded"], default="fashion_mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--decay-every", type=int, default=10, help="halve the learning rate every N epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="dropout_mlp.png")
    args = p.parse_args()

    (x_train, y_train), (x_test, y_test) = datasets.load(args.dataset, path=args.data_dir, flatten=True)
    print(f"{args.dataset}: {x_train.shape[0]} train, {x_test.shape[0]} test, {x_train.shape[1]} features; "
          f"seed {args.seed}")
    histories = {}
    for use_dropout in (False, True):
        model = build(x_train.shape[1], 10, args.hidden, use_dropout, args.seed)
        model.compile(optimizer=optim.SGD(lr=args.lr, momentum=args.momentum, nesterov=True),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        print(f"\n== {model.name}")
        model.summary()
        hist = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                         validation_data=(x_test, y_test), verbose=1,
                         callbacks=[callbacks.StepDecay(factor=0.5, every=args.decay_every),
                                    callbacks.EvaluateTrainSet(x_train, y_train)])
        histories[model.name] = hist
    print()
    for name, hist in histories.items():
        print(f"{name:<8} train accuracy {hist.history['train_accuracy'][-1]:.4f} (dropout off)  "
              f"test accuracy {hist.history['val_accuracy'][-1]:.4f}  "
              f"best test {max(hist.history['val_accuracy']):.4f}")
    save_curves(histories, args.out)


if __name__ == "__main__":
    main()

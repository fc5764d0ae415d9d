"""Pruning a small CNN on Fashion-MNIST two ways, and what each buys in accuracy and speed.

The network of the cnn_epoch benchmark (Conv2D 32 3×3, BN+ReLU, MaxPool, Conv2D 64 3×3, BN+ReLU,
MaxPool, Dense 128 + dropout 0.5, Dense 10; Adam 1e-3, batch 128) is trained, then
  - unstructured: ``prune.magnitude`` removes ``--amount`` of the weights of each layer but the
    first convolution (9 weights per filter) and the output layer, and the network is fine-tuned
    with its masks; pruned Conv2D and Dense layers run on sparse kernels where that measures
    faster (``sparse_info`` says which);
  - structured: ``prune.channels`` removes half of the convolution filters and hidden units by L1
    norm and returns a smaller dense network, fine-tuned the same way.
Prints test accuracy and seconds per epoch of each.

    python examples/prune_cnn_fashion_mnist.py --epochs 5 --finetune 2
    python examples/prune_cnn_fashion_mnist.py --epochs 1 --finetune 1 --subset 6000   # quick check
    python examples/prune_cnn_fashion_mnist.py --epochs 1 --finetune 1 --subset 256 --dataset embedded  # smallest

The first command, 2 threads (wall-clock on a shared machine, not a benchmark): dense
90.66 % at 15.0 s/epoch; magnitude-pruned to 10.3 % of the weights 91.35 % at 9.9 s/epoch;
channels 50 % (25.1 % of the weights) 90.59 % at 6.2 s/epoch.

Without the Fashion-MNIST files (``apt-get install dataset-fashion-mnist``) it uses the embedded
7000-image subset.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from dropnet import datasets, layers, optim, prune
from dropnet.models import Sequential


def small_cnn(seed: int) -> Sequential:
    model = Sequential([layers.Conv2D(32, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                        layers.Activation("relu"), layers.MaxPool2D(2),
                        layers.Conv2D(64, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                        layers.Activation("relu"), layers.MaxPool2D(2), layers.Flatten(),
                        layers.Dense(128, activation="relu"), layers.Dropout(0.5),
                        layers.Dense(10, activation="softmax")],
                       input_shape=(1, 28, 28), seed=seed, name="small_cnn")
    model.compile(optimizer=optim.Adam(lr=1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def fit_timed(model: Sequential, x, y, epochs: int) -> float:
    """Seconds per epoch of ``epochs`` epochs of training."""
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=128, verbose=0)
    return (time.perf_counter() - t0) / max(epochs, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5, help="epochs of the dense network")
    p.add_argument("--finetune", type=int, default=2, help="epochs after pruning")
    p.add_argument("--amount", type=float, default=0.9, help="fraction of weights magnitude pruning removes")
    p.add_argument("--subset", type=int, default=0, help="train on the first N images only (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", choices=["auto", "embedded"], default="auto",
                   help="auto: full Fashion-MNIST when installed, else the embedded subset")
    a = p.parse_args()
    if a.dataset == "embedded":
        (xt, yt), (xs, ys) = datasets.embedded()
    else:
        try:
            (xt, yt), (xs, ys) = datasets.fashion_mnist()
        except (FileNotFoundError, OSError):
            (xt, yt), (xs, ys) = datasets.embedded()
    xt, xs = xt.reshape(-1, 1, 28, 28), xs.reshape(-1, 1, 28, 28)
    if a.subset:
        xt, yt = xt[:a.subset], yt[:a.subset]

    dense = small_cnn(a.seed)
    dense_s = fit_timed(dense, xt, yt, a.epochs)
    dense_acc = dense.evaluate(xs, ys)["accuracy"]
    rows = [("dense", 1.0, dense_acc, fit_timed(small_cnn(a.seed), xt, yt, 1))]

    # Both start from the trained dense weights (channels masks the model it is given).
    twin = small_cnn(a.seed)
    twin.set_weights(dense.get_weights())
    twin.set_state(dense.get_state())
    structured = prune.channels(twin, 0.5)
    unstructured = dense
    prune.magnitude(unstructured, a.amount, exclude=["conv2d"], include_output=False)
    tune_s = fit_timed(unstructured, xt, yt, a.finetune)
    left = prune.sparsity(unstructured).remaining
    rows.append((f"magnitude {a.amount:.0%}, fine-tuned", left, unstructured.evaluate(xs, ys)["accuracy"],
                 tune_s))
    tune_c = fit_timed(structured, xt, yt, a.finetune)
    n_dense = sum(w.size for w in dense.get_weights())
    n_small = sum(w.size for w in structured.get_weights())
    rows.append(("channels 50 %, fine-tuned", n_small / n_dense, structured.evaluate(xs, ys)["accuracy"],
                 tune_c))

    print(f"dense network trained {a.epochs} epochs ({dense_s:.2f} s/epoch)\n")
    print("| network | weights left | test accuracy | s / epoch |")
    print("| --- | --- | --- | --- |")
    for name, frac, acc, sec in rows:
        print(f"| {name} | {frac:.1%} | {acc:.2%} | {sec:.2f} |")
    print("\nsparse execution of the magnitude-pruned network:")
    for info in unstructured.sparse_info():
        print(f"  {info['name']}: density {info['density']:.3f}, "
              f"{'sparse' if info['sparse'] else 'dense'}")
    print("\n" + str(prune.sparsity(unstructured)))
    assert np.isfinite(rows[-1][2])


if __name__ == "__main__":
    main()

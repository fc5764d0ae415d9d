"""Figure of the dropout page: train and test curves of LeNet-300-100 with and without dropout.

The run is the one ``dropnet demo`` makes (embedded 4500-image Fashion-MNIST subset, 30 epochs,
Adam 1e-3, batch 64, seed 0; dropout 0.5 after each hidden layer and 0.2 on the input), with the
1000 test images as validation data so that ``fit`` records test loss and accuracy per epoch. It
takes seconds, runs on one thread (the weights do not depend on the thread count) and gives the
same curves on every run, on any ISA path.

    python docs/figures/dropout_curves.py [out_dir]     # default: docs/_generated
"""
from __future__ import annotations

import sys
from pathlib import Path

OUTPUTS = ["dropout_curves.png", "dropout_curves_table.md"]
INPUTS = ["python/dropnet/data/fashion_mnist_small.npz", "python/dropnet/cli.py"]
EPOCHS, SEED, BATCH = 30, 0, 64
RUNS = (("no dropout", 0.0, 0.0), ("dropout 0.5 (input 0.2)", 0.5, 0.2))


def train_runs():
    """History and final train/test evaluation of both runs."""
    import dropnet
    from dropnet import callbacks, datasets, optim
    from dropnet.cli import PRESETS, build_mlp

    (x, y), (x_test, y_test) = datasets.embedded(flatten=True)
    threads = dropnet.get_num_threads()
    dropnet.set_num_threads(1)
    try:
        results = []
        for name, p_hidden, p_input in RUNS:
            model = build_mlp(784, 10, PRESETS["lenet300"], p_hidden, p_input, SEED)
            model.compile(optimizer=optim.Adam(lr=1e-3), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            # EvaluateTrainSet: the training set measured like the test set (dropout off) each epoch.
            history = model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, validation_data=(x_test, y_test), verbose=0,
                                callbacks=[callbacks.EvaluateTrainSet(x, y)])
            results.append((name, history.history, model.evaluate(x, y), model.evaluate(x_test, y_test)))
        return results
    finally:
        dropnet.set_num_threads(threads)


def main(out_dir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = train_runs()
    from dropnet import datasets
    n_train = len(datasets.embedded()[0][1])
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for k, (name, h, _, _) in enumerate(results):
        epochs = range(1, len(h["loss"]) + 1)
        colour = f"C{k}"
        ax_acc.plot(epochs, h["train_accuracy"], "--", color=colour, label=f"{name}: train (dropout off)")
        ax_acc.plot(epochs, h["val_accuracy"], "-", color=colour, label=f"{name}: test")
        ax_acc.plot(epochs, h["accuracy"], ":", color=colour, alpha=0.6, label=f"{name}: running batch average")
        ax_loss.plot(epochs, h["train_loss"], "--", color=colour, label=f"{name}: train (dropout off)")
        ax_loss.plot(epochs, h["val_loss"], "-", color=colour, label=f"{name}: test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    fig.suptitle(f"LeNet-300-100 on {n_train} Fashion-MNIST images, seed {SEED} (dashed: training set evaluated "
                 "with dropout off; dotted: Keras' running average over the batches, dropout on)", fontsize=8)
    fig.savefig(out / OUTPUTS[0], dpi=100, metadata={"Software": None})
    plt.close(fig)

    lines = ["| run | train accuracy | test accuracy | gap | test loss at epoch 1 / best / last |",
             "| --- | --- | --- | --- | --- |"]
    for name, h, train, test in results:
        vl = h["val_loss"]
        lines.append(f"| {name} | {train['accuracy']:.4f} | {test['accuracy']:.4f} | "
                     f"{train['accuracy'] - test['accuracy']:+.4f} | {vl[0]:.3f} / {min(vl):.3f} "
                     f"(epoch {vl.index(min(vl)) + 1}) / {vl[-1]:.3f} |")
    (out / OUTPUTS[1]).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "_generated")

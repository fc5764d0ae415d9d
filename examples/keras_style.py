"""The Keras workflow in dropnet: build, compile, fit with callbacks, evaluate, save, load.

    python examples/keras_style.py                 # 10 epochs, seconds
    python examples/keras_style.py --epochs 1      # quick check
"""
import argparse

import numpy as np

from dropnet import callbacks, datasets, layers, optim
from dropnet.models import Sequential, load_model  # also dropnet.Sequential / dropnet.load_model

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--epochs", type=int, default=10, help="training epochs (EarlyStopping may stop sooner)")
parser.add_argument("--out", default="keras_style.npz", help="where the model is saved")
args = parser.parse_args()

(x_train, y_train), (x_test, y_test) = datasets.embedded()  # 4500/1000 Fashion-MNIST images

model = Sequential([
    layers.Input((28, 28)),
    layers.Flatten(),
    layers.Dense(300, activation="relu"),
    layers.Dropout(0.5),
    layers.Dense(100, activation="relu"),
    layers.Dropout(0.5),
    layers.Dense(10, activation="softmax"),
], seed=42)
model.compile(optimizer=optim.Adam(lr=1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()

history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, validation_split=0.1,
                    callbacks=[callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
print(model.evaluate(x_test, y_test))

model.save(args.out)
restored = load_model(args.out)
assert np.array_equal(restored.predict(x_test), model.predict(x_test))

mean, std = model.predict(x_test[:5], mc_samples=50, seed=0)  # Monte Carlo dropout
print("MC dropout class probabilities:\n", mean.round(3), "\nspread:\n", std.round(3))

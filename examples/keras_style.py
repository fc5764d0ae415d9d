"""The Keras workflow in dropnet: build, compile, fit with callbacks, evaluate, save, load."""
import numpy as np

from dropnet import callbacks, datasets, layers, optim
from dropnet.models import Sequential, load_model  # also dropnet.Sequential / dropnet.load_model

(x_train, y_train), (x_test, y_test) = datasets.embedded()  # 6000/1000 Fashion-MNIST images

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

history = model.fit(x_train, y_train, epochs=10, batch_size=64, validation_split=0.1,
                    callbacks=[callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
print(model.evaluate(x_test, y_test))

model.save("keras_style.npz")
restored = load_model("keras_style.npz")
assert np.array_equal(restored.predict(x_test), model.predict(x_test))

mean, std = model.predict(x_test[:5], mc_samples=50, seed=0)  # Monte Carlo dropout
print("MC dropout class probabilities:\n", mean.round(3), "\nspread:\n", std.round(3))

"""Image augmentation (ops.augment_images and the RandomCrop / RandomFlip / RandomErasing layers)
against a numpy reference of the documented draw, bit for bit, for any number of threads."""
from __future__ import annotations

import numpy as np
import pytest

import dropnet
from dropnet import layers as L, ops
from dropnet.models import Sequential

from helpers import threads
from philox_ref import keep_threshold, stream_words


def reference(x, pad, flip, erase, erase_max, seed, stream):
    """numpy twin of kernels/cpu/augment.h: sample i uses words 8i .. 8i+7."""
    n, c, h, w = x.shape
    words = stream_words(8 * n, seed, stream).astype(np.uint64).reshape(n, 8)
    draw = lambda u, m: int((int(u) * int(m)) >> 32)  # noqa: E731
    out = np.zeros_like(x)
    eh_max, ew_max = max(1, int(np.floor(h * erase_max))), max(1, int(np.floor(w * erase_max)))
    for i in range(n):
        u = words[i]
        dy = draw(u[0], 2 * pad + 1) - pad if pad else 0
        dx = draw(u[1], 2 * pad + 1) - pad if pad else 0
        flipped = flip and int(u[2]) < 2 ** 31
        padded = np.zeros((c, h + 2 * pad + 2 * h, w + 2 * pad + 2 * w), x.dtype)
        oy, ox = h + pad, w + pad  # where the image sits in the big zero canvas
        padded[:, oy:oy + h, ox:ox + w] = x[i]
        cols = (np.arange(w)[::-1] if flipped else np.arange(w)) + dx
        out[i] = padded[:, oy + dy:oy + dy + h][:, :, ox + cols]
        if erase > 0 and int(u[3]) < keep_threshold(1 - erase):
            eh, ew = 1 + draw(u[4], eh_max), 1 + draw(u[5], ew_max)
            top, left = draw(u[6], h - eh + 1), draw(u[7], w - ew + 1)
            out[i, :, top:top + eh, left:left + ew] = 0
    return out


X = np.random.default_rng(0).standard_normal((37, 3, 9, 7)).astype(np.float32)


@pytest.mark.parametrize("pad,flip,erase", [(0, True, 0.0), (2, False, 0.0), (3, True, 0.0), (0, False, 0.7),
                                            (4, True, 0.5)])
def test_augment_matches_reference_for_any_thread_count(pad, flip, erase):
    want = reference(X, pad, flip, erase, 0.6, seed=11, stream=5)
    for n in (1, 2, 3):
        with threads(n):
            got = ops.augment_images(X, padding=pad, flip=flip, erase=erase, erase_max_size=0.6, seed=11, stream=5)
        np.testing.assert_array_equal(got, want)
    # Something happened, and a different stream draws differently.
    assert not np.array_equal(want, X)
    other = ops.augment_images(X, padding=pad, flip=flip, erase=erase, erase_max_size=0.6, seed=11, stream=6)
    assert not np.array_equal(other, want)


def test_named_ops_are_the_single_transforms():
    np.testing.assert_array_equal(ops.random_flip(X, seed=1, stream=2), reference(X, 0, True, 0.0, 0.5, 1, 2))
    np.testing.assert_array_equal(ops.random_crop(X, 2, seed=1, stream=2), reference(X, 2, False, 0.0, 0.5, 1, 2))
    np.testing.assert_array_equal(ops.random_erasing(X, 0.5, 0.3, seed=1, stream=2),
                                  reference(X, 0, False, 0.5, 0.3, 1, 2))
    flips = sum(not np.array_equal(a, b) for a, b in zip(ops.random_flip(X, seed=3, stream=0), X))
    assert 8 < flips < 30  # about half of 37


@pytest.mark.parametrize("kwargs,msg", [({"padding": -1}, "padding"), ({"erase": 1.5}, "erase"),
                                        ({"erase": 0.5, "erase_max_size": 0.0}, "erase_max_size")])
def test_augment_argument_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        ops.augment_images(X, seed=0, stream=0, **kwargs)
    with pytest.raises(ValueError, match="x: expected float32 images"):
        ops.augment_images(X[0], seed=0, stream=0)


def augmented_cnn(seed=0):
    return Sequential([L.RandomCrop(2), L.RandomFlip(), L.RandomErasing(0.5, 0.4), L.Conv2D(4, 3, activation="relu"),
                       L.Flatten(), L.Dense(3, activation="softmax")], input_shape=(3, 9, 7), seed=seed)


def test_augmentation_layers_train_only_reproducibly_and_thread_independent():
    m = augmented_cnn()
    plain = Sequential([L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(3, activation="softmax")],
                       input_shape=(3, 9, 7), seed=0)
    for mm in (m, plain):
        mm.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    np.testing.assert_array_equal(m.predict(X), plain.predict(X))  # identity at inference
    y = np.arange(37) % 3
    results = []
    for n in (1, 2):
        with threads(n):
            a = augmented_cnn()
            a.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            a.fit(X, y, epochs=2, batch_size=8, verbose=0)
            results.append(a.get_weights())
    for wa, wb in zip(*results):
        np.testing.assert_array_equal(wa, wb)
    plain.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert not np.array_equal(plain.get_weights()[0], results[0][0])  # augmentation changed what was trained on
    assert [l.name for l in m.layers[:3]] == ["random_crop", "random_flip", "random_erasing"]


def test_augmentation_must_come_before_layers_with_parameters():
    m = Sequential([L.Conv2D(3, 3, padding="same"), L.RandomFlip(), L.Flatten(), L.Dense(2)],
                   input_shape=(1, 5, 5), seed=0)
    with pytest.raises(ValueError, match="augmentation layers must come before"):
        m.compile(loss="mse")


def test_augmentation_keys_samples_by_global_row_for_data_parallel_steps():
    """Two halves of a batch with their row offsets augment each image as the whole batch does, so
    their gradients add up to the whole batch's (the data-parallel contract)."""
    y = np.arange(32) % 3
    x = X[:32]

    def model():
        m = augmented_cnn(seed=5)
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return m

    whole, parts = model(), model()
    whole.compute_gradients(x, y)
    want = whole.network.get_grads()
    parts.compute_gradients(x[:16], y[:16], row_offset=0, grad_rows=32)
    first = parts.network.get_grads()
    parts.compute_gradients(x[16:], y[16:], row_offset=16, grad_rows=32)
    second = parts.network.get_grads()
    for w, a, b in zip(want, first, second):
        np.testing.assert_allclose(a + b, w, rtol=1e-4, atol=1e-6)
    # Without the offset the second half would draw the first half's augmentations.
    parts.compute_gradients(x[16:], y[16:], row_offset=0, grad_rows=32)
    wrong = parts.network.get_grads()
    assert not np.allclose(first[0] + wrong[0], want[0], rtol=1e-4, atol=1e-6)

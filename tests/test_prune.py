"""dropnet.prune: masks, magnitude / random / channel pruning, rewinding, save/load, errors.

References are numpy code written here: the magnitude masks are recomputed with ``np.lexsort``
over (|w|, flat index) among the unpruned weights, the count ``floor(amount * remaining + 0.5)``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dropnet
from dropnet import layers, optim, prune
from dropnet.models import Sequential


def mlp(seed: int = 0, sizes=(24, 16), n_in: int = 12, n_out: int = 5, dropout: float = 0.0,
        activation: str = "relu", optimizer="adam") -> Sequential:
    stack = []
    for units in sizes:
        stack.append(layers.Dense(units, activation=activation))
        if dropout:
            stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(n_out, activation="softmax"))
    m = Sequential(stack, input_shape=(n_in,), seed=seed)
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def data(n: int = 96, n_in: int = 12, n_out: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)).astype(np.float32)
    y = (np.abs(x[:, :n_out]).argmax(axis=1)).astype(np.int64)
    return x, y


def kernels(model: Sequential):
    return [w for w in model.get_weights() if w.ndim == 2]


def with_ties(model: Sequential) -> None:
    """Round the weights to a coarse grid so many |w| tie (the tie rule then matters)."""
    model.set_weights([np.round(w * 8) / 8 for w in model.get_weights()])


def n_prune(amount: float, remaining: int) -> int:
    return int(math.floor(amount * remaining + 0.5))


def ref_prune(scores: np.ndarray, alive: np.ndarray, amount: float) -> np.ndarray:
    """Flat indices pruned: the k lowest scores among alive, ties by flat index (lexsort)."""
    idx = np.flatnonzero(alive)
    order = idx[np.lexsort((idx, scores[idx]))]
    return order[:n_prune(amount, len(idx))]


def ref_layer_masks(ws, masks, amount):
    out = []
    for w, m in zip(ws, masks):
        new = m.ravel().copy()
        new[ref_prune(np.abs(w.astype(np.float64)).ravel(), new > 0, amount)] = 0
        out.append(new.reshape(m.shape))
    return out


def ref_global_masks(ws, masks, amount):
    scores = np.concatenate([np.abs(w.astype(np.float64)).ravel() for w in ws])
    flat = np.concatenate([m.ravel() for m in masks]).copy()
    flat[ref_prune(scores, flat > 0, amount)] = 0
    return np.split(flat, np.cumsum([w.size for w in ws])[:-1])


# ------------------------------------------------------------------------------------------ layers
def test_prunable_layers_skip_dropout_and_map_params():
    m = mlp(dropout=0.3)
    pl = prune.prunable_layers(m)
    assert [p.name for p in pl] == ["dense", "dense_1", "dense_2"]
    assert [p.position for p in pl] == [0, 2, 4]
    assert [p.param for p in pl] == [0, 2, 4] and [p.bias_param for p in pl] == [1, 3, 5]
    assert [p.shape for p in pl] == [w.shape for w in kernels(m)]


def test_prunable_layers_without_bias():
    m = Sequential([layers.Dense(6, use_bias=False), layers.Dense(3, activation="softmax")], input_shape=(4,), seed=0)
    m.compile()
    pl = prune.prunable_layers(m)
    assert [(p.param, p.bias_param) for p in pl] == [(0, None), (1, 2)]


# ------------------------------------------------------------------------------------------ magnitude
@pytest.mark.parametrize("amount", [0.0, 0.2, 0.5, 0.93])
def test_magnitude_layer_matches_numpy(amount):
    m = mlp(seed=1)
    with_ties(m)
    ws = kernels(m)
    prune.magnitude(m, amount)
    want = ref_layer_masks(ws, [np.ones_like(w) for w in ws], amount)
    for got, ref in zip(prune.get_masks(m), want):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("amount", [0.3, 0.8])
def test_magnitude_global_matches_numpy(amount):
    m = mlp(seed=2)
    with_ties(m)
    ws = kernels(m)
    prune.magnitude(m, amount, scope="global")
    want = ref_global_masks(ws, [np.ones_like(w) for w in ws], amount)
    got = prune.get_masks(m)
    for g, ref in zip(got, want):
        np.testing.assert_array_equal(g.ravel(), ref)
    # Global ranking gives layers different sparsities here (their weight scales differ).
    assert len({round(r["sparsity"], 6) for r in prune.sparsity(m).rows}) > 1


def test_repeated_pruning_takes_a_fraction_of_the_remaining():
    m = mlp(seed=3)
    x, y = data()
    sizes = [w.size for w in kernels(m)]
    remaining = list(sizes)
    for _ in range(4):
        ws, before = kernels(m), prune.get_masks(m)
        prune.magnitude(m, 0.2)
        want = ref_layer_masks(ws, before, 0.2)
        remaining = [r - n_prune(0.2, r) for r in remaining]
        got = prune.get_masks(m)
        for g, ref, r in zip(got, want, remaining):
            np.testing.assert_array_equal(g, ref)
            assert int(g.sum()) == r
        assert np.all(before[0] >= got[0])  # pruned stays pruned
        m.fit(x, y, epochs=1, batch_size=32, verbose=0)


def test_magnitude_ignores_biases_and_zeroes_pruned_weights():
    m = mlp(seed=4)
    before = m.get_weights()
    prune.magnitude(m, 0.5)
    after = m.get_weights()
    for w0, w1, mask in zip(before[0::2], after[0::2], prune.get_masks(m)):
        np.testing.assert_array_equal(w1, w0 * mask)
    for b0, b1 in zip(before[1::2], after[1::2]):
        np.testing.assert_array_equal(b0, b1)
    assert all(m.network.get_mask(i) is None for i in (1, 3, 5))


def test_amounts_exclude_and_include_output():
    m = mlp(seed=5)
    ws = kernels(m)
    prune.magnitude(m, 0.4, amounts={-1: 0.2}, exclude=["dense_1"])
    got = prune.get_masks(m)
    np.testing.assert_array_equal(got[0], ref_layer_masks(ws[:1], [np.ones_like(ws[0])], 0.4)[0])
    assert got[1].all()
    np.testing.assert_array_equal(got[2], ref_layer_masks(ws[2:], [np.ones_like(ws[2])], 0.2)[0])

    m = mlp(seed=5)
    prune.magnitude(m, 0.4, include_output=False)
    assert prune.get_masks(m)[2].all() and not prune.get_masks(m)[0].all()
    assert m.network.get_mask(4) is None  # a layer left whole stays dense (no all-ones mask)


def test_global_with_output_on_its_own():
    m = mlp(seed=6)
    ws = kernels(m)
    prune.magnitude(m, 0.5, scope="global", amounts={2: 0.25})
    got = prune.get_masks(m)
    ref = ref_global_masks(ws[:2], [np.ones_like(w) for w in ws[:2]], 0.5)
    for g, r in zip(got[:2], ref):
        np.testing.assert_array_equal(g.ravel(), r)
    np.testing.assert_array_equal(got[2], ref_layer_masks(ws[2:], [np.ones_like(ws[2])], 0.25)[0])


# ------------------------------------------------------------------------------------------ training keeps zeros
@pytest.mark.parametrize("opt", [
    optim.SGD(lr=0.05, momentum=0.9),
    optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    optim.Adam(lr=1e-2),
    optim.AdamW(lr=1e-2, weight_decay=0.1),
], ids=["sgd_momentum", "nesterov", "adam", "adamw"])
def test_pruned_weights_stay_zero_through_fit(opt):
    m = mlp(seed=7, optimizer=opt, dropout=0.2)
    x, y = data(n=128)
    prune.magnitude(m, 0.6)
    masks = prune.get_masks(m)
    m.fit(x, y, epochs=5, batch_size=16, verbose=0)  # 40 steps
    for w, mask in zip(kernels(m), masks):
        assert np.all(w[mask == 0] == 0)
        assert np.count_nonzero(w[mask == 1]) == int(mask.sum())  # the survivors did train (nonzero)
    state = m.network.get_optimizer_state()
    kernel_slots = [s for s in state["slots"] if s.ndim == 2]
    for s in kernel_slots:
        mask = next(mk for mk in masks if mk.shape == s.shape)
        assert np.all(s[mask == 0] == 0)


def test_compile_again_keeps_masks():
    m = mlp(seed=8)
    prune.magnitude(m, 0.5)
    masks = prune.get_masks(m)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    for a, b in zip(prune.get_masks(m), masks):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------ random
def test_random_layer_exact_counts_and_reproducible():
    a, b, c = mlp(seed=9), mlp(seed=9), mlp(seed=9)
    prune.random(a, 0.3, seed=11)
    prune.random(b, 0.3, seed=11)
    prune.random(c, 0.3, seed=12)
    for pl, ma, mb, mc in zip(prune.prunable_layers(a), prune.get_masks(a), prune.get_masks(b), prune.get_masks(c)):
        assert int(ma.sum()) == pl.size - n_prune(0.3, pl.size)
        np.testing.assert_array_equal(ma, mb)
        assert not np.array_equal(ma, mc)
    # The pruned set is the lowest Philox words of stream = layer index (the documented rule).
    pl = prune.prunable_layers(a)[1]
    bits = dropnet.random.uniform_bits(pl.size, 11, 1).astype(np.int64)
    cut = ref_prune(bits, np.ones(pl.size, bool), 0.3)
    want = np.ones(pl.size, np.float32)
    want[cut] = 0
    np.testing.assert_array_equal(prune.get_masks(a)[1].ravel(), want)
    # Again on top: 0.3 of the remaining.
    prune.random(a, 0.3, seed=13)
    for pl, ma in zip(prune.prunable_layers(a), prune.get_masks(a)):
        r = pl.size - n_prune(0.3, pl.size)
        assert int(ma.sum()) == r - n_prune(0.3, r)


def test_random_global_total_count():
    m = mlp(seed=10)
    total = sum(pl.size for pl in prune.prunable_layers(m))
    prune.random(m, 0.7, seed=1, scope="global")
    assert prune.sparsity(m).nnz == total - n_prune(0.7, total)


def test_random_masks_like_keeps_per_layer_counts():
    m = mlp(seed=11)
    prune.magnitude(m, 0.6, amounts={-1: 0.3})
    masks = prune.get_masks(m)
    rnd = prune.random_masks_like(m, masks, seed=5)
    assert [int(r.sum()) for r in rnd] == [int(k.sum()) for k in masks]
    assert not np.array_equal(rnd[0], masks[0])
    np.testing.assert_array_equal(rnd[0], prune.random_masks_like(m, masks, seed=5)[0])


# ------------------------------------------------------------------------------------------ sparsity
def test_sparsity_report():
    m = mlp(seed=12)
    prune.magnitude(m, 0.25)
    rep = prune.sparsity(m)
    sizes = [w.size for w in kernels(m)]
    nnz = [s - n_prune(0.25, s) for s in sizes]
    assert [r["nnz"] for r in rep.rows] == nnz and [r["total"] for r in rep.rows] == sizes
    assert rep.nnz == sum(nnz) and rep.total == sum(sizes)
    assert rep.sparsity == pytest.approx(1 - sum(nnz) / sum(sizes))
    text = str(rep)
    assert "dense_1" in text and "global" in text and str(sum(nnz)) in text


# ------------------------------------------------------------------------------------------ channels
def numpy_forward(weights, x, activations):
    h = x.astype(np.float64)
    for (w, b), act in zip(zip(weights[0::2], weights[1::2]), activations):
        h = h @ w.astype(np.float64).T + b
        h = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
             "softmax": lambda v: np.exp(v - v.max(1, keepdims=True)) / np.exp(v - v.max(1, keepdims=True)).sum(
                 1, keepdims=True)}[act](h)
    return h


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_channels_shrinks_and_predicts_like_the_masked_model(activation):
    m = mlp(seed=13, sizes=(20, 10), activation=activation, dropout=0.1)
    x, y = data(n=64)
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    w = m.get_weights()
    l1 = np.abs(w[0]).sum(axis=1)
    keep0 = np.sort(np.lexsort((np.arange(20), l1))[10:])  # amount 0.5 of 20 units
    small = prune.channels(m, 0.5)
    assert [w.shape for w in kernels(small)] == [(10, 12), (5, 10), (5, 5)]
    ws = small.get_weights()
    np.testing.assert_array_equal(ws[0], w[0][keep0])
    np.testing.assert_array_equal(ws[1], w[1][keep0])
    keep1 = np.sort(np.lexsort((np.arange(10), np.abs(w[2]).sum(axis=1)))[5:])  # scores before masking
    np.testing.assert_array_equal(ws[2], w[2][keep1][:, keep0])
    np.testing.assert_array_equal(ws[3], w[3][keep1])
    np.testing.assert_array_equal(ws[4], w[4][:, keep1])
    np.testing.assert_array_equal(ws[5], w[5])
    # The original is masked: it computes what the small model computes.
    np.testing.assert_allclose(small.predict(x), m.predict(x), rtol=1e-5, atol=1e-6)
    # And both agree with a float64 numpy forward of the small model's weights.
    ref = numpy_forward(ws, x, [activation, activation, "softmax"])
    np.testing.assert_allclose(small.predict(x), ref, rtol=1e-4, atol=1e-5)
    # The small model trains on.
    small.fit(x, y, epochs=1, batch_size=16, verbose=0)


def test_channels_keeps_existing_masks_and_one_unit():
    m = mlp(seed=14, sizes=(6,))
    prune.magnitude(m, 0.5)
    small = prune.channels(m, 0.99)
    assert kernels(small)[0].shape == (1, 12)
    x, _ = data(n=8)
    np.testing.assert_allclose(small.predict(x), m.predict(x), rtol=1e-5, atol=1e-6)
    w = kernels(small)[0]
    assert np.count_nonzero(w) == int(prune.get_masks(small)[0].sum())


# ------------------------------------------------------------------------------------------ rewind, io
def test_rewind_restores_initial_values_bit_for_bit():
    m = mlp(seed=15, dropout=0.2)
    init = m.get_weights()
    x, y = data()
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    prune.magnitude(m, 0.5)
    masks = prune.get_masks(m)
    fresh = mlp(seed=15, dropout=0.2)
    prune.rewind(fresh, init, masks)
    got = fresh.get_weights()
    for p, (g, i0) in enumerate(zip(got, init)):
        want = i0 * masks[p // 2] if g.ndim == 2 else i0
        assert g.tobytes() == want.astype(np.float32).tobytes()


def test_save_load_keeps_masks(tmp_path):
    m = mlp(seed=16)
    prune.magnitude(m, 0.7, scope="global")
    path = tmp_path / "pruned.dnet"
    m.save(str(path))
    back = dropnet.load_model(str(path))
    for a, b in zip(prune.get_masks(back), prune.get_masks(m)):
        np.testing.assert_array_equal(a, b)
    x, y = data()
    back.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for w, mask in zip(kernels(back), prune.get_masks(m)):
        assert np.all(w[mask == 0] == 0)


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("amount,exc", [(-0.1, ValueError), (1.0, ValueError), (float("nan"), ValueError),
                                         ("0.5", TypeError), (None, TypeError), (True, TypeError)])
def test_bad_amounts(amount, exc):
    m = mlp()
    for fn in (lambda: prune.magnitude(m, amount), lambda: prune.random(m, amount, seed=0),
               lambda: prune.channels(m, amount)):
        with pytest.raises(exc, match="amount"):
            fn()
    with pytest.raises(exc, match=r"amounts\[0\]"):
        prune.magnitude(m, 0.1, amounts={0: amount})
    assert all(mask.all() for mask in prune.get_masks(m))  # nothing half-done


def test_bad_layers_scope_and_unbuilt():
    m = mlp()
    with pytest.raises(ValueError, match="exclude.*dense_9"):
        prune.magnitude(m, 0.1, exclude=["dense_9"])
    with pytest.raises(ValueError, match="exclude.*index 3"):
        prune.magnitude(m, 0.1, exclude=[3])
    with pytest.raises(ValueError, match="amounts.*-4"):
        prune.magnitude(m, 0.1, amounts={-4: 0.1})
    with pytest.raises(TypeError, match="exclude"):
        prune.magnitude(m, 0.1, exclude=1.5)
    with pytest.raises(ValueError, match="scope"):
        prune.magnitude(m, 0.1, scope="net")
    with pytest.raises(ValueError, match="criterion"):
        prune.channels(m, 0.1, criterion="l3")
    with pytest.raises(TypeError, match="seed"):
        prune.random(m, 0.1, seed=1.0)
    with pytest.raises(ValueError, match=r"masks\[0\]: expected shape"):
        prune.set_masks(m, [np.ones((2, 2))] * 3)
    with pytest.raises(ValueError, match="only 0 and 1"):
        prune.set_masks(m, [np.full(w.shape, 0.5) for w in kernels(m)])
    unbuilt = Sequential([layers.Dense(3, activation="softmax")])
    unbuilt.compile()
    with pytest.raises(ValueError, match="model: not built"):
        prune.magnitude(unbuilt, 0.1)
    with pytest.raises(TypeError, match="model"):
        prune.sparsity("model")


def test_masks_do_not_depend_on_threads():
    x, y = data(n=128)
    masks = []
    old = dropnet.get_num_threads()
    try:
        for threads in (1, 2):
            dropnet.set_num_threads(threads)
            m = mlp(seed=17, dropout=0.3)
            # "auto" picks sparse or dense from timings, which may differ between the runs: a fixed
            # path makes the bits comparable.
            m.set_sparse_execution("on")
            prune.magnitude(m, 0.3, scope="global")
            m.fit(x, y, epochs=2, batch_size=16, verbose=0)
            prune.magnitude(m, 0.3, amounts={-1: 0.1})
            masks.append((prune.get_masks(m), m.get_weights()))
    finally:
        dropnet.set_num_threads(old)
    for a, b in zip(masks[0][0], masks[1][0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(masks[0][1], masks[1][1]):
        assert a.tobytes() == b.tobytes()


def cnn(seed: int = 0) -> Sequential:
    m = Sequential([layers.Conv2D(4, 3, padding="same", activation="relu"), layers.MaxPool2D(2),
                    layers.Conv2D(6, 3, padding="same", use_bias=False), layers.Flatten(),
                    layers.Dense(5, activation="softmax")], input_shape=(2, 6, 6), seed=seed)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_conv_kernels_are_prunable_like_dense(scope):
    m = cnn(seed=4)
    with_ties(m)
    pls = prune.prunable_layers(m)
    assert [(pl.name, pl.shape, pl.bias_param) for pl in pls] == [("conv2d", (4, 2, 3, 3), 1),
                                                                   ("conv2d_1", (6, 4, 3, 3), None),
                                                                   ("dense", (5, 54), 4)]
    ws = [m.get_weights()[pl.param] for pl in pls]
    prune.magnitude(m, 0.5, scope=scope)
    ones = [np.ones_like(w) for w in ws]
    if scope == "layer":
        want = ref_layer_masks(ws, ones, 0.5)
    else:
        flat = ref_global_masks(ws, ones, 0.5)
        want = [f.reshape(w.shape) for f, w in zip(flat, ws)]
    for got, ref in zip(prune.get_masks(m), want):
        np.testing.assert_array_equal(got, ref)
    assert [r["name"] for r in prune.sparsity(m).rows] == ["conv2d", "conv2d_1", "dense"]
    x = np.random.default_rng(0).standard_normal((8, 2, 6, 6)).astype(np.float32)
    m.fit(x, np.arange(8) % 5, epochs=2, batch_size=4, verbose=0)
    for got, w in zip(prune.get_masks(m), (m.get_weights()[pl.param] for pl in pls)):
        assert np.all(w[got == 0] == 0)
    before = [r["nnz"] for r in prune.sparsity(m).rows]
    prune.random(m, 0.5, seed=3, amounts={"conv2d_1": 0.9})
    after = [r["nnz"] for r in prune.sparsity(m).rows]
    fracs = [0.5, 0.9, 0.5]  # of the remaining weights, floor(amount * n + 0.5) of them
    assert after == [n - int(np.floor(f * n + 0.5)) for n, f in zip(before, fracs)]


def bn_cnn(head: str, seed: int = 0) -> Sequential:
    pool = [layers.Flatten()] if head == "flatten" else [layers.GlobalAveragePooling2D()]
    m = Sequential([layers.Conv2D(6, 3, padding="same"), layers.BatchNormalization(), layers.Activation("relu"),
                    layers.MaxPool2D(2), layers.Conv2D(8, 3, padding="same", activation="relu"),
                    layers.SpatialDropout2D(0.2), *pool, layers.Dense(7, activation="tanh"), layers.Dropout(0.3),
                    layers.Dense(4, activation="softmax")], input_shape=(3, 8, 8), seed=seed)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.mark.parametrize("head", ["flatten", "global_pool"])
@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_channels_removes_conv_filters_and_predicts_like_the_masked_model(head, criterion):
    m = bn_cnn(head, seed=5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 3, 8, 8)).astype(np.float32)
    m.set_state([rng.uniform(-1, 1, 6).astype(np.float32), rng.uniform(0.5, 2, 6).astype(np.float32)])
    w = m.get_weights()
    w[2] = rng.uniform(0.5, 1.5, 6).astype(np.float32)  # BN gamma
    w[3] = rng.uniform(-0.5, 0.5, 6).astype(np.float32)  # BN beta: a removed channel must not leak it
    m.set_weights(w)
    # get_weights: conv0 W, b; BN gamma, beta; conv1 W, b; dense W, b; dense W, b.
    assert [(pl.param, pl.bias_param) for pl in prune.prunable_layers(m)] == [(0, 1), (4, 5), (6, 7), (8, 9)]
    kernels_before = [m.get_weights()[pl.param].copy() for pl in prune.prunable_layers(m)]
    small = prune.channels(m, 0.5, criterion=criterion)
    # Filters ranked by the norm of each filter; the output layer keeps its units.
    norm = (lambda a: np.abs(a).sum(axis=1)) if criterion == "l1" else (lambda a: np.sqrt(np.square(a).sum(axis=1)))
    kept = [np.sort(np.argsort(norm(k.reshape(len(k), -1).astype(np.float64)), kind="stable")[len(k) // 2:])
            for k in kernels_before[:-1]]
    assert [pl.shape[0] for pl in prune.prunable_layers(small)] == [3, 4, 3, 4]  # floor(0.5·n + 0.5) go
    np.testing.assert_array_equal(small.get_weights()[0], kernels_before[0][kept[0]])
    np.testing.assert_array_equal(small.get_state()[0], m.get_state()[0][kept[0]])
    np.testing.assert_allclose(small.predict(x), m.predict(x), rtol=1e-5, atol=1e-6)
    small.fit(x, np.arange(10) % 4, epochs=1, batch_size=5, verbose=0)


def test_channels_refuses_a_softmax_between_units():
    m = Sequential([layers.Dense(6, activation="relu"), layers.Activation("softmax"), layers.Dense(3)],
                   input_shape=(4,), seed=0)
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="dense.*Activation.*mixes them"):
        prune.channels(m, 0.5)
    assert all(mask.all() for mask in prune.get_masks(m))  # nothing half-done

"""Training a pruned LeNet-300-100 (784-300-100-10, ReLU, dropout 0.5 after each hidden layer,
softmax cross-entropy, Adam lr 1e-3) at batch 128, at 0/50/80/90/95/98 % sparsity: dropnet with
sparse execution (compressed weights in forward, backward and the optimizer), dropnet with the
dense masked path, dropnet 'auto' (its measured choice per layer) and PyTorch dense with the mask
re-applied after every step (what torch.nn.utils.prune amounts to), interleaved, same thread count.
Then inference (forward, batch 1024) of the same networks beside torch's eval forward.

Masks are random (the pattern a magnitude mask of a freshly initialised network has); the output
layer is pruned at half the rate of the hidden ones, as in the lottery-ticket papers. One epoch of
Fashion-MNIST at batch 128 is 469 steps: seconds per epoch = 469 × the per-step time in the table.

Before timing: the sparse and dense-masked dropnet networks take one step and must agree (weights
rtol 1e-4), and dropnet's and torch's forward passes from the same weights must agree.
Run with OMP_WAIT_POLICY=PASSIVE on a shared machine (see train_step.py).
"""
from __future__ import annotations

import numpy as np

from dropnet import _core

from ._pruned_step import auto_choices, check_sparse_step, step_sides
from ._torch_peer import masked_step

BATCH = 128
SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98)
LR, DROPOUT = 1e-3, 0.5
STEPS_PER_EPOCH = 469
INFER_BATCH = 1024


def make_net(masks, mode: str, seed: int = 0):
    layers = [
        {"type": "dense", "units": 300, "activation": "relu", "dropout": DROPOUT},
        {"type": "dense", "units": 100, "activation": "relu", "dropout": DROPOUT},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    net = _core.nn.Network(layers, (784,), "sparse_categorical_crossentropy", seed)
    net.set_optimizer({"type": "adam", "lr": LR})
    for i, m in zip((0, 2, 4), masks):
        net.set_mask(i, m)
        net.set_sparse_mode(i, mode)
    return net


def make_masks(sparsity: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    shapes = [(300, 784), (100, 300), (10, 100)]
    rates = [sparsity, sparsity, sparsity / 2]
    return [(rng.random(s) >= r).astype(np.float32) for s, r in zip(shapes, rates)]


def run(ctx) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int64)
    try:
        import torch
    except ImportError:
        torch = None

    for t in ctx.threads:
        for sparsity in SPARSITIES:
            ctx.set_threads(t)
            masks = make_masks(sparsity)
            nets, sides = step_sides(make_net, masks, x, y)

            def validate(masks=masks):
                check_sparse_step(make_net, masks, x, y, rtol=1e-4, atol_scale=1e-5, param_atol=0.05 * LR)

            peers = ["dropnet dense-masked"]
            if torch is not None:
                model = torch.nn.Sequential(
                    torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
                    torch.nn.Linear(300, 100), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
                    torch.nn.Linear(100, 10))
                params = nets["dense"].get_params()
                with torch.no_grad():
                    for layer, w, b in zip([model[0], model[3], model[6]], params[::2], params[1::2]):
                        layer.weight.copy_(torch.from_numpy(w))
                        layer.bias.copy_(torch.from_numpy(b))
                model.eval()
                with torch.no_grad():
                    want = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
                assert np.allclose(make_net(masks, "sparse").forward(x), want, rtol=1e-4, atol=1e-5), \
                    "dropnet and torch forward passes disagree"
                model.train()
                opt = torch.optim.Adam(model.parameters(), lr=LR, eps=1e-7)
                torch_step = masked_step(model, opt, x, y, [model[0].weight, model[3].weight, model[6].weight],
                                         masks)

                sides["torch dense (mask re-applied)"] = torch_step
                peers.append("torch dense (mask re-applied)")
            ctx.compare(f"pruned LeNet-300-100 step, {round(sparsity * 100)}% sparse, batch {BATCH}", sides,
                        threads=t, peers=peers, validate=validate,
                        note=f"Adam, dropout 0.5; epoch = {STEPS_PER_EPOCH} steps")
            print(f"# threads {t}, sparsity {sparsity:.2f}: auto chose " + auto_choices(nets["auto"]))
            # Inference: one forward pass over a larger batch, dropout off.
            xi = np.repeat(x, INFER_BATCH // BATCH, axis=0)
            isides = {f"dropnet {mode}": (lambda n=nets[mode]: n.forward(xi)) for mode in ("sparse", "auto", "dense")}
            ipeers = ["dropnet dense"]
            if torch is not None:
                xit = torch.from_numpy(xi)

                def torch_infer(model=model):
                    model.eval()
                    with torch.no_grad():
                        return torch.softmax(model(xit), dim=1)

                isides["torch dense"] = torch_infer
                ipeers.append("torch dense")
            ctx.compare(f"pruned LeNet-300-100 inference, {round(sparsity * 100)}% sparse, batch {INFER_BATCH}",
                        isides, threads=t, peers=ipeers, note="forward, dropout off")

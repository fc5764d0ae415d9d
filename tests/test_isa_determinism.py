"""Same seed, same data → the same weights bit for bit on every ISA path (docs/design.md,
"Canonical reduction orders"): each model trains in a fresh process per path
(``DROPNET_ISA=scalar|avx2|avx512``) and the final weights are compared bitwise with the scalar
path's, the portable one that an aarch64 build runs too. Paths this CPU lacks are not run: the
parametrisation only lists the paths it has (``dropnet.cpu_features()["available"]``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dropnet

SCRIPT = Path(__file__).with_name("isa_train_script.py")
AVAILABLE = dropnet.cpu_features()["available"]
MODELS = ["mlp", "mlp_smooth_activations", "cnn_bn", "pruned_sparse"]


def _train(model: str, isa: str, tmp_path: Path, threads: int = 2) -> dict:
    out = tmp_path / f"{model}_{isa}_{threads}.npz"
    env = dict(os.environ, DROPNET_ISA=isa, OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(Path(dropnet.__file__).parents[1]), env.get("PYTHONPATH")] if p)
    subprocess.run([sys.executable, str(SCRIPT), model, str(out)], env=env, check=True, timeout=300)
    with np.load(out) as f:
        arrays = {k: f[k] for k in f.files}
    assert str(arrays.pop("isa")) == isa, "the child process did not run the ISA path it was asked for"
    return arrays


@pytest.mark.skipif(len(AVAILABLE) < 2, reason="this CPU runs only the scalar path: nothing to compare")
@pytest.mark.parametrize("model", MODELS)
def test_weights_identical_on_every_isa_path(model, tmp_path):
    reference = _train(model, "scalar", tmp_path)
    for isa in AVAILABLE[1:]:
        got = _train(model, isa, tmp_path)
        assert got.keys() == reference.keys()
        for key in reference:
            a, b = reference[key], got[key]
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
            diff = np.flatnonzero(a.view(np.uint32) != b.view(np.uint32))
            assert diff.size == 0, (
                f"{model}: {key} differs between scalar and {isa} at {diff.size} of {a.size} elements "
                f"(max |diff| {np.max(np.abs(a.astype(np.float64) - b)):.3g})")


def test_training_moves_the_weights_and_depends_on_the_seed(tmp_path):
    """Guards the comparison above: two paths could only agree trivially if training did nothing."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("isa_train_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model, x, y = script.mlp()
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=24, verbose=0)
    after = model.get_weights()
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))

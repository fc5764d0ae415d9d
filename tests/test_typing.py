"""User code type-checks against dropnet's annotations: a flag that changes the return type
(return_mask, return_indices) selects the right overload, so ``ops.dropout(...).shape`` is fine."""
from __future__ import annotations

import os
import textwrap

import pytest

import dropnet

mypy_api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install 'dropnet[test]')")

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(dropnet.__file__)))

USER_CODE = textwrap.dedent("""
    import numpy as np
    from dropnet import ops

    x = np.ones((4, 8), np.float32)
    a: np.ndarray = ops.dropout(x, 0.5, seed=0, stream=0)
    print(a.shape, ops.dropout(x, 0.5, seed=0, stream=0).shape)
    y, bits = ops.dropout(x, 0.5, seed=0, stream=0, return_mask=True)
    print(y.shape, bits.shape)
    print(ops.spatial_dropout(x, 0.5, seed=0, stream=0).shape, ops.alpha_dropout(x, 0.5, seed=0, stream=0).shape)
    print(ops.drop_connect(x, 0.5, seed=0, stream=0).shape, ops.linear(x, x).shape)
    print(ops.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2).shape)
    m, idx = ops.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2, return_indices=True)
    print(m.shape, idx.shape)
""")

WRONG = textwrap.dedent("""
    import numpy as np
    from dropnet import ops

    x = np.ones((4, 8), np.float32)
    print(ops.dropout(x, 0.5, seed=0, stream=0, return_mask=True).shape)
""")


def test_return_flag_overloads_type_check(tmp_path):
    (tmp_path / "user_ok.py").write_text(USER_CODE)
    (tmp_path / "user_wrong.py").write_text(WRONG)
    env_before = os.environ.get("MYPYPATH")
    # A source checkout is found through MYPYPATH; an installed dropnet (site-packages, as in CI)
    # is found by mypy itself through its py.typed marker, and mypy refuses site-packages there.
    if os.path.basename(PYTHON_DIR) not in ("site-packages", "dist-packages"):
        os.environ["MYPYPATH"] = PYTHON_DIR
    try:  # one mypy run over both files (checking numpy's stubs dominates the time)
        out, err, status = mypy_api.run([str(tmp_path / "user_ok.py"), str(tmp_path / "user_wrong.py"),
                                         "--ignore-missing-imports", "--follow-imports=silent", "--no-incremental",
                                         "--cache-dir", str(tmp_path / ".mypy_cache")])
    finally:
        if env_before is None:
            os.environ.pop("MYPYPATH", None)
        else:
            os.environ["MYPYPATH"] = env_before
    errors = [ln for ln in out.splitlines() if ": error:" in ln]
    assert not [ln for ln in errors if "user_ok.py" in ln], out + err
    # The tuple that return_mask=True gives, used as an array, is caught.
    assert any("user_wrong.py" in ln and "tuple" in ln.lower() and "shape" in ln for ln in errors), out + err

"""Threads, ISA dispatch, version and the CUDA twin of the Philox stream."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dropnet
from philox_ref import stream_words as ref_stream


PYPROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "pyproject.toml")


def test_version_is_pyprojects():
    # From a wheel it comes from the generated dropnet/_version.py, from a checkout from the file.
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    with open(PYPROJECT, "rb") as f:
        assert dropnet.__version__ == tomllib.load(f)["project"]["version"]


def test_version_from_pyproject_reads_the_project_table(tmp_path):
    from dropnet._version_source import version_from_pyproject
    path = tmp_path / "pyproject.toml"
    path.write_text('[build-system]\nrequires = ["x"]\nversion = "9.9"\n\n[project]\nname = "a"\n'
                    "version = '1.2.3rc1'\n\n[tool.x]\nversion = \"0.0\"\n")
    assert version_from_pyproject(str(path)) == "1.2.3rc1"
    path.write_text('[project]\nname = "a"\n[tool.x]\nversion = "0.0"\n')
    with pytest.raises(RuntimeError, match="no \\[project\\] version"):
        version_from_pyproject(str(path))
    with pytest.raises(RuntimeError, match="no generated _version.py"):
        version_from_pyproject(str(tmp_path / "missing.toml"))


def test_threads_round_trip():
    dropnet.set_num_threads(1)
    assert dropnet.get_num_threads() == 1
    dropnet.set_num_threads(3)
    assert dropnet.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -2])
def test_threads_bad_value(bad):
    with pytest.raises(ValueError, match=f"n must be >= 1, got {bad}"):
        dropnet.set_num_threads(bad)


def test_threads_bad_type():
    with pytest.raises(TypeError, match="n must be an int"):
        dropnet.set_num_threads(2.0)


def test_cpu_features_shape():
    f = dropnet.cpu_features()
    assert f["available"][0] == "scalar"
    assert f["active"] in f["available"] and f["max"] == f["available"][-1]
    assert f["flags"]["avx2"] == ("avx2" in f["available"] or not f["flags"]["os_avx"] or not f["flags"]["fma"]
                                  or not f["flags"]["bmi2"] or f["flags"]["avx2"])


def test_isa_context_restores_and_rejects_unknown():
    before = dropnet.cpu_features()["active"]
    with dropnet.isa("scalar"):
        assert dropnet.cpu_features()["active"] == "scalar"
    assert dropnet.cpu_features()["active"] == before
    with pytest.raises(ValueError, match="expected one of 'scalar', 'avx2', 'avx512', got 'sse9'"):
        dropnet.set_isa("sse9")


def _run_child(env_isa: str) -> str:
    env = dict(os.environ, DROPNET_ISA=env_isa)
    code = "import dropnet; print(dropnet.cpu_features()['active'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_environment_variable_forces_a_lower_isa():
    assert _run_child("scalar") == "scalar"
    top = dropnet.cpu_features()["max"]
    # Asking for more than the CPU has gives what the CPU has.
    assert _run_child("avx512") == top


def test_environment_variable_bad_value_is_clear():
    env = dict(os.environ, DROPNET_ISA="fast")
    r = subprocess.run([sys.executable, "-c", "import dropnet"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "DROPNET_ISA" in r.stderr and "'fast'" in r.stderr


def test_forcing_above_the_cpu_is_refused():
    levels = ["scalar", "avx2", "avx512"]
    top = dropnet.cpu_features()["max"]
    if top == "avx512":
        pytest.skip("this CPU runs every ISA level, so none can be refused")
    with pytest.raises(ValueError, match="this CPU supports up to"):
        dropnet.set_isa(levels[levels.index(top) + 1])


@pytest.mark.gpu
def test_cuda_stream_matches_cpu_bit_for_bit():
    if not dropnet.cuda_available():
        pytest.skip("no CUDA device on this machine (built with CUDA: %s)" % dropnet.cpu_features()["cuda_built"])
    for n, start in [(1, 0), (4099, 3), (1 << 20, 2**33 + 1)]:
        gpu = dropnet.random.uniform_bits(n, 0xABCDEF0123456789, 5, start=start, device="cuda")
        cpu = dropnet.random.uniform_bits(n, 0xABCDEF0123456789, 5, start=start)
        np.testing.assert_array_equal(gpu, cpu)
    np.testing.assert_array_equal(dropnet.random.uniform_bits(100, 1, 2, device="cuda"), ref_stream(100, 1, 2))


def test_cuda_request_without_device_is_clear():
    if dropnet.cuda_available():
        pytest.skip("a CUDA device is present; the no-device error path cannot occur")
    reason = dropnet.cuda.unavailable_reason()
    with pytest.raises(RuntimeError, match="device: 'cuda' requested but ") as info:
        dropnet.random.uniform_bits(4, 0, 0, device="cuda")
    assert reason in str(info.value)
    with pytest.raises(RuntimeError, match="device: 'cuda' requested but ") as info:
        dropnet.cuda.mem_get_info(0)
    assert reason in str(info.value)


def test_cuda_queries_agree_and_name_what_is_missing():
    reason = dropnet.cuda.unavailable_reason()
    count = dropnet.cuda.device_count()
    assert dropnet.cuda.is_available() == dropnet.cuda_available() == (reason is None)
    assert dropnet.cpu_features()["cuda_devices"] == count
    if not dropnet.cpu_features()["cuda_built"]:
        assert count == 0 and "built without CUDA" in reason and "DROPNET_CUDA=OFF" in reason
    elif reason is not None:
        # Built with CUDA on a machine without a usable GPU: the runtime's verdict, named.
        assert count == 0
        assert reason.startswith(("no CUDA driver", "no CUDA device", "CUDA unusable")), reason
    else:
        assert count >= 1


@pytest.mark.parametrize("bad", [1.0, "0", True, None])
def test_cuda_mem_get_info_wants_an_int(bad):
    with pytest.raises(TypeError, match="device: expected an int device index"):
        dropnet.cuda.mem_get_info(bad)


def test_cuda_extension_imports_without_a_driver_in_a_fresh_process():
    # The CUDA runtime is linked statically and loads libcuda lazily: importing and asking must
    # work on a machine with no driver (this one, when it has no GPU).
    code = ("import dropnet; r = dropnet.cuda.unavailable_reason(); "
            "print(dropnet.cuda.device_count(), dropnet.cuda.is_available(), r is None or len(r) > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(dropnet.cuda.device_count()) and out[2] == "True"


@pytest.mark.gpu
def test_cuda_mem_get_info_on_a_gpu():
    if not dropnet.cuda.is_available():
        pytest.skip(f"no usable CUDA device: {dropnet.cuda.unavailable_reason()}")
    for device in range(dropnet.cuda.device_count()):
        free, total = dropnet.cuda.mem_get_info(device)
        assert 0 < free <= total
    with pytest.raises(RuntimeError, match="expected a CUDA device index in"):
        dropnet.cuda.mem_get_info(dropnet.cuda.device_count())

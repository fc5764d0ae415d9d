"""dropnet.ops on arrays from other libraries: DLPack and __cuda_array_interface__.

Without a GPU this checks what can be checked on a CPU: CPU DLPack tensors take the CPU path with
the same bits; the DLPack parser against capsules made by numpy and by a producer written here
with ctypes (an independent reading of the DLPack ABI); the exporter against numpy as consumer;
the order and wording of the errors for CUDA arrays (dtype, layout, read-only out, two devices,
then "no CUDA"). The tests marked gpu run the device path against the CPU bit for bit.
"""
from __future__ import annotations

import ctypes
import gc
import sys

import numpy as np
import pytest

import dropnet
from dropnet import _core, ops
from dropnet.cuda import DeviceArray, to_device

dev = _core.device
HAS_GPU = dropnet.cuda.is_available()


# ----------------------------------------------------------------- a DLPack producer in ctypes
class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32), ("dtype", DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    pass


class DLManagedTensorVersioned(ctypes.Structure):
    pass


LEGACY_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
VERSIONED_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", LEGACY_DELETER)]
DLManagedTensorVersioned._fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32),
                                     ("manager_ctx", ctypes.c_void_p), ("deleter", VERSIONED_DELETER),
                                     ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor)]

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
NAMES = {False: ctypes.c_char_p(b"dltensor"), True: ctypes.c_char_p(b"dltensor_versioned")}


class FakeDLPack:
    """A tensor that says it lives on ``device`` at a made-up address; nothing reads its memory."""

    def __init__(self, shape, *, dtype=(2, 32, 1), device=(2, 0), strides=None, versioned=False, read_only=False,
                 address=0x7F0000001000):
        self.shape, self.dtype, self.device, self.strides = tuple(shape), dtype, device, strides
        self.versioned, self.read_only, self.address = versioned, read_only, address
        self.deleted = 0
        self._keep = []

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None, max_version=None):
        ndim = len(self.shape)
        shape = (ctypes.c_int64 * max(ndim, 1))(*self.shape)
        strides = None if self.strides is None else (ctypes.c_int64 * ndim)(*self.strides)
        tensor = DLTensor(self.address, DLDevice(*self.device), ndim, DLDataType(*self.dtype),
                          ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64)),
                          None if strides is None else ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64)), 0)

        def deleter(_):
            self.deleted += 1

        if self.versioned:
            callback = VERSIONED_DELETER(deleter)
            managed = DLManagedTensorVersioned(1, 0, None, callback, 1 if self.read_only else 0, tensor)
        else:
            callback = LEGACY_DELETER(deleter)
            managed = DLManagedTensor(tensor, None, callback)
        self._keep += [shape, strides, callback, managed]
        return _capsule_new(ctypes.addressof(managed), NAMES[self.versioned].value, None)


class FakeInterface:
    """An object with a __cuda_array_interface__ (version 3) at a made-up address."""

    def __init__(self, shape, typestr="<f4", strides=None, read_only=False, mask=None, stream=None):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (0x7F0000002000, read_only),
                                         "version": 3, "strides": strides, "mask": mask, "stream": stream}


class HostDLPack:
    """Only the DLPack protocol of a numpy array: what a CPU tensor of another library looks like."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


# ----------------------------------------------------------------- CPU DLPack objects: the CPU path
def _dropout_calls():
    return [
        lambda x, **k: ops.dropout(x, 0.3, seed=11, stream=4, **k),
        lambda x, **k: ops.alpha_dropout(x, 0.2, seed=3, stream=9, **k),
        lambda x, **k: ops.spatial_dropout(x, 0.5, seed=5, stream=1, **k),
        lambda x, **k: ops.mc_dropout(x, 0.4, seed=2, stream0=7, samples=3, **k),
        lambda x, **k: ops.dropout_backward(x, 0.3, seed=11, stream=4, **k),
    ]


@pytest.mark.parametrize("call", range(5))
def test_cpu_dlpack_objects_give_the_numpy_bits(call):
    x = np.random.default_rng(call).standard_normal((4, 6, 5)).astype(np.float32)
    fn = _dropout_calls()[call]
    want = fn(x)
    got = fn(HostDLPack(x.copy()))
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_torch_cpu_tensors_take_the_cpu_path():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 70)).astype(np.float32)
    w = rng.standard_normal((5, 70)).astype(np.float32)
    y, bits = ops.dropout(torch.from_numpy(x), 0.5, seed=1, stream=2, return_mask=True)
    want, want_bits = ops.dropout(x, 0.5, seed=1, stream=2, return_mask=True)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(bits, want_bits)
    # The backward takes the mask back as a torch tensor too (uint64 through DLPack).
    torch_bits = torch.from_numpy(bits.view(np.int64)).view(torch.uint64)
    dx = ops.dropout_backward(torch.from_numpy(x), 0.5, mask_bits=torch_bits)
    np.testing.assert_array_equal(dx, ops.dropout_backward(x, 0.5, mask_bits=want_bits))
    np.testing.assert_allclose(ops.linear(torch.from_numpy(x), torch.from_numpy(w)), x @ w.T, rtol=1e-5, atol=1e-5)
    # An out= tensor is written in place (it shares memory with the numpy view).
    out = torch.zeros(8, 70)
    ops.dropout(torch.from_numpy(x), 0.5, seed=1, stream=2, out=out)
    np.testing.assert_array_equal(out.numpy(), want)


# ----------------------------------------------------------------- the DLPack parser and exporter
@pytest.mark.parametrize("versioned", [False, True])
def test_dlpack_import_reads_numpy_capsules(versioned):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, 1::2]
    t = dev.dlpack_import(a.__dlpack__(max_version=(1, 0)) if versioned else a.__dlpack__())
    assert t["ptr"] == a.ctypes.data
    assert t["shape"] == (4, 3) and t["strides"] == (6, 2)
    assert t["dtype"] == (2, 32, 1) and t["device"] == (1, 0) and t["read_only"] is False


def test_dlpack_import_consumes_a_capsule_once_and_releases_it():
    fake = FakeDLPack((3, 4), device=(1, 0))
    capsule = fake.__dlpack__()
    t = dev.dlpack_import(capsule)
    assert t["ptr"] == fake.address and t["shape"] == (3, 4) and t["strides"] is None
    with pytest.raises(ValueError, match="'used_dltensor'.*consumed once"):
        dev.dlpack_import(capsule)
    assert fake.deleted == 0
    del t
    gc.collect()
    assert fake.deleted == 1


def test_dlpack_import_reads_the_versioned_read_only_flag():
    t = dev.dlpack_import(FakeDLPack((2,), versioned=True, read_only=True).__dlpack__())
    assert t["read_only"] is True and t["device"] == (2, 0)


@pytest.mark.parametrize("versioned", [False, True])
def test_dlpack_export_is_taken_by_numpy_without_a_copy(versioned):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    before = sys.getrefcount(a)

    class Export:
        def __dlpack__(self, **kwargs):
            return dev.dlpack_export(a, a.ctypes.data, a.shape, 2, 32, 1, 0, versioned)

        def __dlpack_device__(self):
            return (1, 0)

    b = np.from_dlpack(Export())
    assert np.shares_memory(a, b) and b.shape == (3, 4)
    np.testing.assert_array_equal(a, b)
    assert sys.getrefcount(a) == before + 1  # the consumer holds the owner
    del b
    gc.collect()
    assert sys.getrefcount(a) == before
    unconsumed = Export().__dlpack__()
    assert sys.getrefcount(a) == before + 1
    del unconsumed
    assert sys.getrefcount(a) == before


# ----------------------------------------------------------------- CUDA arrays: checks and their order
def test_cuda_arrays_of_the_wrong_dtype_are_a_type_error():
    with pytest.raises(TypeError, match=r"^x: expected dtype float32, got float64$"):
        ops.dropout(FakeDLPack((4,), dtype=(2, 64, 1)), 0.5, seed=1, stream=1)
    with pytest.raises(TypeError, match=r"^x: expected dtype float32, got float16$"):
        ops.dropout(FakeInterface((4,), typestr="<f2"), 0.5, seed=1, stream=1)
    with pytest.raises(TypeError, match=r"^mask_bits: expected dtype uint64, got int32$"):
        ops.dropout_backward(FakeDLPack((4,)), 0.5, mask_bits=FakeDLPack((1,), dtype=(0, 32, 1)))


def test_cuda_arrays_that_are_not_c_contiguous_are_a_value_error():
    with pytest.raises(ValueError, match=r"x: expected a C-contiguous array, got strides \(1, 3\) \(elements\)"):
        ops.dropout(FakeDLPack((3, 4), strides=(1, 3)), 0.5, seed=1, stream=1)
    with pytest.raises(ValueError, match=r"x: expected a C-contiguous array, got strides \(4, 12\) \(bytes\)"):
        ops.dropout(FakeInterface((3, 4), strides=(4, 12)), 0.5, seed=1, stream=1)
    with pytest.raises(ValueError, match="without a mask"):
        ops.dropout(FakeInterface((3, 4), mask=object()), 0.5, seed=1, stream=1)


def test_explicit_c_contiguous_strides_and_size_one_dims_are_accepted_as_contiguous():
    # The parser alone (no device is touched): the operand comes back with its pointer and shape.
    from dropnet.ops._device import DeviceOperand, operand

    for x, address in ((FakeDLPack((3, 4), strides=(4, 1)), 0x7F0000001000),
                       (FakeDLPack((3, 1, 4), strides=(4, 99, 1)), 0x7F0000001000),
                       (FakeInterface((3, 4), strides=(16, 4)), 0x7F0000002000)):
        got = operand(x, "x")
        assert isinstance(got, DeviceOperand) and got.ptr == address and got.dtype == np.float32
        assert got.shape == tuple(x.shape if isinstance(x, FakeDLPack) else (3, 4))


def test_read_only_out_is_refused_before_the_device_is_touched():
    with pytest.raises(ValueError, match="^out: expected a writeable array, got a read-only one$"):
        ops.dropout(FakeDLPack((4,)), 0.5, seed=1, stream=1, out=FakeDLPack((4,), versioned=True, read_only=True))
    with pytest.raises(ValueError, match="^out: expected a writeable array, got a read-only one$"):
        ops.dropout(FakeDLPack((4,)), 0.5, seed=1, stream=1, out=FakeInterface((4,), read_only=True))


def test_arrays_on_two_devices_are_refused():
    with pytest.raises(ValueError, match=r"arrays on two different devices: x on cuda:0, out on cuda:1"):
        ops.dropout(FakeDLPack((4,)), 0.5, seed=1, stream=1, out=FakeDLPack((4,), device=(2, 1)))
    with pytest.raises(ValueError, match=r"arrays on two different devices: x on cuda:0, out on cpu"):
        ops.dropout(FakeDLPack((4,)), 0.5, seed=1, stream=1, out=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"grad on cpu, mask_bits on cuda"):
        ops.dropout_backward(np.zeros(4, np.float32), 0.5, mask_bits=FakeInterface((1,), typestr="<u8"))


def test_a_refused_dlpack_tensor_is_still_released():
    fake = FakeDLPack((4,), dtype=(2, 64, 1))
    with pytest.raises(TypeError):
        ops.dropout(fake, 0.5, seed=1, stream=1)
    gc.collect()
    assert fake.deleted == 1


def test_other_dlpack_devices_are_refused_by_name():
    with pytest.raises(ValueError, match="x: expected a CPU or CUDA array, got one on DLPack device type 8"):
        ops.dropout(FakeDLPack((4,), device=(8, 0)), 0.5, seed=1, stream=1)


@pytest.mark.parametrize("make", [lambda: FakeDLPack((2, 3)), lambda: FakeInterface((2, 3))])
def test_cpu_only_ops_name_themselves_for_cuda_arrays(make):
    with pytest.raises(TypeError, match=r"^b: dropnet.ops.matmul_skip_zeros runs on the CPU only, got a CUDA array"):
        ops.matmul_skip_zeros(np.ones((2, 3), np.float32), make())
    with pytest.raises(TypeError, match=r"^x: dropnet.ops.augment_images runs on the CPU only"):
        ops.augment_images(make(), flip=True)


def test_cuda_arrays_without_a_gpu_name_what_is_missing():
    if HAS_GPU:
        pytest.skip("a CUDA device is usable here, so the no-GPU error cannot be raised (the gpu tests cover this machine)")
    reason = dropnet.cuda.unavailable_reason()
    for x in (FakeDLPack((4,)), FakeInterface((4,))):
        with pytest.raises(RuntimeError, match="device: 'cuda:0' requested but") as info:
            ops.dropout(x, 0.5, seed=1, stream=1)
        assert reason in str(info.value)
    with pytest.raises(RuntimeError, match="requested but"):
        DeviceArray((4,))
    with pytest.raises(RuntimeError, match="requested but"):
        to_device(np.zeros(4, np.float32))


def test_device_array_checks_its_arguments():
    with pytest.raises(TypeError, match="dtype: expected float32, uint64 or int32, got float64"):
        DeviceArray((2,), np.float64)
    with pytest.raises(ValueError, match=r"shape: expected non-negative dimensions, got \(-1,\)"):
        DeviceArray((-1,))
    with pytest.raises(TypeError, match="array: expected dtype float32, uint64 or int32, got int64"):
        to_device(np.zeros(2, np.int64))


# ----------------------------------------------------------------- on a GPU: the same bits
gpu = pytest.mark.skipif(not HAS_GPU, reason=f"no usable CUDA device: {dropnet.cuda.unavailable_reason()}")


@pytest.mark.gpu
@gpu
def test_device_array_round_trip_and_interfaces():
    a = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    d = to_device(a)
    assert d.shape == (5, 7) and d.dtype == np.float32 and d.device == 0
    np.testing.assert_array_equal(d.numpy(), a)
    cai = d.__cuda_array_interface__
    assert cai["data"][0] == d.ptr and cai["shape"] == (5, 7) and cai["typestr"] == "<f4"
    assert d.__dlpack_device__() == (2, 0)
    t = dev.dlpack_import(d.__dlpack__(stream=1))
    assert t["ptr"] == d.ptr and t["device"] == (2, 0) and t["dtype"] == (2, 32, 1)


@pytest.mark.gpu
@gpu
def test_device_layer_ops_on_a_gpu_follow_the_cpu():
    # Tolerance on a GPU: ten times the simulated device's until measured there (docs/design.md,
    # "Devices: one network, two backends"); pooling, the dense product (cuda::sgemm gives
    # cpu::sgemm's bits) and the dropout masks must be exact.
    atol, rtol = 1e-5, 1e-4
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 16, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y = ops.conv2d(to_device(x), to_device(w), to_device(b), padding=1, activation="relu")
    want = ops.conv2d(x, w, b, padding=1, activation="relu")
    np.testing.assert_allclose(y.numpy(), want, atol=atol, rtol=rtol)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    for g, r in zip(ops.conv2d_backward(to_device(dy), to_device(x), to_device(w), padding=1),
                    ops.conv2d_backward(dy, x, w, padding=1)):
        np.testing.assert_allclose(g.numpy(), r, atol=10 * atol, rtol=rtol)
    y, idx = ops.max_pool2d(to_device(x), 2, return_indices=True)
    want, want_idx = ops.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), want)
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    np.testing.assert_array_equal(ops.max_pool2d_backward(y, idx, x.shape).numpy(),
                                  ops.max_pool2d_backward(want, want_idx, x.shape))
    np.testing.assert_allclose(ops.avg_pool2d(to_device(x), 3, 1, 1).numpy(), ops.avg_pool2d(x, 3, 1, 1), atol=atol,
                               rtol=rtol)
    np.testing.assert_allclose(ops.global_avg_pool2d(to_device(x)).numpy(), ops.global_avg_pool2d(x), atol=atol,
                               rtol=rtol)
    got = ops.batch_norm(to_device(x), None, None, None, None, training=True, relu=True)
    want = ops.batch_norm(x, None, None, None, None, training=True, relu=True)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g.numpy(), r, atol=atol, rtol=rtol)
    a = rng.standard_normal((128, 300)).astype(np.float32)
    wl = rng.standard_normal((100, 300)).astype(np.float32)
    np.testing.assert_array_equal(ops.matmul(to_device(a), to_device(wl), trans_b=True).numpy(),
                                  ops.matmul(a, wl, trans_b=True))
    y, bits = ops.linear(to_device(a), to_device(wl), activation="relu", dropout=0.5, seed=3, stream=8,
                         return_mask=True)
    want, want_bits = ops.linear(a, wl, activation="relu", dropout=0.5, seed=3, stream=8, return_mask=True)
    np.testing.assert_array_equal(bits.numpy(), want_bits)
    np.testing.assert_allclose(y.numpy(), want, atol=atol, rtol=rtol)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("n", [1, 63, 64, 65, 4099, 1 << 18])
def test_device_dropout_family_matches_the_cpu_bit_for_bit(n):
    x = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
    d = to_device(x)
    for p in (0.0, 0.1, 0.5, 0.9):
        y, bits = ops.dropout(d, p, seed=123, stream=n, return_mask=True)
        want, want_bits = ops.dropout(x, p, seed=123, stream=n, return_mask=True)
        np.testing.assert_array_equal(y.numpy().view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(bits.numpy(), want_bits)
        g = ops.dropout_backward(d, p, mask_bits=bits)
        np.testing.assert_array_equal(g.numpy(), ops.dropout_backward(x, p, mask_bits=want_bits))
        g = ops.dropout_backward(d, p, seed=123, stream=n)
        np.testing.assert_array_equal(g.numpy(), ops.dropout_backward(x, p, seed=123, stream=n))
        y = ops.alpha_dropout(d, p, seed=9, stream=1)
        np.testing.assert_array_equal(y.numpy(), ops.alpha_dropout(x, p, seed=9, stream=1))
        g = ops.alpha_dropout_backward(d, p, seed=9, stream=1)
        np.testing.assert_array_equal(g.numpy(), ops.alpha_dropout_backward(x, p, seed=9, stream=1))
        y, bits = ops.spatial_dropout(d, p, seed=4, stream=2, return_mask=True)
        want, want_bits = ops.spatial_dropout(x, p, seed=4, stream=2, return_mask=True)
        np.testing.assert_array_equal(y.numpy(), want)
        np.testing.assert_array_equal(bits.numpy(), want_bits)
        g = ops.spatial_dropout_backward(d, p, seed=4, stream=2)
        np.testing.assert_array_equal(g.numpy(), ops.spatial_dropout_backward(x, p, seed=4, stream=2))
    y = ops.mc_dropout(d, 0.3, seed=5, stream0=6, samples=3)
    np.testing.assert_array_equal(y.numpy(), ops.mc_dropout(x, 0.3, seed=5, stream0=6, samples=3))


@pytest.mark.gpu
@gpu
def test_torch_cuda_tensors_in_and_out():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("the installed PyTorch is a CPU build: it makes no CUDA tensors to pass in")
    x = np.random.default_rng(2).standard_normal((64, 33)).astype(np.float32)
    t = torch.from_numpy(x).cuda()
    want = ops.dropout(x, 0.5, seed=7, stream=3)
    y = ops.dropout(t, 0.5, seed=7, stream=3)
    assert isinstance(y, DeviceArray)
    np.testing.assert_array_equal(torch.from_dlpack(y).cpu().numpy(), want)
    np.testing.assert_array_equal(torch.as_tensor(y, device="cuda").cpu().numpy(), want)
    out = torch.empty_like(t)
    assert ops.dropout(t, 0.5, seed=7, stream=3, out=out) is out
    np.testing.assert_array_equal(out.cpu().numpy(), want)
    with pytest.raises(TypeError, match="x: expected dtype float32, got float64"):
        ops.dropout(t.double(), 0.5, seed=7, stream=3)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.dropout(t.t(), 0.5, seed=7, stream=3)
    with pytest.raises(ValueError, match="two different devices"):
        ops.dropout(t, 0.5, seed=7, stream=3, out=np.empty_like(x))


@pytest.mark.gpu
@gpu
def test_an_allocation_that_does_not_fit_says_what_was_asked_and_what_is_free():
    free, total = dropnet.cuda.mem_get_info(0)
    with pytest.raises(RuntimeError, match=r"device memory: asked for \d+ bytes on cuda:0, \d+ of \d+ bytes free"):
        DeviceArray((total // 4 + (1 << 28),))


# ----------------------------------------------------------------- the device path over host memory
class HostDevice:
    """Stands in for dropnet._core.device with host memory and the CPU kernels (which the C++ tests
    hold the CUDA kernels' bodies to, bit for bit), so the Python side of the device path (placement,
    outputs, masks, identity paths, pointer arithmetic) runs here for real."""

    def __init__(self):
        self.buffers = []
        self.calls = []

    @staticmethod
    def view(ptr, count, dtype=np.float32):
        dtype = np.dtype(dtype)
        return np.frombuffer((ctypes.c_char * (count * dtype.itemsize)).from_address(ptr), dtype)

    def DeviceBuffer(self, nbytes, device):
        outer = self

        class Buffer:
            def __init__(self):
                self.memory = np.full(max(nbytes, 1), 0xAB, np.uint8)  # garbage, as fresh device memory
                self.ptr, self.nbytes, self.device = self.memory.ctypes.data, nbytes, device
                outer.buffers.append(self)

        return Buffer()

    def copy_to_device(self, dst, src, device):
        self.view(dst, src.nbytes, np.uint8)[:] = np.ascontiguousarray(src).view(np.uint8).ravel()

    def copy_to_host(self, dst, src, device):
        dst.view(np.uint8).ravel()[:] = self.view(src, dst.nbytes, np.uint8)

    def copy_device(self, dst, src, nbytes, device):
        self.view(dst, nbytes, np.uint8)[:] = self.view(src, nbytes, np.uint8).copy()

    def synchronize(self, device, stream=0):
        self.calls.append(("synchronize", device, stream))

    def pointer_device(self, ptr):
        return 0

    dlpack_import = staticmethod(dev.dlpack_import)
    dlpack_export = staticmethod(dev.dlpack_export)

    def _store(self, y, mask, n, n_mask, result):
        out, bits = result
        self.view(y, n)[:] = out.ravel()
        if mask:
            self.view(mask, (n_mask + 63) // 64, np.uint64)[:] = bits

    def dropout_forward(self, x, y, n, p, seed, stream, mask, device):
        self.calls.append(("dropout_forward", p))
        self._store(y, mask, n, n, ops.dropout(self.view(x, n).copy(), p, seed=seed, stream=stream, return_mask=True))

    def alpha_dropout_forward(self, x, y, n, p, seed, stream, mask, device):
        self._store(y, mask, n, n, ops.alpha_dropout(self.view(x, n).copy(), p, seed=seed, stream=stream,
                                                     return_mask=True))

    def spatial_dropout_forward(self, x, y, n_channels, channel_size, p, seed, stream, mask, device):
        assert mask, "the CUDA spatial forward needs its mask buffer"
        n = n_channels * channel_size
        xv = self.view(x, n).copy().reshape(1, n_channels, channel_size)
        self._store(y, mask, n, n_channels, ops.spatial_dropout(xv, p, seed=seed, stream=stream, return_mask=True))

    def dropout_mask_bits(self, n, p, seed, stream, mask, device):
        ones = np.ones(n, np.float32)
        self.view(mask, (n + 63) // 64, np.uint64)[:] = ops.dropout(ones, p, seed=seed, stream=stream,
                                                                     return_mask=True)[1]

    def dropout_backward(self, dy, dx, n, scale, p, seed, stream, mask, device):
        g = self.view(dy, n).copy()
        keep = (ops.unpack_mask(self.view(mask, (n + 63) // 64, np.uint64).copy(), n) if mask
                else ops.dropout_mask(n, p, seed=seed, stream=stream))
        self.view(dx, n)[:] = np.where(keep, g * np.float32(scale), np.float32(0))

    def spatial_dropout_backward(self, dy, dx, n_channels, channel_size, mask, p, device):
        n = n_channels * channel_size
        bits = self.view(mask, (n_channels + 63) // 64, np.uint64).copy()
        self.view(dx, n)[:] = ops.spatial_dropout_backward(self.view(dy, n).copy().reshape(1, n_channels, channel_size),
                                                           p, mask_bits=bits).ravel()

    def __getattr__(self, name):
        # The layer ops: the real bindings (register_device_layers.cpp) on device -1, the CPU's
        # backend, over this host memory, so the path from ops to the Backend runs for real.
        if name not in LAYER_OPS:
            raise AttributeError(name)
        real = getattr(dev, name)

        def call(device, *args):
            self.calls.append((name, device))
            return real(-1, *args)

        return call

    def mc_dropout(self, x, y, n, samples, p, seed, stream0, device):
        self.view(y, n * samples)[:] = ops.mc_dropout(self.view(x, n).copy(), p, seed=seed, stream0=stream0,
                                                      samples=samples).ravel()


LAYER_OPS = {"conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
             "avg_pool2d_backward", "global_avg_pool2d_forward", "global_avg_pool2d_backward", "batch_norm_forward",
             "batch_norm_backward", "linear", "matmul"}


class HostInterface:
    """A numpy array shown through __cuda_array_interface__ (its host pointer as the device one)."""

    def __init__(self, a, stream=None):
        self.a = a
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
                                         "version": 3, "strides": None, "stream": stream}


@pytest.fixture
def host_device(monkeypatch):
    fake = HostDevice()
    monkeypatch.setattr(dropnet.cuda, "_dev", fake)
    monkeypatch.setattr(dropnet.ops._device, "_dev", fake)
    monkeypatch.setattr(dropnet.ops._device_layers, "_dev", fake)
    monkeypatch.setattr(dropnet.cuda, "require_device", lambda device: int(device))
    return fake


@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("training", [True, False])
def test_device_path_over_host_memory_matches_the_cpu(host_device, p, training):
    x = np.random.default_rng(5).standard_normal((3, 4, 5, 7)).astype(np.float32)
    d = to_device(x)
    for fn in ("dropout", "alpha_dropout", "spatial_dropout"):
        f = getattr(ops, fn)
        y, bits = f(d, p, seed=8, stream=3, training=training, return_mask=True)
        want, want_bits = f(x, p, seed=8, stream=3, training=training, return_mask=True)
        assert isinstance(y, DeviceArray) and isinstance(bits, DeviceArray) and bits.dtype == np.uint64
        np.testing.assert_array_equal(y.numpy(), want)
        np.testing.assert_array_equal(bits.numpy(), want_bits)
        back = getattr(ops, fn + "_backward")
        for kwargs in ({"mask_bits": bits}, {"seed": 8, "stream": 3}):
            host_kwargs = {"mask_bits": want_bits} if "mask_bits" in kwargs else kwargs
            np.testing.assert_array_equal(back(d, p, **kwargs).numpy(), back(x, p, **host_kwargs))
        y = f(d, p, seed=8, stream=3, training=training)  # no mask asked: spatial still gets its buffer
        np.testing.assert_array_equal(y.numpy(), want)
    y = ops.mc_dropout(d, p, seed=2, stream0=9, samples=3)
    np.testing.assert_array_equal(y.numpy(), ops.mc_dropout(x, p, seed=2, stream0=9, samples=3))


def test_device_path_writes_out_in_place_and_waits_for_a_foreign_stream(host_device):
    x = np.random.default_rng(6).standard_normal((6, 70)).astype(np.float32)
    out = np.zeros_like(x)
    target = HostInterface(out, stream=77)
    assert ops.dropout(HostInterface(x), 0.5, seed=1, stream=2, out=target) is target
    np.testing.assert_array_equal(out, ops.dropout(x, 0.5, seed=1, stream=2))
    assert ("synchronize", 0, 77) in host_device.calls
    ops.dropout(HostInterface(x), 0.5, seed=1, stream=2, out=HostInterface(x))  # in place
    np.testing.assert_array_equal(x, out)
    with pytest.raises(ValueError, match=r"out: expected shape \(6, 70\) \(the shape of x\), got \(70, 6\)"):
        ops.dropout(HostInterface(x), 0.5, seed=1, stream=2, out=HostInterface(np.zeros((70, 6), np.float32)))
    with pytest.raises(ValueError, match=r"mask_bits: expected shape \(7,\)"):
        ops.dropout_backward(HostInterface(x), 0.5, mask_bits=HostInterface(np.zeros(6, np.uint64)))
    with pytest.raises(ValueError, match="expected either mask_bits or both seed and stream"):
        ops.dropout_backward(HostInterface(x), 0.5, seed=1)


def test_device_path_checks_scalars_like_the_cpu(host_device):
    d = to_device(np.ones(8, np.float32))
    for bad, kwargs in ((1.0, {}), (-0.1, {}), (0.5, {"seed": -1}), (0.5, {"stream": 2**64})):
        args = {"seed": 1, "stream": 1, **kwargs}
        with pytest.raises(ValueError) as on_device:
            ops.dropout(d, bad, **args)
        with pytest.raises(ValueError) as on_cpu:
            ops.dropout(np.ones(8, np.float32), bad, **args)
        assert str(on_device.value) == str(on_cpu.value)
    assert host_device.calls == []  # nothing launched for a refused call


def test_device_array_exports_through_dlpack_to_a_consumer(host_device):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = to_device(x)
    t = dev.dlpack_import(d.__dlpack__(stream=5))
    assert t["ptr"] == d.ptr and t["shape"] == (2, 3) and t["device"] == (2, 0) and t["dtype"] == (2, 32, 1)
    assert ("synchronize", 0, 0) in host_device.calls  # another stream than ours: the host waited
    np.testing.assert_array_equal(np.asarray(d), x)
    with pytest.raises(BufferError, match="copy"):
        d.__dlpack__(copy=True)


def _host(a):
    return a.numpy() if isinstance(a, DeviceArray) else a


def _same(got, want):
    assert (got is None) == (want is None)
    if want is not None:
        assert isinstance(got, DeviceArray)
        np.testing.assert_array_equal(got.numpy(), want)
        assert got.dtype == want.dtype


@pytest.mark.parametrize("stride, padding, groups, activation", [(1, 1, 1, "relu"), (2, "valid", 2, None),
                                                                 (1, "same", 1, "gelu")])
def test_device_conv_and_pooling_over_host_memory_match_the_cpu(host_device, stride, padding, groups, activation):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    kw = dict(stride=stride, padding=padding, groups=groups)
    y = ops.conv2d(to_device(x), to_device(w), to_device(b), activation=activation, **kw)
    want = ops.conv2d(x, w, b, activation=activation, **kw)
    _same(y, want)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    for need_input, need_bias in ((True, True), (False, True), (True, False)):
        got = ops.conv2d_backward(to_device(dy), to_device(x), to_device(w), need_input_grad=need_input,
                                  need_bias_grad=need_bias, **kw)
        for g, r in zip(got, ops.conv2d_backward(dy, x, w, need_input_grad=need_input, need_bias_grad=need_bias,
                                                  **kw)):
            _same(g, r)
    # Into the caller's arrays; stale contents of dw_out / db_out do not leak in.
    outs = [to_device(np.full(a.shape, 7, np.float32)) for a in (x, w, b)]
    got = ops.conv2d_backward(to_device(dy), to_device(x), to_device(w), dx_out=outs[0], dw_out=outs[1],
                              db_out=outs[2], **kw)
    assert all(g is o for g, o in zip(got, outs))
    for g, r in zip(got, ops.conv2d_backward(dy, x, w, **kw)):
        _same(g, r)

    y, idx = ops.max_pool2d(to_device(x), 3, 2, 1, return_indices=True)
    want, want_idx = ops.max_pool2d(x, 3, 2, 1, return_indices=True)
    _same(y, want)
    _same(idx, want_idx)
    g = rng.standard_normal(want.shape).astype(np.float32)
    _same(ops.max_pool2d_backward(to_device(g), idx, x.shape), ops.max_pool2d_backward(g, want_idx, x.shape))
    for include in (True, False):
        want = ops.avg_pool2d(x, 3, 2, 1, include)
        _same(ops.avg_pool2d(to_device(x), 3, 2, 1, include), want)
        g = rng.standard_normal(want.shape).astype(np.float32)
        _same(ops.avg_pool2d_backward(to_device(g), x.shape, 3, 2, 1, include),
              ops.avg_pool2d_backward(g, x.shape, 3, 2, 1, include))
    _same(ops.global_avg_pool2d(to_device(x)), ops.global_avg_pool2d(x))
    g = rng.standard_normal(x.shape[:2]).astype(np.float32)
    _same(ops.global_avg_pool2d_backward(to_device(g), x.shape), ops.global_avg_pool2d_backward(g, x.shape))
    assert {c[0] for c in host_device.calls} >= {"conv2d_forward", "conv2d_backward", "max_pool2d_forward",
                                                  "avg_pool2d_backward", "global_avg_pool2d_backward"}


@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4, 3)])
@pytest.mark.parametrize("training, relu", [(True, False), (True, True), (False, True)])
def test_device_batch_norm_over_host_memory_matches_the_cpu(host_device, shape, training, relu):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    rm, rv = rng.standard_normal(5).astype(np.float32), rng.random(5).astype(np.float32) + 0.5
    d_rm, d_rv = to_device(rm), to_device(rv)
    got = ops.batch_norm(to_device(x), to_device(gamma), to_device(beta), d_rm, d_rv, training=training, relu=relu)
    want = ops.batch_norm(x, gamma, beta, rm, rv, training=training, relu=relu)
    for g, r in zip(got, want):
        _same(g, r)
    np.testing.assert_array_equal(d_rm.numpy(), rm)  # the running statistics, updated in place alike
    np.testing.assert_array_equal(d_rv.numpy(), rv)
    dy = rng.standard_normal(shape).astype(np.float32)
    got_b = ops.batch_norm_backward(to_device(dy), to_device(x), to_device(gamma), got[1], got[2],
                                    y=got[0] if relu else None, training=training)
    want_b = ops.batch_norm_backward(dy, x, gamma, want[1], want[2], y=want[0] if relu else None, training=training)
    for g, r in zip(got_b, want_b):
        _same(g, r)
    d = to_device(dy)  # in place: out may be grad itself
    assert ops.batch_norm_backward(d, to_device(x), to_device(gamma), got[1], got[2], training=training, out=d)[0] is d


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_device_matmul_and_linear_over_host_memory_match_the_cpu(host_device, trans_a, trans_b):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((7, 5) if not trans_a else (5, 7)).astype(np.float32)
    b = rng.standard_normal((5, 9) if not trans_b else (9, 5)).astype(np.float32)
    _same(ops.matmul(to_device(a), to_device(b), trans_a=trans_a, trans_b=trans_b),
          ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b))
    x, w, bias = rng.standard_normal((70, 5)).astype(np.float32), b.reshape(9, 5), rng.standard_normal(9).astype(
        np.float32)
    for p, act in ((0.0, None), (0.3, "relu"), (0.5, "tanh")):
        kw = dict(activation=act, dropout=p, seed=4 if p else None, stream=2 if p else None)
        y, bits = ops.linear(to_device(x), to_device(w), to_device(bias), return_mask=True, **kw)
        want, want_bits = ops.linear(x, w, bias, return_mask=True, **kw)
        _same(y, want)
        _same(bits, want_bits)
    with pytest.raises(ValueError, match="alpha, beta: on CUDA arrays"):
        ops.matmul(to_device(a), to_device(b), trans_a=trans_a, trans_b=trans_b, alpha=2.0)


def test_device_layer_ops_check_their_arguments_like_the_cpu(host_device):
    x = np.ones((2, 3, 5, 5), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    cases = [
        lambda t: ops.conv2d(t(x), t(np.ones((4, 2, 3, 3), np.float32))),          # channels of w
        lambda t: ops.conv2d(t(x), t(w), t(np.ones(5, np.float32))),               # length of b
        lambda t: ops.conv2d(t(x), t(np.ones((4, 3, 7, 7), np.float32))),          # window larger than the image
        lambda t: ops.conv2d_backward(t(np.ones((3, 4, 3, 3), np.float32)), t(x), t(w)),  # batch of grad_out
        lambda t: ops.max_pool2d(t(x), 3, padding=2),                              # padding over half the kernel
        lambda t: ops.avg_pool2d_backward(t(np.ones((2, 3, 2, 2), np.float32)), (2, 3, 5, 5), 3),  # grad's shape
        lambda t: ops.batch_norm(t(np.ones((1, 3), np.float32)), None, None, None, None, training=True),  # 1 value
        lambda t: ops.batch_norm(t(x), None, None, None, None, training=False),    # no running statistics
        lambda t: ops.matmul(t(np.ones((2, 3), np.float32)), t(np.ones((4, 2), np.float32))),  # inner sizes
        lambda t: ops.linear(t(np.ones((2, 3), np.float32)), t(np.ones((4, 2), np.float32))),
        lambda t: ops.conv2d(t(x), t(w), activation="swish"),
    ]
    for i, case in enumerate(cases):
        with pytest.raises(ValueError) as on_cpu:
            case(lambda a: a)
        cpu_error = str(on_cpu.value)
        with pytest.raises(ValueError) as on_device:
            case(to_device)
        assert str(on_device.value) == cpu_error, f"case {i}"
    assert host_device.calls == []  # nothing launched for a refused call
    # Outputs must not alias inputs on a device either.
    d = to_device(x)
    with pytest.raises(ValueError, match="out: must not share memory with x"):
        ops.conv2d(d, to_device(np.ones((3, 3, 3, 3), np.float32)), padding=1, out=d)

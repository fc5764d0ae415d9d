"""Checkpoints that cannot run code on load.

File format (version 1): a numpy ``.npz`` (zip) read with ``allow_pickle=False`` holding

- ``header``: uint8 bytes of a UTF-8 JSON object: ``format``, ``version``, ``model``
  (``Sequential.get_config()``: layers, seed, input shape, compile settings), ``state``
  (``rng_offset``, ``lr``, ``optimizer_step``), ``arrays`` (name, dtype, shape of every array in
  order) and ``sha256``;
- ``param_000 ...``: the parameters in ``get_weights`` order; ``slot_000 ...``: optimizer slots;
  ``mask_NNN``: the 0/1 pruning mask of parameter NNN, for the parameters that have one;
- ``state_NNN``: non-trainable state (batch norm running mean, running variance per layer; header
  ``state.n_state``, absent = 0 in older files).

``sha256`` covers the canonical JSON of the header without it plus every array's name, dtype,
shape and bytes, so truncation and tampering are detected (the zip CRCs catch most of it too).
Files are written to a temporary file in the destination directory and moved into place with
``os.replace``: a reader never sees a partial checkpoint (see ``dropnet._atomic`` for the
temporary file's name, its cleanup after a killed save and the file mode, which follows the
umask). Loading builds a complete new model or raises ``ValueError``; nothing is half-loaded.

Hostile files: before anything but the (size-limited) header is decompressed, the member names
must be exactly the header's arrays, each member's declared size must fit its declared float32
shape, and those shapes must add up to the model the header's architecture describes; arrays are
then read straight into buffers of the declared size, 1 MiB of compressed stream at a time, one
group (params, slots, masks, state) at a time into the network built first. Peak memory while
loading is thus the built model's own memory plus at most its largest group of arrays: under
twice the memory of the model the header declares. Only
finite values are accepted (weights, optimizer slots, state); ``save`` refuses a model whose
training diverged (NaN/inf weights) with ValueError instead of writing a file ``load_model``
would refuse.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
import zlib
from typing import Dict, List, Mapping, Tuple

import numpy as np

from ._atomic import atomic_write

FORMAT = "dropnet.checkpoint"
VERSION = 1

_MEMBER = re.compile(r"(?:param|slot|mask|state)_\d{3,}")  # array names; the zip members add ".npy"
_MAX_HEADER_BYTES = 16 << 20  # the JSON header: layer configs and array list, never near this
_NPY_PREAMBLE_MAX = 1 << 16   # magic + .npy header of one member (numpy writes 128 bytes)
_FLOAT32 = np.dtype("<f4")


def _require_finite(kind: str, arrays: List[Tuple[str, np.ndarray]]) -> None:
    for name, arr in arrays:
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: expected finite {kind} values, got NaN/inf")


def _digest_start(header: dict):
    h = hashlib.sha256()
    body = {k: v for k, v in header.items() if k != "sha256"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return h


def _digest_add(h, name: str, arr: np.ndarray) -> None:
    h.update(f"\n{name}|{arr.dtype.str}|{arr.shape}\n".encode())
    h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))  # the buffer itself, no copy


def _digest(header: dict, arrays: List[Tuple[str, np.ndarray]]) -> str:
    h = _digest_start(header)
    for name, arr in arrays:
        _digest_add(h, name, arr)
    return h.hexdigest()


def save_model(model, path: str) -> None:
    """Write ``model`` (a ``Sequential``) to ``path`` atomically. See the module docstring."""
    path = os.fspath(path)
    arrays: List[Tuple[str, np.ndarray]] = []
    state = None
    if model.built:
        net = model.network
        params = [np.ascontiguousarray(p, dtype=np.float32) for p in net.get_params()]
        opt = net.get_optimizer_state()
        slots = [np.ascontiguousarray(s, dtype=np.float32) for s in opt["slots"]]
        masks = [(i, net.get_mask(i)) for i in range(len(params))]
        masks = [(i, np.ascontiguousarray(m, dtype=np.float32)) for i, m in masks if m is not None]
        arrays += [(f"param_{i:03d}", p) for i, p in enumerate(params)]
        arrays += [(f"slot_{i:03d}", s) for i, s in enumerate(slots)]
        arrays += [(f"mask_{i:03d}", m) for i, m in masks]
        buffers = [np.ascontiguousarray(b, dtype=np.float32) for b in net.get_state()]
        arrays += [(f"state_{i:03d}", b) for i, b in enumerate(buffers)]
        state = {"rng_offset": int(net.rng_offset), "lr": float(net.lr), "optimizer_step": int(opt["step"]),
                 "n_params": len(params), "n_slots": len(slots), "mask_params": [i for i, _ in masks],
                 "n_state": len(buffers)}
    header = {"format": FORMAT, "version": VERSION, "model": model.get_config(), "state": state,
              "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays]}
    _write_atomic(path, header, arrays)


def _write_atomic(path: str, header: dict, arrays: List[Tuple[str, np.ndarray]]) -> None:
    """``header`` (sha256 added) and ``arrays`` as an npz at ``path``, via a temporary file and
    ``os.replace``: a reader sees the old file or the new one, never a partial one."""
    header["sha256"] = _digest(header, arrays)
    try:
        _require_finite("model", [(n, a) for n, a in arrays if not n.startswith("mask_")])
    except ValueError as e:
        raise ValueError(f"save: {e}: training diverged, so the model is not saved (load_model would refuse "
                         "it); lower the learning rate or stop with callbacks.TerminateOnNaN") from None
    payload = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    payload.update(arrays)
    atomic_write(path, lambda f: np.savez(f, **payload))


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dtype: np.dtype, shape: Tuple[int, ...]) -> np.ndarray:
    """One .npy member, which must hold exactly ``dtype`` and ``shape``, read straight into a buffer
    of that size (no pickle, no intermediate copy); its trailing bytes and zip CRC are checked."""
    with zf.open(info) as s:
        got_shape, fortran, got_dtype = _npy_header(s, info)
        if got_dtype != dtype or tuple(got_shape) != tuple(shape) or (fortran and len(shape) > 1):
            raise ValueError(f"{info.filename}: expected {dtype.str} {tuple(shape)}, the member holds "
                             f"{got_dtype.str} {tuple(got_shape)}")
        arr = np.empty(shape, dtype)
        view = memoryview(arr).cast("B")
        filled = 0
        while filled < len(view):
            # 1 MiB at a time: zipfile's readinto allocates (and decompresses into) a temporary
            # the size of the request, which for a whole array would double its memory.
            n = s.readinto(view[filled:filled + (1 << 20)])
            if not n:
                raise ValueError(f"{info.filename}: ends after {filled} of {len(view)} bytes")
            filled += n
        if s.read(1):  # also reaches the end, where zipfile checks the CRC
            raise ValueError(f"{info.filename}: longer than its declared shape")
    return arr


def _parse_header(raw: bytes, fmt: str) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("header: JSON nested too deeply") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise ValueError(f"not a {fmt} file (header format "
                         f"{header.get('format') if isinstance(header, dict) else None!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"checkpoint version {header.get('version')!r} is not supported "
                         f"(this dropnet reads version {VERSION})")
    return header


def _declared_arrays(header: dict) -> List[Tuple[str, Tuple[int, ...]]]:
    """The header's array list, checked: unique array names, float32, non-negative int shapes."""
    entries = header.get("arrays")
    if not isinstance(entries, list):
        raise ValueError("header: 'arrays' is not a list")
    out, seen = [], set()
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not _MEMBER.fullmatch(e["name"]):
            raise ValueError(f"header: bad array entry {str(e)[:80]!r}")
        shape = e.get("shape")
        if (e.get("dtype") != _FLOAT32.str or not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)):
            raise ValueError(f"header: {e['name']}: expected float32 ('<f4') with a shape of ints, got "
                             f"{e.get('dtype')!r} {str(shape)[:80]}")
        if e["name"] in seen:
            raise ValueError(f"header: {e['name']} listed twice")
        seen.add(e["name"])
        out.append((e["name"], tuple(shape)))
    return out


_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile, zlib.error,
                UnicodeDecodeError, NotImplementedError)


class _Checkpoint:
    """An open checkpoint whose header and member table are checked; arrays are read one at a
    time (``array``), so loading never holds more than the model plus one group of arrays.

    Nothing but the (size-limited) header is decompressed before every member's name and declared
    size is checked against the header, and ``expect(header, declared)`` (the architecture's own
    sizes) has accepted the declared shapes."""

    def __init__(self, path: str, expect, fmt: str = FORMAT) -> None:
        self.path, self._fmt = path, fmt
        self._file = open(path, "rb")
        try:
            if self._file.read(4) != b"PK\x03\x04":
                raise ValueError("not an npz (zip) archive")
            self._file.seek(0)
            # zipfile directly: np.load would decompress any member asked for, pickles included.
            self._zip = zipfile.ZipFile(self._file)
            self._open(expect)
        except BaseException:
            self.close()
            raise

    def _open(self, expect) -> None:
        infos = self._zip.infolist()
        if "header.npy" not in {info.filename for info in infos}:
            raise ValueError("no 'header' entry")
        members = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if name is None or not (name == "header" or _MEMBER.fullmatch(name)) or name in members:
                raise ValueError(f"unexpected member {info.filename[:80]!r}")
            members[name] = info
        hinfo = members.pop("header")
        if hinfo.file_size > _MAX_HEADER_BYTES + _NPY_PREAMBLE_MAX:
            raise ValueError(f"header member declares {hinfo.file_size} bytes")
        with self._zip.open(hinfo) as s:
            shape, _, dtype = _npy_header(s, hinfo)
        if dtype != np.uint8 or len(shape) != 1 or shape[0] > _MAX_HEADER_BYTES:
            raise ValueError(f"header member: expected uint8 bytes, got {dtype} {shape}")
        self.header = _parse_header(_read_npy(self._zip, hinfo, np.dtype(np.uint8), shape).tobytes(), self._fmt)
        self.declared = _declared_arrays(self.header)
        listed = {n for n, _ in self.declared}
        if listed != set(members):
            raise ValueError(f"the header does not match its arrays (members not listed: "
                             f"{sorted(set(members) - listed)[:4]}, listed but missing: "
                             f"{sorted(listed - set(members))[:4]})")
        for name, shape in self.declared:
            need = math.prod(shape) * 4
            if not need <= members[name].file_size <= need + _NPY_PREAMBLE_MAX:
                raise ValueError(f"{name}: the member declares {members[name].file_size} bytes, "
                                 f"its header shape {list(shape)} needs {need}")
        self._members = members
        self._shapes = dict(self.declared)
        if expect is not None:
            expect(self.header, self.declared)

    def array(self, name: str) -> np.ndarray:
        return _read_npy(self._zip, self._members[name], _FLOAT32, self._shapes[name])

    def close(self) -> None:
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def __enter__(self) -> "_Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _npy_header(s, info: zipfile.ZipInfo):
    version = np.lib.format.read_magic(s)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(s)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(s)
    raise ValueError(f"{info.filename}: .npy version {version} is not used by dropnet")


def _read(path: str, fmt: str = FORMAT, expect=None) -> Tuple[dict, Dict[str, np.ndarray]]:
    """Header and all arrays of a ``fmt`` file (checked as ``_Checkpoint`` does)."""
    try:
        with _Checkpoint(path, expect, fmt) as ck:
            return ck.header, {name: ck.array(name) for name, _ in ck.declared}
    except FileNotFoundError:
        raise
    except MemoryError:
        raise ValueError(f"{path}: the checkpoint declares arrays larger than the available memory") from None
    except _READ_ERRORS as e:
        raise ValueError(f"{path}: not a readable dropnet checkpoint ({type(e).__name__}: {e})") from None


def _check_declared_sizes(model, declared: List[Tuple[str, Tuple[int, ...]]], slots: bool = True) -> None:
    """Declared params and state must be the sizes ``model``'s architecture gives; optimizer slots
    a whole number (at most 8) of copies of the params; masks at most the params."""
    sizes = {"param": 0, "slot": 0, "mask": 0, "state": 0}
    for name, shape in declared:
        sizes[name.split("_")[0]] += math.prod(shape)
    if model.input_shape is None:
        raise ValueError("arrays present but the architecture has no input shape")
    rows = model._shapes_with_state(model.input_shape)
    n_params, n_state = sum(r[2] for r in rows), sum(r[3] for r in rows)
    if sizes["param"] != n_params or sizes["state"] != n_state:
        raise ValueError(f"the array shapes do not match the architecture: they declare {sizes['param']} parameter "
                         f"and {sizes['state']} state values, the architecture has {n_params} and {n_state}")
    max_slots = 8 * n_params if slots else 0
    if sizes["mask"] > n_params or (n_params and sizes["slot"] % n_params) or sizes["slot"] > max_slots:
        raise ValueError(f"arrays declare {sizes['slot']} optimizer and {sizes['mask']} mask values "
                         f"for {n_params} parameters")


def _expect_architecture(model_box: list):
    """The check ``_read`` runs before decompressing arrays: build the layers from the header's
    config (no weights allocated) and require the declared params and state to be the sizes the
    architecture gives, slots a whole number of copies of the params, masks shaped like params."""
    from . import layers as _layers
    from .models import Sequential

    def expect(header: dict, declared: List[Tuple[str, Tuple[int, ...]]]) -> None:
        cfg = header["model"]
        model = Sequential([_layers.from_config(e) for e in cfg["layers"]], input_shape=cfg["input_shape"],
                           seed=cfg["seed"], name=cfg.get("name", "sequential"))
        model_box.append(model)
        if declared:
            _check_declared_sizes(model, declared)

    return expect


def load_model(path: str, device: str = "cpu"):
    """Rebuild a ``Sequential`` saved with ``save_model``: architecture, weights, pruning masks,
    optimizer state (step and slots), learning rate and RNG offset, so training continues exactly where it stopped.
    ``device``: where the model is returned (``Sequential.to``); checked before the file is read,
    so a CUDA device that cannot be used raises ``RuntimeError`` naming what is missing first.

    Raises ValueError for a truncated, tampered or foreign file; FileNotFoundError if missing.
    The model is built first and filled one group of arrays at a time (params, then each optimizer
    slot on its own, masks, state), hashing as it goes; it is returned only once the SHA-256
    matched."""
    from . import cuda as _cuda

    device = _cuda.parse_device(device)
    path = os.fspath(path)
    built: list = []
    stage = "not a readable dropnet checkpoint"
    try:
        with _Checkpoint(path, _expect_architecture(built)) as ck:
            stage = "checkpoint content is inconsistent"
            header, model = ck.header, built[0]
            names = [name for name, _ in ck.declared]
            expected = header["sha256"]
            cfg = header["model"]
            if cfg["compile"] is not None:
                comp = cfg["compile"]
                model.compile(optimizer=comp["optimizer"], loss=comp["loss"], metrics=comp["metrics"])
            state = header["state"]
            h = _digest_start(header)

            def group(lo: int, hi: int, kind: str) -> List[np.ndarray]:
                arrays = []
                for name in names[lo:hi]:
                    arr = ck.array(name)
                    _digest_add(h, name, arr)
                    arrays.append(arr)
                if kind:
                    _require_finite(kind, list(zip(names[lo:hi], arrays)))
                return arrays

            if state is None:
                if names:
                    raise ValueError(f"{len(names)} arrays but no state for them")
            else:
                if not model.built:
                    raise ValueError("weights present but the model cannot be built")
                n_params, n_slots, mask_params = state["n_params"], state["n_slots"], state["mask_params"]
                n_state = int(state.get("n_state", 0))  # absent in checkpoints written before batch norm
                if n_params + n_slots + len(mask_params) + n_state != len(names):
                    raise ValueError(f"{len(names)} arrays for {n_params} params, {n_slots} slots, "
                                     f"{len(mask_params)} masks, {n_state} state arrays")
                net = model.network
                model.set_weights(group(0, n_params, "model"))
                if n_slots != net.n_optimizer_slots:
                    raise ValueError(f"{n_slots} optimizer slots, the compiled optimizer has {net.n_optimizer_slots}")
                # Slot by slot, so that loading holds one array of the file beside the model, not
                # the whole group (Adam's two slots per parameter would double the parameters).
                for k in range(n_slots):
                    net.set_optimizer_slot(k, group(n_params + k, n_params + k + 1, "optimizer state")[0])
                net.set_optimizer_step(int(state["optimizer_step"]))
                n_masked = n_params + n_slots + len(mask_params)
                for i, mask in zip(mask_params, group(n_params + n_slots, n_masked, "")):
                    net.set_mask(int(i), mask)
                net.set_state(group(n_masked, len(names), "state"))
                net.lr = float(state["lr"])
                net.rng_offset = int(state["rng_offset"])
            if h.hexdigest() != expected:
                raise _Tampered()
    except FileNotFoundError:
        raise
    except _Tampered:
        raise ValueError(f"{path}: checkpoint SHA-256 mismatch: the file was modified or damaged") from None
    except MemoryError:
        raise ValueError(f"{path}: the checkpoint declares arrays larger than the available memory") from None
    except (*_READ_ERRORS, IndexError, OverflowError) as e:
        raise ValueError(f"{path}: {stage} ({type(e).__name__}: {e})") from None
    return model.to(device)


class _Tampered(Exception):
    """The digest did not match (raised inside load_model, reported as ValueError)."""


def load_torch_state_dict(model, state_dict: Mapping[str, object]) -> None:
    """Copy the parameters of an equivalent PyTorch MLP (``nn.Linear`` layers in the same order as
    the model's ``Dense`` layers) into ``model``. torch's Linear weight is (out, in) like ours, so
    the tensors are taken in order, weight then bias; all shapes are checked before anything is
    set."""
    values = []
    for key, value in state_dict.items():
        if not (key.endswith(".weight") or key.endswith(".bias")):
            continue
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        values.append(np.asarray(value, dtype=np.float32))
    model.set_weights(values)


WEIGHTS_FORMAT = "dropnet.weights"


def save_weights(model, path: str) -> None:
    """Write the parameters, pruning masks and batch norm running statistics of a built model to
    ``path`` (npz without pickle, JSON header naming each layer's arrays, SHA-256, written
    atomically); no architecture, optimizer state or RNG offset (``save`` has those)."""
    path = os.fspath(path)
    net = model.network
    params = [np.ascontiguousarray(p, dtype=np.float32) for p in net.get_params()]
    masks = [(i, net.get_mask(i)) for i in range(len(params))]
    masks = [(i, np.ascontiguousarray(m, dtype=np.float32)) for i, m in masks if m is not None]
    buffers = [np.ascontiguousarray(b, dtype=np.float32) for b in net.get_state()]
    arrays = [(f"param_{i:03d}", p) for i, p in enumerate(params)]
    arrays += [(f"mask_{i:03d}", m) for i, m in masks]
    arrays += [(f"state_{i:03d}", b) for i, b in enumerate(buffers)]
    header = {"format": WEIGHTS_FORMAT, "version": VERSION,
              "layers": [{"name": layer.name, "class": type(layer).__name__, "params": list(idx)}
                         for layer, idx in model._layer_params()],
              "n_params": len(params), "n_state": len(buffers), "mask_params": [i for i, _ in masks],
              "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays]}
    _write_atomic(path, header, arrays)


def load_weights(model, path: str) -> None:
    """Load ``save_weights`` output into a built model of the same architecture. Every array is
    checked (count, shape, digest) before anything is written; ValueError otherwise."""
    path = os.fspath(path)
    header, arrays = _read(path, WEIGHTS_FORMAT,
                           lambda header, declared: _check_declared_sizes(model, declared, slots=False))
    if _digest(header, [(a["name"], arrays.get(a["name"], np.empty(0))) for a in header.get("arrays", [])]) \
            != header.get("sha256"):
        raise ValueError(f"{path}: SHA-256 mismatch (the file is corrupt or was modified)")
    net = model.network
    shapes = [tuple(s) for s in net.param_shapes]
    if header.get("n_params") != len(shapes):
        raise ValueError(f"{path}: holds {header.get('n_params')} parameter arrays, the model has {len(shapes)}")
    params = [arrays[f"param_{i:03d}"] for i in range(len(shapes))]
    for i, (p, shape) in enumerate(zip(params, shapes)):
        if p.shape != shape:
            raise ValueError(f"{path}: parameter {i} has shape {p.shape}, the model's is {shape}")
    state = [arrays[f"state_{i:03d}"] for i in range(int(header.get("n_state", 0)))]
    if len(state) != len(net.get_state()):
        raise ValueError(f"{path}: holds {len(state)} batch norm arrays, the model has {len(net.get_state())}")
    for i in range(len(shapes)):
        net.set_mask(i, None)
    model.set_weights(params)
    model.set_state(state)
    for i in header.get("mask_params", []):
        net.set_mask(i, np.ascontiguousarray(arrays[f"mask_{i:03d}"], dtype=np.float32))

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
``os.replace``: a reader never sees a partial checkpoint. Loading builds a complete new model or
raises ``ValueError``; nothing is half-loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from typing import Dict, List, Mapping, Tuple

import numpy as np

FORMAT = "dropnet.checkpoint"
VERSION = 1


def _digest(header: dict, arrays: List[Tuple[str, np.ndarray]]) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in header.items() if k != "sha256"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name, arr in arrays:
        h.update(f"\n{name}|{arr.dtype.str}|{arr.shape}\n".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
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
    payload = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    payload.update(arrays)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str, fmt: str = FORMAT) -> Tuple[dict, Dict[str, np.ndarray]]:
    try:
        # Our own file handle: np.load leaks the one it opens when the content is not an npz.
        with open(path, "rb") as f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an npz archive")
            with z:
                if "header" not in z.files:
                    raise ValueError("no 'header' entry")
                header = json.loads(bytes(z["header"]).decode("utf-8"))
                arrays = {name: z[name] for name in z.files if name != "header"}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable dropnet checkpoint (truncated or corrupt: "
                         f"{type(e).__name__}: {e})") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise ValueError(f"{path}: not a {fmt} file (header format {header.get('format')!r})"
                         if isinstance(header, dict) else f"{path}: not a {fmt} file")
    if header.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {header.get('version')!r} is not supported "
                         f"(this dropnet reads version {VERSION})")
    return header, arrays


def load_model(path: str):
    """Rebuild a ``Sequential`` saved with ``save_model``: architecture, weights, pruning masks,
    optimizer state (step and slots), learning rate and RNG offset, so training continues exactly where it stopped.

    Raises ValueError for a truncated, tampered or foreign file; FileNotFoundError if missing."""
    from . import layers as _layers
    from .models import Sequential

    path = os.fspath(path)
    header, arrays = _read(path)
    try:
        listed = [(e["name"], arrays[e["name"]]) for e in header["arrays"]]
        if len(listed) != len(arrays):
            raise KeyError(f"{len(arrays) - len(listed)} unlisted arrays")
        expected = header["sha256"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: checkpoint header does not match its arrays ({e})") from None
    if _digest(header, listed) != expected:
        raise ValueError(f"{path}: checkpoint SHA-256 mismatch: the file was modified or damaged")
    try:
        cfg = header["model"]
        model = Sequential([_layers.from_config(e) for e in cfg["layers"]], input_shape=cfg["input_shape"],
                           seed=cfg["seed"], name=cfg.get("name", "sequential"))
        if cfg["compile"] is not None:
            comp = cfg["compile"]
            model.compile(optimizer=comp["optimizer"], loss=comp["loss"], metrics=comp["metrics"])
        state = header["state"]
        if state is not None:
            if not model.built:
                raise ValueError("weights present but the model cannot be built")
            n_params, n_slots, mask_params = state["n_params"], state["n_slots"], state["mask_params"]
            n_state = int(state.get("n_state", 0))  # absent in checkpoints written before batch norm
            if n_params + n_slots + len(mask_params) + n_state != len(listed):
                raise ValueError(f"{len(listed)} arrays for {n_params} params, {n_slots} slots, "
                                 f"{len(mask_params)} masks, {n_state} state arrays")
            params = [arr for _, arr in listed[:n_params]]
            slots = [arr for _, arr in listed[n_params:n_params + n_slots]]
            model.set_weights(params)
            net = model.network
            n_masked = n_params + n_slots + len(mask_params)
            for i, (_, mask) in zip(mask_params, listed[n_params + n_slots:n_masked]):
                net.set_mask(int(i), mask)
            net.set_state([arr for _, arr in listed[n_masked:]])
            net.set_optimizer_state({"step": int(state["optimizer_step"]), "slots": slots})
            net.lr = float(state["lr"])
            net.rng_offset = int(state["rng_offset"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{path}: checkpoint content is inconsistent ({type(e).__name__}: {e})") from None
    return model


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
    header, arrays = _read(path, WEIGHTS_FORMAT)
    if _digest(header, [(a["name"], arrays.get(a["name"], np.empty(0))) for a in header.get("arrays", [])]) \
            != header.get("sha256"):
        raise ValueError(f"{path}: SHA-256 mismatch (the file is corrupt or was modified)")
    net = model.network
    current = net.get_params()
    if header.get("n_params") != len(current):
        raise ValueError(f"{path}: holds {header.get('n_params')} parameter arrays, the model has {len(current)}")
    params = [arrays[f"param_{i:03d}"] for i in range(len(current))]
    for i, (p, ref) in enumerate(zip(params, current)):
        if p.shape != np.shape(ref):
            raise ValueError(f"{path}: parameter {i} has shape {p.shape}, the model's is {np.shape(ref)}")
    state = [arrays[f"state_{i:03d}"] for i in range(int(header.get("n_state", 0)))]
    if len(state) != len(net.get_state()):
        raise ValueError(f"{path}: holds {len(state)} batch norm arrays, the model has {len(net.get_state())}")
    for i in range(len(current)):
        net.set_mask(i, None)
    model.set_weights(params)
    model.set_state(state)
    for i in header.get("mask_params", []):
        net.set_mask(i, np.ascontiguousarray(arrays[f"mask_{i:03d}"], dtype=np.float32))

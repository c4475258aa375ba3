"""Checkpoints: save and load nested dicts of Tensors and arrays as one .npz, atomically.

A checkpoint is what a training loop needs to resume::

    save({"model": model.state_dict(), "optimizer": opt.state_dict(),
          "scheduler": sched.state_dict(), "epoch": 3}, "run/last.npz")
    ckpt = load("run/last.npz")
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

The file format (version 1) is a plain .npz (a zip of .npy files, no pickle):

* every array is stored under a flattened key made of its path, e.g.
  ``model.conv1.weight`` or ``optimizer.state.0.exp_avg`` (``np.load`` can read them);
* the entry ``__minidl_header__`` holds UTF-8 JSON, as uint8 bytes:
  ``{"magic": "minidl-checkpoint", "version": 1, "keys": [...], "tree": ...}``, where
  ``tree`` records the nesting (dict, OrderedDict, list, tuple, with the type of every dict
  key, so the int keys of an optimizer's state survive), the Python scalars and strings
  themselves, and for each Tensor, NumPy array or NumPy scalar the key of its array.

Saving is atomic: the file is written under a temporary name in the target's folder,
flushed and fsync'ed, then renamed over the target with ``os.replace``. A crash while
saving leaves the previous checkpoint as it was (a hard crash may leave a stray
``.<name>.*.tmp`` file beside it; a Python exception removes it).
"""
from __future__ import annotations

import json
import os
import uuid
import zipfile
from collections import OrderedDict

import numpy as np

from .. import backend
from ..backend import Device
from ..tensor import Tensor

__all__ = ["save", "load", "MAGIC", "FORMAT_VERSION"]

MAGIC = "minidl-checkpoint"
FORMAT_VERSION = 1
_HEADER = "__minidl_header__"
_ZIP_MAGIC = b"PK\x03\x04"


# ---- saving ---------------------------------------------------------------------------
def save(obj, path) -> None:
    """Write ``obj`` (a nested dict of Tensors, arrays, numbers, strings, lists) to ``path``.

    Args:
        obj: dicts (any key of type str, int, float, bool or None), lists and tuples,
            holding Tensors (any device; saved from host memory), NumPy or CuPy arrays,
            NumPy scalars, Python ints, floats, bools, None and strings.
        path: the file to write, used as given (no extension is added). An existing file
            is replaced only once the new one is complete.

    Raises:
        TypeError: an object of another type (the message gives its place in ``obj``).
        FileNotFoundError: the folder of ``path`` does not exist.
        ValueError: ``path`` is a folder.

    >>> save({"model": model.state_dict(), "epoch": 3}, "ckpt.npz")
    >>> load("ckpt.npz")["epoch"]
    3
    """
    path = _path_arg("save", path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: the folder {folder!r} of checkpoint {path!r} does "
                                f"not exist; create it first")
    if os.path.isdir(path):
        raise ValueError(f"save: {path!r} is a folder; expected a file path such as "
                         f"{os.path.join(path, 'checkpoint.npz')!r}")

    arrays: dict = {}
    tree = _encode(obj, [], arrays)
    header = {"magic": MAGIC, "version": FORMAT_VERSION, "keys": list(arrays), "tree": tree}
    header_bytes = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)

    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # Created inside the try: a Ctrl-C right after the file appears still removes it.
        # os.open with mode 0o666 lets the umask decide the permissions, as open(path, "w").
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        with os.fdopen(fd, "wb") as f:
            zf = zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
            try:
                _write_array(zf, _HEADER, header_bytes)
                for key, array in arrays.items():
                    _write_array(zf, key, array)
            except BaseException:
                _abandon(zf)
                raise
            zf.close()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _path_arg(op: str, path) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{op}: path must be a str, bytes or os.PathLike, got "
                        f"{type(path).__name__} {path!r}")
    return os.fspath(path)


def _abandon(zf: zipfile.ZipFile) -> None:
    """Let go of an archive whose writing failed (its file is about to be removed),
    without masking the failure.

    A Ctrl-C can land inside ``zf.open(name, "w")`` after the archive has marked a member
    as open but before the member exists to be closed. ``ZipFile.close`` (which its
    ``with`` block would call) then raises "Can't close the ZIP file while there is an
    open writing handle", and that ValueError replaced the KeyboardInterrupt: ``fit``
    could not stop cleanly (seen once in CI's SIGINT test). Here close() is tried, and
    if it refuses, the archive drops its file (``fp = None``, which is what close() ends
    with), so that neither it nor the garbage collector writes anything more.
    """
    try:
        zf.close()
    except ValueError:
        zf.fp = None


def _write_array(zf: zipfile.ZipFile, key: str, array: np.ndarray) -> None:
    with zf.open(key + ".npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, array, allow_pickle=False)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _place(path: list) -> str:
    return "".join(f"[{p!r}]" for p in path) or "the top level"


def _new_key(path: list, arrays: dict) -> str:
    base = ".".join(str(p) for p in path) or "value"
    key, n = base, 1
    while key in arrays or key == _HEADER:
        n += 1
        key = f"{base}~{n}"
    return key


def _store(array, path: list, arrays: dict) -> str:
    if array.dtype.kind not in "biufc":
        raise TypeError(f"save: cannot store an array of dtype {array.dtype} at "
                        f"{_place(path)}; only bool and numeric arrays are supported")
    key = _new_key(path, arrays)
    arrays[key] = array
    return key


def _encode_key(key, path: list):
    if key is None or isinstance(key, (str, bool, int, float)):
        return _encode(key, path, {})
    raise TypeError(f"save: dict key {key!r} of type {type(key).__name__} at "
                    f"{_place(path)} is not supported; use str, int, float, bool or None")


def _encode(obj, path: list, arrays: dict):
    """The JSON description of ``obj``; its arrays are added to ``arrays``."""
    if isinstance(obj, Tensor):
        return {"type": "tensor", "key": _store(obj.numpy(), path, arrays),
                "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
        return {"type": "ndarray", "key": _store(backend.to_device(obj, "cpu"), path, arrays)}
    if isinstance(obj, np.generic):
        return {"type": "npscalar", "key": _store(np.asarray(obj), path, arrays)}
    if obj is None:
        return {"type": "none"}
    if isinstance(obj, bool):
        return {"type": "bool", "value": obj}
    if isinstance(obj, int):
        return {"type": "int", "value": int(obj)}
    if isinstance(obj, float):
        return {"type": "float", "value": float(obj)}  # JSON keeps repr: exact, nan/inf too
    if isinstance(obj, str):
        return {"type": "str", "value": obj}
    if isinstance(obj, dict):
        items = [[_encode_key(k, path), _encode(v, path + [k], arrays)]
                 for k, v in obj.items()]
        return {"type": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        return {"type": "list" if isinstance(obj, list) else "tuple",
                "items": [_encode(v, path + [i], arrays) for i, v in enumerate(obj)]}
    raise TypeError(f"save: cannot store an object of type {type(obj).__name__} at "
                    f"{_place(path)}; expected Tensors, arrays, numbers, strings, None, "
                    f"dicts, lists or tuples")


# ---- loading --------------------------------------------------------------------------
def load(path, map_location=None):
    """Read a checkpoint written by ``save``; Tensors come back as Tensors.

    Args:
        path: the checkpoint file.
        map_location: the device of the loaded Tensors ('cpu' by default, or 'cuda',
            'cuda:1', a Device). NumPy arrays stay NumPy arrays.

    Returns:
        The saved object, with the same nesting, dict types, key types and key order.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is empty, truncated or corrupted, not a minidl checkpoint
            (another .npz, or not a zip file at all), or written by a newer minidl.

    >>> ckpt = load("ckpt.npz", map_location="cuda")
    """
    path = _path_arg("load", path)
    try:
        device = Device.parse(map_location) if map_location is not None else Device("cpu")
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"load: map_location: {exc}") from None
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no checkpoint file at {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"load: {path!r} is a folder, expected a minidl checkpoint file")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"load: {path!r} is empty (0 bytes); expected a minidl checkpoint "
                         f"(.npz); it may be the remains of a failed copy")
    with open(path, "rb") as f:
        starts_like_zip = f.read(4) == _ZIP_MAGIC
    try:
        with zipfile.ZipFile(path, "r") as zf:
            names = set(zf.namelist())
            header = _read_header(zf, names, path)
            arrays = {key: _read_array(zf, key, names, path) for key in header["keys"]}
    except zipfile.BadZipFile as exc:
        if starts_like_zip:
            raise ValueError(f"load: {path!r} is truncated or corrupted ({size} bytes; "
                             f"{exc}); expected a complete minidl checkpoint (.npz)") from None
        raise ValueError(f"load: {path!r} is not a minidl checkpoint: expected an .npz "
                         f"(zip) file, but it does not start like one") from None
    return _decode(header["tree"], arrays, device, path)


def _read_header(zf: zipfile.ZipFile, names: set, path: str) -> dict:
    if _HEADER + ".npy" not in names:
        raise ValueError(f"load: {path!r} is an .npz file but not a minidl checkpoint (no "
                         f"{_HEADER!r} entry; it holds {sorted(n[:-4] for n in names)[:5]}"
                         f"{'...' if len(names) > 5 else ''}); use numpy.load for it")
    raw = _read_array(zf, _HEADER, names, path)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"load: {path!r} has an unreadable {_HEADER!r} entry; expected the "
                         f"JSON header of a minidl checkpoint") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        magic = header.get("magic") if isinstance(header, dict) else None
        raise ValueError(f"load: {path!r} is not a minidl checkpoint (magic {magic!r}, "
                         f"expected {MAGIC!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"load: {path!r} has an invalid format version {version!r}; "
                         f"expected an int >= 1")
    if version > FORMAT_VERSION:
        raise ValueError(f"load: {path!r} has checkpoint format version {version}, newer "
                         f"than this minidl reads (up to {FORMAT_VERSION}); upgrade minidl")
    if not isinstance(header.get("keys"), list) or "tree" not in header:
        raise ValueError(f"load: {path!r} has a header without 'keys' or 'tree'; the file "
                         f"is corrupted")
    return header


def _read_array(zf: zipfile.ZipFile, key: str, names: set, path: str) -> np.ndarray:
    if key + ".npy" not in names:
        raise ValueError(f"load: {path!r} is corrupted: the array {key!r} listed in its "
                         f"header is missing")
    try:
        with zf.open(key + ".npy") as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except zipfile.BadZipFile:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"load: {path!r} is corrupted: cannot read array {key!r} "
                         f"({exc})") from None


_SCALARS = {"none": lambda v: None, "bool": bool, "int": int, "float": float, "str": str}


def _decode(node, arrays: dict, device: Device, path: str):
    try:
        kind = node["type"]
        if kind in _SCALARS:
            return _SCALARS[kind](node.get("value"))
        if kind == "tensor":
            t = Tensor._wrap(backend.to_device(arrays[node["key"]], device))
            if node.get("requires_grad"):
                t.requires_grad_(True)
            return t
        if kind == "ndarray":
            return arrays[node["key"]]
        if kind == "npscalar":
            return arrays[node["key"]][()]
        if kind in ("dict", "odict"):
            items = ((_decode(k, arrays, device, path), _decode(v, arrays, device, path))
                     for k, v in node["items"])
            return OrderedDict(items) if kind == "odict" else dict(items)
        if kind in ("list", "tuple"):
            items = [_decode(v, arrays, device, path) for v in node["items"]]
            return items if kind == "list" else tuple(items)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"load: {path!r} has a corrupted header (bad entry: "
                         f"{exc!r})") from None
    raise ValueError(f"load: {path!r} has a corrupted header (unknown entry type "
                     f"{kind!r})")

"""The NumPy/CuPy switch: devices, the array module of an array, moving arrays, seeds.

CuPy is imported lazily: ``import minidl`` and all CPU work never touch CUDA. An array
tells which module owns it, so every op writes ``xp = get_array_module(x)`` and runs the
same lines on NumPy (CPU) and CuPy (GPU).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Device", "get_array_module", "to_device", "device_of", "cuda_available",
    "cuda_unavailable_reason", "set_default_device", "get_default_device", "manual_seed",
    "generator", "import_cupy",
]


@dataclass(frozen=True)
class Device:
    """A place where arrays live: ``Device("cpu")``, ``Device("cuda")``, ``Device("cuda:1")``."""

    type: str
    index: int = 0

    @staticmethod
    def parse(spec: "str | Device | None") -> "Device":
        if spec is None:
            return get_default_device()
        if isinstance(spec, Device):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {spec!r}")
        name, _, idx = spec.strip().lower().partition(":")
        if name not in ("cpu", "cuda") or (idx and not idx.isdigit()) or (name == "cpu" and idx):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
        return Device(name, int(idx) if idx else 0)

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + ("" if self.type == "cpu" else f", index={self.index}") + ")"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device.parse(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, Device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = Device("cpu")


def import_cupy():
    """Import and return cupy, or raise a RuntimeError that says why CUDA is unusable."""
    reason = cuda_unavailable_reason()
    if reason:
        raise RuntimeError(f"CUDA device requested but {reason}")
    return importlib.import_module("cupy")


_cuda_reason_cache: "list[str | None]" = []


def cuda_unavailable_reason() -> "str | None":
    """None when CuPy sees a GPU, else the sentence every GPU skip prints."""
    if _cuda_reason_cache:
        return _cuda_reason_cache[0]
    reason = None
    if "cupy" not in sys.modules and importlib.util.find_spec("cupy") is None:
        reason = "CuPy is not installed (pip install 'minidl[gpu]'); no CUDA device to test"
    else:
        try:
            cupy = importlib.import_module("cupy")
            if cupy.cuda.runtime.getDeviceCount() < 1:
                reason = "CuPy is installed but sees no CUDA device"
        except Exception as exc:  # a broken driver is a reason to skip, not to crash
            reason = f"CuPy is installed but CUDA is unusable ({type(exc).__name__}: {exc})"
    _cuda_reason_cache.append(reason)
    return reason


def cuda_available() -> bool:
    return cuda_unavailable_reason() is None


def get_array_module(*arrays):
    """numpy, or cupy when any argument is a CuPy array (CuPy is never imported here)."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def device_of(array) -> Device:
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(array, cupy.ndarray):
        return Device("cuda", array.device.id)
    return CPU


def to_device(array, device: "str | Device"):
    """Copy an array to ``device`` (a no-op when it is already there)."""
    device = Device.parse(device)
    if device.type == "cpu":
        cupy = sys.modules.get("cupy")
        if cupy is not None and isinstance(array, cupy.ndarray):
            return cupy.asnumpy(array)
        return np.asarray(array)
    cupy = import_cupy()
    with cupy.cuda.Device(device.index):
        return cupy.asarray(array)


_default_device = [Device.parse(os.environ.get("MINIDL_DEVICE", "cpu"))]


def set_default_device(device: "str | Device") -> None:
    """Where creation functions put new tensors when no device is given."""
    _default_device[0] = Device.parse(device)


def get_default_device() -> Device:
    return _default_device[0]


# One random generator per device, all seeded by manual_seed. Nothing in minidl draws from
# NumPy's global state, so a user's own np.random calls cannot change a training run.
_seed = [None]
_generators: dict = {}


def manual_seed(seed: int) -> None:
    """Seed every generator of minidl (CPU now, each GPU when first used)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if seed < 0:   # NumPy's generators take only non-negative seeds
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed}")
    _seed[0] = int(seed)
    _generators.clear()


def generator(device: "str | Device | None" = None):
    """The generator of ``device``: numpy.random.Generator on CPU, cupy's on a GPU."""
    device = Device.parse(device) if device is not None else CPU
    gen = _generators.get(device)
    if gen is None:
        if device.type == "cpu":
            gen = np.random.default_rng(_seed[0])
        else:
            cupy = import_cupy()
            with cupy.cuda.Device(device.index):
                gen = cupy.random.default_rng(_seed[0])
        _generators[device] = gen
    return gen

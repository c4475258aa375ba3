"""Compile the .cu files of minidl.kernels once per (file, device) and hand out kernels.

A .cu file is read through importlib.resources (it is package data of minidl.kernels),
compiled by NVRTC through ``cupy.RawModule`` the first time one of its kernels is asked
for on a device, and kept in a dictionary keyed by (file, device). CuPy also caches the
compiled binary on disk, so a new process skips NVRTC; where the default cache folder is
not writable, CUPY_CACHE_DIR is pointed at a temporary folder instead.

Kernel names: an entry point ``name`` of a family exists once per element type, as
``name_float`` and ``name_double`` (``kernel("pool.cu", "max_pool2d_forward", x.dtype)``);
a kernel that does not depend on the element type is asked for with ``dtype=None``.

CuPy is imported inside the functions only: importing this module never touches CUDA.
"""
from __future__ import annotations

import importlib.resources
import os
import tempfile
import threading

import numpy as np

from ..backend import import_cupy

__all__ = ["source", "kernel", "elementwise", "grid_size", "kernel_suffix", "THREADS",
           "CU_FILES"]

# The .cu files of the package, one per family (the tests check that they all exist).
CU_FILES = ("activation.cu", "batchnorm.cu", "dropout.cu", "im2col.cu", "pool.cu",
            "softmax_xent.cu")

THREADS = 256  # block size of the elementwise (grid-stride) kernels
_MAX_BLOCKS = 65535  # grid-stride loops cover any size with a capped grid

_SUFFIX = {np.dtype(np.float32): "_float", np.dtype(np.float64): "_double"}
_OPTIONS = ("--std=c++14",)

_lock = threading.Lock()
_modules: dict = {}      # (file, device id) -> cupy.RawModule
_kernels: dict = {}      # (file, entry point, device id) -> cupy.RawKernel
_elementwise: dict = {}  # (file, name) -> cupy.ElementwiseKernel (it caches per device)


def source(filename: str) -> str:
    """The CUDA source of ``filename``, read from the installed package minidl.kernels."""
    if filename not in CU_FILES:
        raise ValueError(f"kernels: unknown source file {filename!r}; expected one of "
                         f"{CU_FILES}")
    return importlib.resources.files("minidl.kernels").joinpath(filename).read_text()


def kernel_suffix(dtype) -> str:
    """'_float' or '_double': the entry-point suffix of an element type."""
    dtype = np.dtype(dtype)
    if dtype not in _SUFFIX:
        raise TypeError(f"kernels: expected float32 or float64 arrays, got dtype {dtype}")
    return _SUFFIX[dtype]


def _ensure_cache_dir() -> None:
    """Point CUPY_CACHE_DIR at a writable folder when the default one is not writable."""
    if os.environ.get("CUPY_CACHE_DIR"):
        return
    default = os.path.join(os.path.expanduser("~"), ".cupy", "kernel_cache")
    try:
        os.makedirs(default, exist_ok=True)
        writable = os.access(default, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        # Recompiling every kernel in every process would cost seconds per run.
        fallback = os.path.join(tempfile.gettempdir(), "minidl-cupy-kernel-cache")
        os.makedirs(fallback, exist_ok=True)
        os.environ["CUPY_CACHE_DIR"] = fallback


def _module(filename: str, device_id: int):
    key = (filename, device_id)
    module = _modules.get(key)
    if module is None:
        cupy = import_cupy()
        _ensure_cache_dir()
        module = cupy.RawModule(code=source(filename), options=_OPTIONS)
        _modules[key] = module
    return module


def kernel(filename: str, name: str, dtype=None):
    """The compiled kernel ``name`` of ``filename`` for the element type ``dtype``.

    Args:
        filename: a file of CU_FILES, e.g. "pool.cu".
        name: the entry point without its type suffix, e.g. "max_pool2d_forward".
        dtype: float32 or float64 (selects ``name_float`` / ``name_double``), or None for
            a kernel whose name has no suffix.
    Returns:
        A cupy.RawKernel for the current device: ``k((blocks,), (threads,), args)``.
    Raises:
        TypeError for an element type without a kernel.
    """
    entry = name if dtype is None else name + kernel_suffix(dtype)
    cupy = import_cupy()
    device_id = cupy.cuda.Device().id
    key = (filename, entry, device_id)
    found = _kernels.get(key)
    if found is None:
        with _lock:  # two threads must not compile the same module twice
            found = _kernels.get(key)
            if found is None:
                found = _module(filename, device_id).get_function(entry)
                _kernels[key] = found
    return found


def elementwise(filename: str, name: str, in_params: str, out_params: str,
                operation: str):
    """A cupy.ElementwiseKernel whose preamble is ``filename`` (built once per name).

    CuPy instantiates it for each element type and compiles it once per device.
    """
    key = (filename, name)
    found = _elementwise.get(key)
    if found is None:
        cupy = import_cupy()
        _ensure_cache_dir()
        preamble = "#define MINIDL_ELEMENTWISE_PREAMBLE\n" + source(filename)
        # No --std option here: CuPy's own headers, which its elementwise code includes,
        # need the standard CuPy picks (C++17 since CuPy 14; C++14 would fail there).
        found = cupy.ElementwiseKernel(in_params, out_params, operation,
                                       name="minidl_" + name, preamble=preamble)
        _elementwise[key] = found
    return found


def grid_size(total: int, threads: int = THREADS) -> int:
    """Blocks for a grid-stride loop over ``total`` items: enough, but at most 65535."""
    return max(1, min((int(total) + threads - 1) // threads, _MAX_BLOCKS))

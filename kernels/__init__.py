"""Hand-written CUDA kernels of minidl, installed as the package ``minidl.kernels``.

The .cu files beside this module are read with importlib.resources and compiled once
per (file, device) with cupy.RawModule; see loader.py. Each family has a launcher module
(im2col, pool, batchnorm, dropout, softmax_xent, activation) that takes raw CuPy arrays
plus the op's hyper-parameters and returns what the NumPy path of the op computes.

Nothing here imports CuPy at import time: a CPU-only run never touches CUDA. An op uses
a kernel through one branch at the top of its forward/backward:

>>> from minidl.kernels import use_kernels
>>> if use_kernels(x):
...     y, winner = pool_kernels.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, ceil)
"""
from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["use_kernels", "kernels_enabled"]

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def kernels_enabled() -> bool:
    """False when the environment variable MINIDL_KERNELS is "0" (read at every call)."""
    return os.environ.get("MINIDL_KERNELS", "1").strip() != "0"


def use_kernels(*arrays) -> bool:
    """True when every array given (None skipped) is a CuPy array and kernels are enabled.

    MINIDL_KERNELS=0 forces the plain CuPy array path, so tests can compare both on a GPU.
    The kernels exist for float32 and float64 only: an array of another type (float16,
    an integer type) gets False, so the op falls back to its array path.

    Args:
        *arrays: the raw arrays an op is about to work on.
    Returns:
        Whether the op should call its fused kernel.

    >>> use_kernels(np.zeros(3))
    False
    """
    device_array = _device_array_type()
    if device_array is None:     # the CPU-only case, first: ops ask at every call
        return False
    present = [a for a in arrays if a is not None]
    return bool(present) and all(isinstance(a, device_array) and a.dtype in _KERNEL_DTYPES
                                 for a in present) and kernels_enabled()


def _device_array_type():
    """cupy.ndarray, or None when CuPy was never imported.

    tests/test_kernel_dispatch.py swaps in numpy.ndarray to run the ops' kernel branches
    on the CPU through kernels/emulate.py.
    """
    cupy = sys.modules.get("cupy")  # never import it here: CPU runs must not touch CUDA
    return None if cupy is None else cupy.ndarray

"""Tools for gradient-check test suites: minidl's own and its users'.

>>> from minidl.testing import gradcheck, assert_close, device_params
>>> @pytest.fixture(params=device_params(), scope="session")
... def device(request): return request.param
"""
from __future__ import annotations

import numpy as np

from ..backend import cuda_unavailable_reason, to_device
from .gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError", "assert_close", "device_params",
           "to_numpy"]


def to_numpy(x) -> np.ndarray:
    """A NumPy array from a Tensor, a NumPy/CuPy array, a torch tensor or a number."""
    from ..tensor import Tensor
    if isinstance(x, Tensor):
        return x.numpy()
    if hasattr(x, "detach") and hasattr(x, "cpu"):      # a torch tensor
        return x.detach().cpu().numpy()
    return np.asarray(to_device(x, "cpu") if hasattr(x, "__cuda_array_interface__") else x)


def assert_close(actual, expected, rtol: float = 1e-7, atol: float = 0.0,
                 check_shape: bool = True, msg: str = "") -> None:
    """Assert |actual - expected| <= atol + rtol * |expected| elementwise.

    Accepts Tensors, NumPy/CuPy arrays, torch tensors and numbers; reports the worst
    element's index and both values.
    """
    a, e = to_numpy(actual), to_numpy(expected)
    if check_shape and a.shape != e.shape:
        raise AssertionError(f"{msg}shape mismatch: actual {a.shape}, expected {e.shape}")
    a64 = a.astype(np.float64) if a.dtype.kind in "biuf" else a
    e64 = e.astype(np.float64) if e.dtype.kind in "biuf" else e
    a64, e64 = np.broadcast_arrays(a64, e64)
    # Where either side is inf or nan, only the same value on both sides is close (with
    # the bound alone, inf against -inf passed: inf <= rtol * inf).
    nonfinite = ~np.isfinite(a64) | ~np.isfinite(e64)
    same_nonfinite = (a64 == e64) | (np.isnan(a64) & np.isnan(e64))
    with np.errstate(invalid="ignore"):     # inf - inf: nan
        err = np.abs(a64 - e64)
        bound = atol + rtol * np.abs(e64)
        bad = np.where(nonfinite, ~same_nonfinite, ~(err <= bound))
    if bad.any():
        with np.errstate(invalid="ignore"):
            excess = np.nan_to_num(err - bound, nan=np.inf)
        k = np.unravel_index(int(np.argmax(np.where(bad, excess, -1))), a64.shape) \
            if a64.ndim else ()
        raise AssertionError(
            f"{msg}not close: {int(bad.sum())} of {bad.size} elements differ; worst at "
            f"index {tuple(int(i) for i in k)}: actual {_num(a64[k])}, expected {_num(e64[k])} "
            f"(rtol {rtol}, atol {atol})")


def _num(v):
    return repr(v.item()) if hasattr(v, "item") else repr(v)


def device_params():
    """pytest params for a ``device`` fixture: 'cpu', and 'cuda' (skipped without a GPU).

    >>> @pytest.fixture(params=md.testing.device_params(), scope="session")
    ... def device(request):
    ...     return request.param
    """
    import pytest
    reason = cuda_unavailable_reason()
    cuda = pytest.param("cuda", marks=[pytest.mark.gpu] + (
        [pytest.mark.skip(reason=reason)] if reason else []), id="cuda")
    return [pytest.param("cpu", id="cpu"), cuda]

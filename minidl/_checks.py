"""Argument checks shared by the public functions, so every message reads the same way.

Each helper raises TypeError (a value of the wrong kind) or ValueError (the right kind,
a wrong value) whose message is ``"<op>: <name> must be <expectation>, got <given>"``,
and returns the value normalised (a Python int or float, a non-negative dim).

>>> from minidl._checks import int_arg
>>> int_arg("chunk", "chunks", 0, low=1)
Traceback (most recent call last):
ValueError: chunk: chunks must be an int >= 1, got 0
"""
from __future__ import annotations

import math
import numbers

__all__ = ["describe", "tensor_arg", "int_arg", "real_arg", "dim_arg"]


def describe(value) -> str:
    """What was given, in a few words: a Tensor's dtype and shape, a number's repr."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} Tensor of shape {value.shape}"
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return f"a {type(value).__name__} of dtype {value.dtype} and shape {value.shape}"
    if value is None or isinstance(value, (numbers.Number, str)):
        return repr(value)
    return f"a {type(value).__name__}"


def tensor_arg(op: str, name: str, value, float_only: bool = False):
    """``value`` itself when it is a Tensor (of a float dtype, with ``float_only``)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a minidl Tensor, got {describe(value)}")
    if float_only and value.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float Tensor, got dtype {value.dtype}")
    return value


def same_device(op: str, input, input_name: str = "input", **others) -> None:
    """Each Tensor in ``others`` (by its argument name; None skipped) must be on input's
    device. An op computes where its input lives: a second tensor elsewhere is refused,
    as in PyTorch, and the message names it and both devices."""
    for name, value in others.items():
        if isinstance(value, Tensor) and value.device != input.device:
            raise ValueError(f"{op}: {name} is on device {value.device} but {input_name} is "
                             f"on device {input.device}; move both to one device with "
                             f".to(device)")


def int_arg(op: str, name: str, value, low=None, high=None) -> int:
    """An int (not a bool) in [low, high], as a Python int."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got {describe(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"<= {high}" if low is None else \
            f"in [{low}, {high}]"
        raise ValueError(f"{op}: {name} must be an int {bounds}, got {value!r}")
    return int(value)


def real_arg(op: str, name: str, value, low=None, high=None, low_open: bool = False,
             high_open: bool = False) -> float:
    """A finite real number (not a bool, not NaN) in the given bounds, as a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a real number, got {describe(value)}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if math.isnan(value) or too_low or too_high:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high}")
        bounds = f" {' and '.join(parts)}" if parts else " (not NaN)"
        raise ValueError(f"{op}: {name} must be a number{bounds}, got {value!r}")
    return value


def dim_arg(op: str, name: str, dim, ndim: int, extra: int = 0) -> int:
    """A dim of a tensor of ``ndim`` dims (``extra`` more for a dim that is inserted),
    negative dims counting from the end; returned in [0, ndim + extra)."""
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{op}: {name} must be an int, got {describe(dim)}")
    size = max(ndim + extra, 1)
    if not -size <= dim < size:
        raise ValueError(f"{op}: {name} {dim} is out of range for a tensor of {ndim} "
                         f"dimensions (expected a dim in [{-size}, {size - 1}])")
    return int(dim) % size


# tensor.py imports this module at its end, once Tensor exists. An import inside each
# check would cost microseconds per op call (the import machinery runs every time).
from .tensor import Tensor  # noqa: E402

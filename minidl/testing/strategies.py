"""Hypothesis strategies for minidl's tests and users' own suites.

>>> from minidl.testing import strategies as mst
>>> @given(mst.arrays(mst.shapes(max_dims=3)))
... def test_exp(a): ...
"""
from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

__all__ = ["shapes", "broadcastable_shapes", "arrays", "distinct_arrays", "conv_params",
           "pool_params", "conv_output_size"]


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5):
    """Array shapes with each side in [min_side, max_side]."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims,
                    max_size=max_dims).map(tuple)


@st.composite
def broadcastable_shapes(draw, min_dims: int = 0, max_dims: int = 4, max_side: int = 4):
    """A pair of shapes that broadcast together (sizes of 1 and missing leading dims)."""
    full = draw(shapes(min_dims, max_dims, 1, max_side))
    a = [n if draw(st.booleans()) else 1 for n in full]
    b = [n if draw(st.booleans()) else 1 for n in full]
    a = a[draw(st.integers(0, len(a))):] if a else a
    b = b[draw(st.integers(0, len(b))):] if b else b
    return tuple(a), tuple(b)


@st.composite
def arrays(draw, shape, dtype=np.float64, magnitude: float = 1.0, seed=None):
    """A normal(0, magnitude) array of ``shape`` (a shape or a strategy of shapes).

    The values come from a drawn seed, so a failing example reproduces exactly.
    """
    if not isinstance(shape, tuple):
        shape = draw(shape)
    seed = draw(st.integers(0, 2**32 - 1)) if seed is None else seed
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * magnitude, dtype=dtype)


@st.composite
def distinct_arrays(draw, shape, dtype=np.float64, gap: float = 1e-2, magnitude: float = 1.0):
    """Values at least ``gap`` apart and away from 0: no ties for max, no kinks for ReLU.

    Finite differences with a step far below ``gap`` then never cross a kink.
    """
    if not isinstance(shape, tuple):
        shape = draw(shape)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    values = (np.arange(n) - n // 2 + 0.5) * gap  # half-integer multiples: 0 is never hit
    values = values * max(1.0, magnitude / max(n * gap, 1e-12))
    return rng.permutation(values).reshape(shape).astype(dtype)


def conv_output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@st.composite
def conv_params(draw, max_batch=2, max_channels=4, max_size=7, max_kernel=3,
                max_stride=3, max_dilation=2, allow_groups=True):
    """Keyword arguments of a valid conv2d: shapes, stride, padding, dilation, groups.

    Returns a dict with x_shape (N, C, H, W), w_shape (O, C/groups, kh, kw), stride,
    padding, dilation and groups (all pairs), drawn so the output is at least 1x1.
    """
    groups = draw(st.integers(1, 3)) if allow_groups else 1
    cin = groups * draw(st.integers(1, max(1, max_channels // groups)))
    cout = groups * draw(st.integers(1, max(1, max_channels // groups)))
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    dh, dw = draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation))
    ph, pw = draw(st.integers(0, kh // 2 + 1)), draw(st.integers(0, kw // 2 + 1))
    h = draw(st.integers(1, max_size))
    w = draw(st.integers(1, max_size))
    assume(conv_output_size(h, kh, sh, ph, dh) >= 1 and conv_output_size(w, kw, sw, pw, dw) >= 1)
    n = draw(st.integers(1, max_batch))
    return dict(x_shape=(n, cin, h, w), w_shape=(cout, cin // groups, kh, kw),
                stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)


@st.composite
def pool_params(draw, max_batch=2, max_channels=3, max_size=8, max_kernel=3, max_stride=3,
                max_dilation=2, ceil_mode=None):
    """Keyword arguments of a valid max/avg pooling: padding at most half the kernel and
    (with ceil_mode drawn too) an output of at least 1x1."""
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation))
    ceil = draw(st.booleans()) if ceil_mode is None else ceil_mode
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    assume(h + 2 * ph >= dh * (kh - 1) + 1 and w + 2 * pw >= dw * (kw - 1) + 1)
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    return dict(x_shape=(n, c, h, w), kernel_size=(kh, kw), stride=(sh, sw),
                padding=(ph, pw), dilation=(dh, dw), ceil_mode=ceil)

"""interpolate (nearest, bilinear) and pad: gradients, hand examples, PyTorch parity."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.ops.resize import interpolate, linear_weights, nearest_indices
from minidl.ops.shape import pad
from minidl.testing import assert_close, gradcheck
from minidl.testing import strategies as mst


def _t(a, device, requires_grad=False):
    return md.tensor(a, device=device, requires_grad=requires_grad)


# ---- hand examples --------------------------------------------------------------------
def test_bilinear_by_hand(device):
    x = _t(np.array([[[[0.0, 1.0]]]]), device)
    # align_corners: the corner pixels map onto each other
    assert_close(interpolate(x, size=(1, 3), mode="bilinear", align_corners=True),
                 [[[[0.0, 0.5, 1.0]]]], rtol=1e-12)
    # pixel areas: src = (dst + 0.5) / 2 - 0.5, clamped at 0 -> 0, 0.25, 0.75, 1
    assert_close(interpolate(x, scale_factor=(1, 2), mode="bilinear"),
                 [[[[0.0, 0.25, 0.75, 1.0]]]], rtol=1e-12)


def test_nearest_by_hand(device):
    x = _t(np.arange(6.0).reshape(1, 1, 2, 3), device)
    y = interpolate(x, scale_factor=2)
    np.testing.assert_array_equal(y.numpy()[0, 0], np.repeat(np.repeat(
        np.arange(6.0).reshape(2, 3), 2, axis=0), 2, axis=1))
    np.testing.assert_array_equal(interpolate(x, size=(1, 2)).numpy()[0, 0], [[0.0, 1.0]])


def test_weights_rows_sum_to_one():
    for in_size, out_size in [(1, 4), (4, 1), (5, 3), (3, 8), (7, 7)]:
        for align in (False, True):
            a = linear_weights(in_size, out_size, None, align, np.float64)
            np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-15)
            assert (a >= 0).all()
        idx = nearest_indices(in_size, out_size)
        assert idx.min() >= 0 and idx.max() < in_size


def test_backward_scatters_with_the_forward_weights(device):
    # <interpolate(x), g> = <x, interpolate^T(g)>: the backward is the transposed map
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 5, 7))
    for mode, align in (("nearest", None), ("bilinear", False), ("bilinear", True)):
        X = _t(x, device, True)
        y = interpolate(X, size=(5, 7), mode=mode, align_corners=align)
        y.backward(_t(g, device))
        assert_close((y.numpy() * g).sum(), (x * X.grad.numpy()).sum(), rtol=1e-12)


# ---- gradients ------------------------------------------------------------------------
@st.composite
def resize_cases(draw):
    shape = draw(st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 4),
                           st.integers(1, 4)))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    align = draw(st.booleans()) if mode == "bilinear" else None
    if draw(st.booleans()):
        kw = dict(size=(draw(st.integers(1, 6)), draw(st.integers(1, 6))))
    else:
        scale = (draw(st.sampled_from([0.5, 0.75, 1.3, 2.0, 2.5])),
                 draw(st.sampled_from([0.6, 1.0, 1.5, 3.0])))
        assume(int(shape[2] * scale[0]) >= 1 and int(shape[3] * scale[1]) >= 1)
        kw = dict(scale_factor=scale)
    return shape, dict(kw, mode=mode, align_corners=align)


@settings(max_examples=20)
@given(case=resize_cases(), seed=st.integers(0, 2**16))
def test_interpolate_gradcheck(device, case, seed):
    shape, kw = case
    X = _t(np.random.default_rng(seed).standard_normal(shape), device, True)
    assert gradcheck(lambda a: interpolate(a, **kw), [X])


@settings(max_examples=15)
@given(x=mst.arrays(st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(2, 4),
                              st.integers(2, 4))),
       mode=st.sampled_from(["constant", "reflect", "replicate"]),
       widths=st.tuples(*[st.integers(0, 1)] * 4), value=st.sampled_from([0.0, -1.5]))
def test_pad_gradcheck(device, x, mode, widths, value):
    X = _t(x, device, True)
    kw = dict(value=value) if mode == "constant" else {}
    assert gradcheck(lambda a: pad(a, widths, mode=mode, **kw), [X])


# ---- PyTorch parity -------------------------------------------------------------------
INTERP_CASES = [
    dict(size=(7, 9)), dict(size=(3, 2)), dict(size=(1, 1)), dict(size=(5, 13)),
    dict(scale_factor=2), dict(scale_factor=0.5), dict(scale_factor=(1.5, 0.45)),
    dict(scale_factor=1.1),             # output of the input's size: PyTorch copies
    dict(scale_factor=(2.1, 1.7)),      # output twice the input: nearest repeats
    dict(scale_factor=(0.7, 3.0)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", False),
                                        ("bilinear", True)])
def test_interpolate_matches_torch(device, dtype, mode, align):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    for kw in INTERP_CASES:
        x = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
        X = _t(x, device, True)
        y = interpolate(X, mode=mode, align_corners=align, **kw)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align, **kw)
        gy = rng.standard_normal(y.shape).astype(dtype)
        y.backward(_t(gy, device))
        ty.backward(torch.tensor(gy))
        assert y.dtype == np.dtype(dtype) and X.grad.dtype == np.dtype(dtype)
        assert_close(y, ty, msg=f"{kw} forward: ", **tol)
        assert_close(X.grad, tx.grad, msg=f"{kw} backward: ", **tol)


PAD_CASES = [((1, 2, 0, 1), "constant", 0.0), ((2, 0, 1, 3), "constant", 2.5),
             ((1, 2, 2, 1), "reflect", 0.0), ((3, 0, 0, 2), "reflect", 0.0),
             ((1, 2, 3, 0), "replicate", 0.0), ((2, 2), "replicate", 0.0),
             ((1, 1), "reflect", 0.0)]


@pytest.mark.parametrize("widths,mode,value", PAD_CASES,
                         ids=[f"{c[1]}-{c[0]}" for c in PAD_CASES])
@pytest.mark.parametrize("ndim", [3, 4])
def test_pad_matches_torch(device, widths, mode, value, ndim):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 5)[4 - ndim:])
    X = _t(x, device, True)
    kw = dict(value=value) if mode == "constant" else {}
    y = pad(X, widths, mode=mode, **kw)
    tx = torch.tensor(x, requires_grad=True)
    # PyTorch pads only the last dim of 2-D/3-D inputs with (left, right) in these modes;
    # padding the last dim does not mix the leading ones, so fold them together there
    flat = tx.reshape(-1, *x.shape[-2:]) if len(widths) == 2 and ndim == 4 else tx
    ty = torch.nn.functional.pad(flat, widths, mode=mode, **kw).reshape(y.shape)
    gy = rng.standard_normal(y.shape)
    y.backward(_t(gy, device))
    ty.backward(torch.tensor(gy))
    assert_close(y, ty, rtol=1e-15)
    assert_close(X.grad, tx.grad, rtol=1e-13, atol=1e-15)


# ---- bad input ------------------------------------------------------------------------
def test_interpolate_bad_input(device):
    x = md.randn(1, 2, 4, 4, device=device)
    with pytest.raises(ValueError, match="interpolate: expected a 4-D input"):
        interpolate(md.randn(2, 4, 4, device=device), size=(2, 2))
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        interpolate(x, size=(2, 2), scale_factor=2)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        interpolate(x)
    with pytest.raises(ValueError, match="align_corners"):
        interpolate(x, size=(2, 2), mode="nearest", align_corners=True)
    with pytest.raises(ValueError, match="mode"):
        interpolate(x, size=(2, 2), mode="bicubic")
    with pytest.raises(ValueError, match="size must be positive"):
        interpolate(x, size=(0, 2))
    with pytest.raises(ValueError, match="size"):
        interpolate(x, size=(1, 2, 3))
    with pytest.raises(ValueError, match="scale_factor"):
        interpolate(x, scale_factor=-1.0)
    with pytest.raises(ValueError, match="empty output"):
        interpolate(x, scale_factor=0.1)
    with pytest.raises(TypeError, match="float"):
        interpolate(md.tensor(np.ones((1, 1, 2, 2), dtype=np.int64), device=device), size=3)

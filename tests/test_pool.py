"""Pooling: gradients, loop references, ties, PyTorch parity (with indices), errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.ops.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,
                             max_pool2d)
from minidl.reference import pool as ref
from minidl.testing import assert_close, gradcheck
from minidl.testing import strategies as mst


def rand(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def leaf(array, device):
    return md.tensor(array, device=device, requires_grad=True)


def max_kwargs(p):
    return dict(kernel_size=p["kernel_size"], stride=p["stride"], padding=p["padding"],
                dilation=p["dilation"], ceil_mode=p["ceil_mode"])


@st.composite
def avg_case(draw):
    """pool_params without dilation, plus the averaging options."""
    p = draw(mst.pool_params(max_dilation=1))
    del p["dilation"]
    p["count_include_pad"] = draw(st.booleans())
    p["divisor_override"] = draw(st.sampled_from([None, None, 1, 5]))
    p["seed"] = draw(st.integers(0, 2**16))
    return p


def avg_kwargs(p):
    return {k: p[k] for k in ("kernel_size", "stride", "padding", "ceil_mode",
                              "count_include_pad", "divisor_override")}


# ---- gradients -------------------------------------------------------------------------
@settings(max_examples=15)
@given(p=mst.pool_params(), data=st.data())
def test_max_pool2d_gradcheck_drawn(device, p, data):
    # Distinct values: finite differences never cross a change of winner.
    x = leaf(data.draw(mst.distinct_arrays(p["x_shape"])), device)
    gradcheck(lambda t: max_pool2d(t, **max_kwargs(p)), [x])


@settings(max_examples=15)
@given(p=avg_case())
def test_avg_pool2d_gradcheck_drawn(device, p):
    x = leaf(rand(p["x_shape"], p["seed"]), device)
    gradcheck(lambda t: avg_pool2d(t, **avg_kwargs(p)), [x])


@pytest.mark.parametrize("x_shape, kwargs", [
    ((2, 2, 6, 6), dict(kernel_size=2)),                                       # tiles
    ((1, 2, 7, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 1, 6, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),  # dropped window
    ((1, 2, 7, 8), dict(kernel_size=2, stride=3)),                             # stride > kernel
    ((1, 2, 9, 7), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 3))),
])
def test_max_pool2d_gradcheck_cases(device, x_shape, kwargs):
    x = leaf(np.random.default_rng(0).permutation(np.prod(x_shape)).reshape(x_shape) * 0.01,
             device)
    gradcheck(lambda t: max_pool2d(t, **kwargs), [x])


@pytest.mark.parametrize("x_shape, out", [((1, 2, 7, 9), (3, 4)), ((2, 1, 3, 2), (5, 7)),
                                          ((1, 2, 6, 8), (2, None)), ((1, 1, 5, 5), 1)])
def test_adaptive_pooling_gradcheck(device, x_shape, out):
    x = leaf(np.random.default_rng(0).permutation(np.prod(x_shape)).reshape(x_shape) * 0.01,
             device)
    gradcheck(lambda t: adaptive_avg_pool2d(t, out), [x])
    gradcheck(lambda t: adaptive_max_pool2d(t, out), [x])


@settings(max_examples=8)
@given(shape=mst.shapes(4, 4, 1, 6), out=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       data=st.data())
def test_adaptive_pooling_gradcheck_drawn(device, shape, out, data):
    x = leaf(data.draw(mst.distinct_arrays(shape)), device)
    gradcheck(lambda t: adaptive_avg_pool2d(t, out), [x])
    gradcheck(lambda t: adaptive_max_pool2d(t, out), [x])


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=1,
                                                                padding=1)])
def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum(device, kwargs):
    x = np.array([[[[1., 5., 5., 0.],
                    [5., 2., 5., 5.],
                    [0., 0., 3., 3.],
                    [0., 0., 3., 3.]]]])
    X = leaf(x, device)
    y, idx = max_pool2d(X, return_indices=True, **kwargs)
    gy = rand(y.shape, 0)
    y.backward(md.tensor(gy, device=device))
    expected = ref.max_pool2d_backward(x, gy, **{k: (v, v) for k, v in kwargs.items()},
                                       **({} if "stride" in kwargs else
                                          {"stride": (kwargs["kernel_size"],) * 2}))
    assert_close(X.grad, expected, rtol=0, atol=0)
    if kwargs == dict(kernel_size=2):
        # window (0, 0) holds 1, 5, 5, 2: the first 5 is at flat index 1
        np.testing.assert_array_equal(idx.numpy()[0, 0], [[1, 2], [8, 10]])
        assert X.grad.numpy()[0, 0, 1, 0] == 0 and X.grad.numpy()[0, 0, 3, 3] == 0


def test_adaptive_max_pool2d_ties_go_to_the_first_maximum(device):
    x = np.zeros((1, 1, 3, 5))
    X = leaf(x, device)
    y, idx = adaptive_max_pool2d(X, (2, 2), return_indices=True)
    y.backward(md.tensor(np.ones((1, 1, 2, 2)), device=device))
    # bins rows [0,2) [1,3), columns [0,3) [2,5): the first cell of each bin wins
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[0, 2], [5, 7]])
    assert X.grad.numpy().sum() == 4


def test_nan_wins_as_in_torch(device):
    torch = pytest.importorskip("torch")
    x = -np.arange(36.0).reshape(1, 1, 6, 6)
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[0, 0, 4, 0] = np.nan
    for mine, theirs, kwargs in (
            (max_pool2d, torch.nn.functional.max_pool2d, dict(kernel_size=2)),
            (max_pool2d, torch.nn.functional.max_pool2d, dict(kernel_size=3, stride=1,
                                                              padding=1)),
            (adaptive_max_pool2d, torch.nn.functional.adaptive_max_pool2d,
             dict(output_size=(4, 4)))):
        X = leaf(x, device)
        y, idx = mine(X, return_indices=True, **kwargs)
        ty, tidx = theirs(torch.tensor(x), return_indices=True, **kwargs)
        np.testing.assert_array_equal(y.numpy(), ty.numpy())       # NaN where torch has NaN
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
        y.backward(md.ones_like(y))
        assert X.grad.numpy()[0, 0, 1, 1] > 0 and X.grad.numpy()[0, 0, 4, 0] > 0
    y_ref, idx_ref = ref.max_pool2d_forward(x, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(max_pool2d(md.tensor(x, device=device), 3, 1, 1,
                                             return_indices=True)[1].numpy(), idx_ref)


def test_pooling_double_backward_is_refused(device):
    x = leaf(rand((1, 1, 4, 4), 0), device)
    with pytest.raises(NotImplementedError, match="MaxPool2d"):
        md.grad(max_pool2d(x, 2).sum(), [x], create_graph=True)


# ---- fast path == loop reference (float64, 1e-10) --------------------------------------
@settings(max_examples=25)
@given(p=mst.pool_params(max_size=9), data=st.data())
def test_max_pool2d_matches_reference(device, p, data):
    x = data.draw(mst.distinct_arrays(p["x_shape"])) if data.draw(st.booleans()) else \
        np.round(rand(p["x_shape"], 0), 0)       # many ties
    ref_kwargs = max_kwargs(p)
    y_ref, idx_ref = ref.max_pool2d_forward(x, **ref_kwargs)
    gy = rand(y_ref.shape, 1)
    gx_ref = ref.max_pool2d_backward(x, gy, **ref_kwargs)
    X = leaf(x, device)
    y, idx = max_pool2d(X, return_indices=True, **max_kwargs(p))
    y.backward(md.tensor(gy, device=device))
    assert_close(y, y_ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(idx.numpy(), idx_ref)
    assert idx.dtype == np.int64
    assert_close(X.grad, gx_ref, rtol=0, atol=1e-10)


def test_max_pool2d_window_of_padding_alone(device):
    # kernel 2 with dilation 2 and padding 1 over one row: the window reads rows -1 and 1,
    # both padding. PyTorch gives -inf; no input gets the window's gradient.
    kwargs = dict(kernel_size=(2, 1), stride=(1, 1), padding=(1, 0), dilation=(2, 1))
    x = np.full((1, 1, 1, 1), 0.5)
    y_ref, idx_ref = ref.max_pool2d_forward(x, **max_kwargs(dict(kwargs, ceil_mode=False)))
    X = leaf(x, device)
    y, idx = max_pool2d(X, return_indices=True, **kwargs)
    y.backward(md.ones_like(y))
    assert y.numpy()[0, 0, 0, 0] == -np.inf and y_ref[0, 0, 0, 0] == -np.inf
    assert idx.numpy()[0, 0, 0, 0] == idx_ref[0, 0, 0, 0] == -1
    assert not X.grad.numpy().any()
    assert not ref.max_pool2d_backward(x, np.ones((1, 1, 1, 1)),
                                       **max_kwargs(dict(kwargs, ceil_mode=False))).any()


@settings(max_examples=25)
@given(p=avg_case())
def test_avg_pool2d_matches_reference(device, p):
    x = rand(p["x_shape"], p["seed"])
    y_ref = ref.avg_pool2d_forward(x, **avg_kwargs(p))
    gy = rand(y_ref.shape, p["seed"] + 1)
    gx_ref = ref.avg_pool2d_backward(x, gy, **avg_kwargs(p))
    X = leaf(x, device)
    y = avg_pool2d(X, **avg_kwargs(p))
    y.backward(md.tensor(gy, device=device))
    assert_close(y, y_ref, rtol=0, atol=1e-10)
    assert_close(X.grad, gx_ref, rtol=0, atol=1e-10)


@settings(max_examples=20)
@given(shape=mst.shapes(4, 4, 1, 8), out=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       seed=st.integers(0, 2**16))
def test_adaptive_pooling_matches_reference(device, shape, out, seed):
    x = np.round(rand(shape, seed), 1)            # rounding makes ties likely
    gy = rand(shape[:2] + out, seed + 1)
    X = leaf(x, device)
    y = adaptive_avg_pool2d(X, out)
    y.backward(md.tensor(gy, device=device))
    assert_close(y, ref.adaptive_avg_pool2d_forward(x, out), rtol=0, atol=1e-10)
    assert_close(X.grad, ref.adaptive_avg_pool2d_backward(x, gy, out), rtol=0, atol=1e-10)
    y_ref, idx_ref = ref.adaptive_max_pool2d_forward(x, out)
    X = leaf(x, device)
    y, idx = adaptive_max_pool2d(X, out, return_indices=True)
    y.backward(md.tensor(gy, device=device))
    assert_close(y, y_ref, rtol=0, atol=0)
    np.testing.assert_array_equal(idx.numpy(), idx_ref)
    gx_ref = np.zeros(x.size)
    np.add.at(gx_ref, (np.arange(shape[0] * shape[1])[:, None] * shape[2] * shape[3] +
                       idx_ref.reshape(shape[0] * shape[1], -1)).ravel(), gy.ravel())
    assert_close(X.grad, gx_ref.reshape(shape), rtol=0, atol=1e-10)


def test_float32_stays_float32(device):
    x = md.tensor(rand((2, 3, 6, 6), 0, np.float32), device=device, requires_grad=True)
    outs = [max_pool2d(x, 2), max_pool2d(x, 3, 2, 1), avg_pool2d(x, 2),
            avg_pool2d(x, 3, 2, 1, ceil_mode=True), adaptive_avg_pool2d(x, (4, 5)),
            adaptive_max_pool2d(x, (4, 5)), adaptive_avg_pool2d(x, 1)]
    for y in outs:
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32


# ---- PyTorch parity --------------------------------------------------------------------
MAX_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 7, 9), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 6, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 7, 9), dict(kernel_size=(3, 2), stride=(1, 3), padding=(1, 1), dilation=(2, 3),
                        ceil_mode=True)),
    ((2, 2, 5, 5), dict(kernel_size=2, stride=1, dilation=2)),
    ((2, 3, 6, 4), dict(kernel_size=(3, 1))),                       # tiles, non-square
    ((1, 2, 9, 6), dict(kernel_size=3, stride=3)),                  # tiles, 3x3
]


@pytest.mark.parametrize("x_shape, kwargs", MAX_CASES)
def test_max_pool2d_matches_torch(device, x_shape, kwargs):
    torch = pytest.importorskip("torch")
    x = np.round(rand(x_shape, 0), 1)             # with ties
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool2d(tx, return_indices=True, **kwargs)
    gy = rand(tuple(ty.shape), 1)
    ty.backward(torch.tensor(gy))
    X = leaf(x, device)
    y, idx = max_pool2d(X, return_indices=True, **kwargs)
    y.backward(md.tensor(gy, device=device))
    assert_close(y, ty, rtol=0, atol=0)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    assert_close(X.grad, tx.grad, rtol=1e-12, atol=1e-12)


AVG_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 7, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 3, 7, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((1, 2, 6, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 6, 7), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
                        divisor_override=5)),
    ((1, 2, 5, 5), dict(kernel_size=2, stride=3)),
    ((2, 3, 6, 4), dict(kernel_size=(3, 1))),                       # tiles, non-square
    ((1, 2, 9, 6), dict(kernel_size=3, divisor_override=2)),        # tiles, 3x3
]


@pytest.mark.parametrize("x_shape, kwargs", AVG_CASES)
def test_avg_pool2d_matches_torch(device, x_shape, kwargs):
    torch = pytest.importorskip("torch")
    x = rand(x_shape, 0)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, **kwargs)
    gy = rand(tuple(ty.shape), 1)
    ty.backward(torch.tensor(gy))
    X = leaf(x, device)
    y = avg_pool2d(X, **kwargs)
    y.backward(md.tensor(gy, device=device))
    assert_close(y, ty, rtol=1e-12, atol=1e-12)
    assert_close(X.grad, tx.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, out", [((2, 3, 7, 9), (3, 4)), ((1, 2, 3, 2), (5, 7)),
                                          ((2, 2, 6, 8), (3, None)), ((2, 4, 7, 7), 1),
                                          ((1, 2, 10, 6), (4, 4))])
def test_adaptive_pooling_matches_torch(device, x_shape, out):
    torch = pytest.importorskip("torch")
    x = np.round(rand(x_shape, 0), 1)
    for mine, theirs in ((adaptive_avg_pool2d, torch.nn.functional.adaptive_avg_pool2d),
                         (adaptive_max_pool2d, torch.nn.functional.adaptive_max_pool2d)):
        tx = torch.tensor(x, requires_grad=True)
        X = leaf(x, device)
        extra = {} if mine is adaptive_avg_pool2d else {"return_indices": True}
        ty, y = theirs(tx, out, **extra), mine(X, out, **extra)
        if extra:
            np.testing.assert_array_equal(y[1].numpy(), ty[1].numpy())
            ty, y = ty[0], y[0]
        gy = rand(tuple(ty.shape), 1)
        ty.backward(torch.tensor(gy))
        y.backward(md.tensor(gy, device=device))
        assert_close(y, ty, rtol=1e-12, atol=1e-12)
        assert_close(X.grad, tx.grad, rtol=1e-12, atol=1e-12)


def test_max_pool2d_float32_large_matches_torch(device):
    torch = pytest.importorskip("torch")
    x = rand((4, 8, 16, 16), 0, np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, 3, 2, 1)
    gy = rand(tuple(ty.shape), 1, np.float32)
    ty.backward(torch.tensor(gy))
    X = leaf(x, device)
    y = max_pool2d(X, 3, 2, 1)
    y.backward(md.tensor(gy, device=device))
    assert_close(y, ty, rtol=0, atol=0)
    assert_close(X.grad, tx.grad, rtol=1e-6, atol=1e-6)


# ---- bad input -------------------------------------------------------------------------
def test_pooling_bad_input(device):
    x = md.tensor(np.zeros((2, 3, 8, 8), np.float32), device=device)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input.*got a 3-D input "
                                         r"of shape \(3, 8, 8\)"):
        max_pool2d(md.tensor(np.zeros((3, 8, 8), np.float32), device=device), 2)
    with pytest.raises(TypeError, match="avg_pool2d: input must be a float tensor, got dtype "
                                        "int64"):
        avg_pool2d(md.tensor(np.zeros((1, 1, 4, 4), np.int64), device=device), 2)
    with pytest.raises(ValueError, match=r"max_pool2d: padding must be at most half the kernel "
                                         r"size, got padding \(2, 2\) for kernel_size \(3, 3\)"):
        max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding must be at most half"):
        avg_pool2d(x, (2, 4), padding=(1, 3))
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size \(9, 9\).*larger than the "
                                         r"padded input \(8, 8\)"):
        max_pool2d(x, 9)
    with pytest.raises(ValueError, match=r"kernel_size \(3, 3\) \(dilated to \(7, 7\)\)"):
        max_pool2d(md.tensor(np.zeros((1, 1, 5, 5), np.float32), device=device), 3,
                   dilation=3)
    with pytest.raises(ValueError, match="max_pool2d: kernel_size must be positive, got 0"):
        max_pool2d(x, 0)
    with pytest.raises(ValueError, match="max_pool2d: stride must be positive, got 0"):
        max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="max_pool2d: padding must be non-negative, got -1"):
        max_pool2d(x, 2, padding=-1)
    with pytest.raises(ValueError, match="max_pool2d: dilation must be positive"):
        max_pool2d(x, 2, dilation=(0, 1))
    with pytest.raises(TypeError, match="max_pool2d: kernel_size must be an int or a pair"):
        max_pool2d(x, (2, 2, 2))
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must be a positive "
                                         "int or None, got 0"):
        avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size entries must be "
                                         "positive"):
        adaptive_avg_pool2d(x, (0, 2))
    with pytest.raises(TypeError, match="adaptive_max_pool2d: output_size must be"):
        adaptive_max_pool2d(x, (1, 2, 3))
    with pytest.raises(ValueError, match="adaptive_max_pool2d: expected a 4-D input"):
        adaptive_max_pool2d(md.tensor(np.zeros((8, 8), np.float32), device=device), 2)

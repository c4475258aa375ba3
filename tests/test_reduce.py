"""Reductions: values against NumPy, gradients (first and second) by finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.testing import assert_close, gradcheck, gradgradcheck
from minidl.testing import strategies as mst


def t(a, device, grad=True):
    return md.tensor(a, device=device, requires_grad=grad)


@st.composite
def array_and_dim(draw, min_dims=1):
    shape = draw(mst.shapes(min_dims, 3, 1, 4))
    dim = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    return draw(mst.distinct_arrays(shape)), dim, draw(st.booleans())


@given(array_and_dim())
@settings(max_examples=15)
def test_sum_mean(device, case):
    x, dim, keepdim = case
    axis = dim
    assert_close(t(x, device).sum(dim, keepdim), x.sum(axis=axis, keepdims=keepdim), rtol=1e-12)
    assert_close(t(x, device).mean(dim, keepdim), x.mean(axis=axis, keepdims=keepdim),
                 rtol=1e-12)
    gradcheck(lambda a: a.sum(dim, keepdim) * 1.5, [t(x, device)])
    gradcheck(lambda a: a.mean(dim, keepdim), [t(x, device)])


@given(array_and_dim())
@settings(max_examples=15)
def test_max_min_amax(device, case):
    x, dim, keepdim = case
    if dim is None:
        assert_close(t(x, device).max(), x.max())
        gradcheck(lambda a: a.max(), [t(x, device)])
        gradcheck(lambda a: a.min(), [t(x, device)])
    else:
        values, indices = t(x, device).max(dim, keepdim)
        assert_close(values, x.max(axis=dim, keepdims=keepdim))
        assert_close(indices, x.argmax(axis=dim) if not keepdim else
                     np.expand_dims(x.argmax(axis=dim), dim))
        gradcheck(lambda a: a.max(dim, keepdim).values, [t(x, device)])
        gradcheck(lambda a: a.min(dim, keepdim).values, [t(x, device)])
    gradcheck(lambda a: a.amax(dim, keepdim), [t(x, device)])


def test_max_ties_first_with_dim_and_shared_without(device):
    x = t(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), device)
    x.max(1).values.sum().backward()
    assert x.grad.numpy().tolist() == [[0, 1, 0], [1, 0, 0]]
    x.grad = None
    x.max().backward()
    assert x.grad.numpy().tolist() == [[0, 0.5, 0.5], [0, 0, 0]]


@given(array_and_dim(), st.sampled_from([0, 1]))
@settings(max_examples=15)
def test_var_std(device, case, correction):
    x, dim, keepdim = case
    n = x.size if dim is None else x.shape[dim]
    if n - correction <= 0:
        with pytest.raises(ValueError, match="degrees of freedom"):
            t(x, device).var(dim, keepdim, correction=correction)
        return
    assert_close(t(x, device).var(dim, keepdim, correction=correction),
                 x.var(axis=dim, keepdims=keepdim, ddof=correction), rtol=1e-10)
    assert_close(t(x, device).std(dim, keepdim, correction=correction),
                 x.std(axis=dim, keepdims=keepdim, ddof=correction), rtol=1e-10)
    gradcheck(lambda a: a.var(dim, keepdim, correction=correction), [t(x, device)])
    gradgradcheck(lambda a: a.var(dim, keepdim, correction=correction), [t(x, device)])


def test_argmax_and_logsumexp(device):
    x = np.array([[1.0, 5.0, 5.0], [7.0, -1.0, 0.0]])
    assert md.tensor(x, device=device).argmax(1).numpy().tolist() == [1, 0]
    assert md.tensor(x, device=device).argmax().item() == 3
    big = t(np.array([[1e4, 0.0, -1e4]]), device)
    assert_close(big.logsumexp(1), [1e4], rtol=1e-12)
    gradcheck(lambda a: a.logsumexp(1), [t(x, device)])
    gradgradcheck(lambda a: a.logsumexp(0), [t(x, device)])


def test_reduce_bad_dim_and_empty(device):
    x = md.ones(2, 3, device=device)
    with pytest.raises(ValueError, match="dim 2 is out of range"):
        x.sum(2)
    with pytest.raises(ValueError, match="empty"):
        md.zeros(0, 3, device=device).mean(0)
    assert md.zeros(0, 3, device=device).sum().item() == 0  # an empty sum is zero
    with pytest.raises(ValueError, match="empty"):
        md.zeros(0, 3, device=device).max()

"""dropout, dropout2d, drop_path: statistics, exact scaling, eval identity, seeds, grads."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.ops.dropout import drop_path, dropout, dropout2d
from minidl.testing import assert_close, gradcheck
from minidl.testing import strategies as mst

OPS = {"dropout": dropout, "dropout2d": dropout2d, "drop_path": drop_path}


def _ones(shape, device, dtype="float32", requires_grad=False):
    return md.ones(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


# ---- statistics and exact scaling -----------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_fraction_and_scale(device, p):
    md.manual_seed(123)
    y = dropout(_ones((200, 500), device), p=p).numpy()
    kept = y != 0
    # 100000 Bernoulli draws: the kept fraction is within 5 standard deviations of 1 - p
    sd = np.sqrt(p * (1 - p) / y.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sd
    np.testing.assert_array_equal(y[kept], np.float32(1 / (1 - p)))   # exact scale
    assert abs(y.mean() - 1) < 5 * sd / (1 - p)                        # expectation kept


def test_dropout2d_drops_whole_channels(device):
    md.manual_seed(5)
    p = 0.4
    y = dropout2d(_ones((64, 32, 3, 4), device), p=p).numpy()
    per_channel = y.reshape(64, 32, -1)
    # every (n, c) map is all zero or all 1/(1-p)
    assert np.all((per_channel == 0).all(-1) | (per_channel == np.float32(1 / (1 - p))).all(-1))
    kept = (per_channel != 0).all(-1).mean()
    assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / (64 * 32))


def test_drop_path_drops_whole_samples(device):
    md.manual_seed(6)
    p = 0.25
    y = drop_path(_ones((4000, 3, 2), device), p=p).numpy()
    per_sample = y.reshape(4000, -1)
    assert np.all((per_sample == 0).all(-1) | (per_sample == np.float32(1 / (1 - p))).all(-1))
    kept = (per_sample != 0).all(-1).mean()
    assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / 4000)


@pytest.mark.parametrize("name", list(OPS))
def test_eval_and_p0_are_identity(device, name):
    x = md.randn(3, 4, 2, 2, device=device)
    assert OPS[name](x, p=0.5, training=False) is x
    assert OPS[name](x, p=0.0, training=True) is x


@pytest.mark.parametrize("name", list(OPS))
def test_p1_gives_zeros_and_zero_grad(device, name):
    X = md.randn(3, 4, 2, 2, dtype="float64", device=device, requires_grad=True)
    y = OPS[name](X, p=1.0)
    assert not y.numpy().any()
    y.sum().backward()
    assert not X.grad.numpy().any()


@pytest.mark.parametrize("name", list(OPS))
def test_seeded_reproducibility(device, name):
    def draw():
        md.manual_seed(42)
        return OPS[name](md.ones(4, 6, 3, 3, device=device), p=0.5).numpy()
    first, second = draw(), draw()
    np.testing.assert_array_equal(first, second)
    # a user's own use of NumPy's global state changes nothing
    md.manual_seed(42)
    np.random.seed(999)
    np.random.random(10)
    np.testing.assert_array_equal(OPS[name](md.ones(4, 6, 3, 3, device=device), p=0.5).numpy(),
                                  first)
    md.manual_seed(43)
    assert not np.array_equal(OPS[name](md.ones(4, 6, 3, 3, device=device), p=0.5).numpy(),
                              first)


# ---- gradients ------------------------------------------------------------------------
@settings(max_examples=15)
@given(x=mst.arrays(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
                              st.integers(1, 3))),
       name=st.sampled_from(list(OPS)), p=st.sampled_from([0.2, 0.5, 0.9]))
def test_dropout_gradcheck(device, x, name, p):
    X = md.tensor(x, device=device, requires_grad=True)

    def fn(a):
        md.manual_seed(7)        # the same mask at every evaluation of the difference
        return OPS[name](a, p=p)

    assert gradcheck(fn, [X])


@pytest.mark.parametrize("name", list(OPS))
def test_backward_uses_the_saved_mask(device, name):
    md.manual_seed(8)
    X = md.randn(5, 4, 3, 3, dtype="float64", device=device, requires_grad=True)
    y = OPS[name](X, p=0.5)
    gy = np.random.default_rng(0).standard_normal(X.shape)
    y.backward(md.tensor(gy, device=device))
    mask = y.numpy() / X.numpy()          # 0 or 2 wherever x != 0
    assert set(np.unique(np.round(mask, 12))) <= {0.0, 2.0}
    assert_close(X.grad, gy * mask, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dtype_is_kept(device, dtype):
    X = md.ones(8, 4, 2, 2, dtype=dtype, device=device, requires_grad=dtype != "float16")
    for op in OPS.values():
        y = op(X, p=0.3)
        assert y.dtype == np.dtype(dtype)


# ---- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OPS))
def test_bad_p(device, name):
    x = md.randn(2, 3, 4, 4, device=device)
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=f"{name}: p must be a probability in"):
            OPS[name](x, p=p)
    with pytest.raises(TypeError, match="float"):
        OPS[name](md.tensor([[1, 2]], device=device), p=0.5)


def test_dropout2d_needs_4d(device):
    with pytest.raises(ValueError, match="dropout2d: expected a 4-D input"):
        dropout2d(md.randn(2, 3, 4, device=device))

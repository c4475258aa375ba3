"""Activations: erf, gradients, PyTorch parity, stability of (log-)softmax, bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.ops import activation as A
from minidl.ops import elementwise
from minidl.testing import assert_close, gradcheck
from minidl.testing import strategies as mst

small_shapes = mst.shapes(min_dims=1, max_dims=3, max_side=4)


# ---- erf ------------------------------------------------------------------------------
def test_erf_matches_math_erf_float64():
    x = np.concatenate([np.linspace(-7, 7, 20001), np.geomspace(1e-300, 30, 2000),
                        -np.geomspace(1e-300, 30, 2000),
                        [0.0, -0.0, 0.46875, 0.46875 + 1e-16, 4.0, 4.0 + 1e-15, 26.5, 40.0]])
    got = A.erf_array(x)
    want = np.array([math.erf(v) for v in x])
    assert got.dtype == np.float64
    # a few units in the last place, everywhere
    ulps = np.abs(got - want) / np.spacing(np.maximum(np.abs(want), 1e-300))
    assert ulps.max() <= 4, (ulps.max(), x[ulps.argmax()])


def test_erf_float32_special_values_and_symmetry():
    x = np.linspace(-6, 6, 1001).astype(np.float32)
    got = A.erf_array(x)
    assert got.dtype == np.float32
    want = np.array([math.erf(float(v)) for v in x])
    assert np.abs(got - want).max() < 3e-7
    np.testing.assert_array_equal(got, -A.erf_array(-x))
    special = A.erf_array(np.array([np.inf, -np.inf, np.nan]))
    assert special[0] == 1 and special[1] == -1 and np.isnan(special[2])


# ---- re-exports -----------------------------------------------------------------------
def test_core_activations_are_reexported():
    assert A.relu is elementwise.relu and A.sigmoid is elementwise.sigmoid
    assert A.tanh is elementwise.tanh


# ---- gradients ------------------------------------------------------------------------
@settings(max_examples=10)
@given(x=mst.distinct_arrays(small_shapes, magnitude=3.0),
       name=st.sampled_from(["relu", "sigmoid", "tanh"]))
def test_reexported_core_activations_gradcheck(device, x, name):
    X = md.tensor(x, device=device, requires_grad=True)
    assert gradcheck(getattr(A, name), [X])


@settings(max_examples=10)
@given(x=mst.distinct_arrays(small_shapes), slope=st.sampled_from([0.01, 0.2, -0.5, 1.5]))
def test_leaky_relu_gradcheck(device, x, slope):
    X = md.tensor(x, device=device, requires_grad=True)
    assert gradcheck(lambda a: A.leaky_relu(a, slope), [X])


@settings(max_examples=10)
@given(x=mst.arrays(small_shapes, magnitude=3.0), approximate=st.sampled_from(["none", "tanh"]))
def test_gelu_gradcheck(device, x, approximate):
    X = md.tensor(x, device=device, requires_grad=True)
    assert gradcheck(lambda a: A.gelu(a, approximate), [X])


@settings(max_examples=10)
@given(x=mst.arrays(small_shapes, magnitude=4.0))
def test_silu_gradcheck(device, x):
    X = md.tensor(x, device=device, requires_grad=True)
    assert gradcheck(A.silu, [X])


@settings(max_examples=10)
@given(x=mst.arrays(small_shapes, magnitude=2.0),
       bounds=st.sampled_from([(-1.0, 1.0), (-0.5, 2.0), (0.25, 0.75)]))
def test_hardtanh_gradcheck(device, x, bounds):
    X = md.tensor(x, device=device, requires_grad=True)
    assert gradcheck(lambda a: A.hardtanh(a, *bounds), [X])


@settings(max_examples=15)
@given(x=mst.arrays(small_shapes, magnitude=3.0), dim=st.integers(-3, 2),
       log=st.booleans())
def test_softmax_gradcheck(device, x, dim, log):
    dim = dim % x.ndim
    X = md.tensor(x, device=device, requires_grad=True)
    fn = A.log_softmax if log else A.softmax
    assert gradcheck(lambda a: fn(a, dim), [X])


def test_layer_activation_refuses_double_backward(device):
    X = md.randn(3, dtype="float64", device=device, requires_grad=True)
    with pytest.raises(NotImplementedError, match="GELU"):
        md.grad(A.gelu(X).sum(), [X], create_graph=True)


# ---- PyTorch parity -------------------------------------------------------------------
def _torch_cases(torch):
    F = torch.nn.functional
    return [
        ("leaky_relu", lambda t: A.leaky_relu(t), lambda t: F.leaky_relu(t)),
        ("leaky_relu-0.2", lambda t: A.leaky_relu(t, 0.2), lambda t: F.leaky_relu(t, 0.2)),
        ("gelu", lambda t: A.gelu(t), lambda t: F.gelu(t)),
        ("gelu-tanh", lambda t: A.gelu(t, "tanh"), lambda t: F.gelu(t, approximate="tanh")),
        ("silu", A.silu, F.silu),
        ("hardtanh", A.hardtanh, F.hardtanh),
        ("hardtanh-0-6", lambda t: A.hardtanh(t, 0.0, 6.0), lambda t: F.hardtanh(t, 0.0, 6.0)),
        ("softmax-1", lambda t: A.softmax(t, 1), lambda t: F.softmax(t, 1)),
        ("softmax-last", lambda t: A.softmax(t, -1), lambda t: F.softmax(t, -1)),
        ("log_softmax-0", lambda t: A.log_softmax(t, 0), lambda t: F.log_softmax(t, 0)),
        ("log_softmax-1", lambda t: A.log_softmax(t, 1), lambda t: F.log_softmax(t, 1)),
        ("relu", A.relu, F.relu), ("sigmoid", A.sigmoid, torch.sigmoid),
        ("tanh", A.tanh, torch.tanh),
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_match_torch(device, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 5, 3)) * 4).astype(dtype)
    x[0, 0, 0] = 0.0          # the kink: PyTorch's conventions for the gradient at 0
    gy = rng.standard_normal(x.shape).astype(dtype)
    # PyTorch's vectorised float32 tanh is itself off by ~1e-6 in the GELU tails
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    for name, ours, theirs in _torch_cases(torch):
        X = md.tensor(x, device=device, requires_grad=True)
        y = ours(X)
        y.backward(md.tensor(gy, device=device))
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.tensor(gy))
        assert y.dtype == np.dtype(dtype) and X.grad.dtype == np.dtype(dtype), name
        assert_close(y, ty, msg=f"{name} forward: ", **tol)
        assert_close(X.grad, tx.grad, msg=f"{name} backward: ", **tol)


# ---- stability ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_and_softmax_at_large_logits(device, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1, 3.0]], dtype=dtype)
    X = md.tensor(x, device=device, requires_grad=True)
    y = A.log_softmax(X, 1)
    lse = math.log1p(math.exp(-1))
    want = np.array([[0.0, -2e4, -1e4], [-math.log(3)] * 3, [-lse, -1 - lse, 3 - 1e4 - lse]])
    assert np.isfinite(y.numpy()).all()
    assert_close(y, want, rtol=1e-6, atol=1e-6)
    y.backward(md.ones(3, 3, dtype=dtype, device=device))
    g = X.grad.numpy()
    assert np.isfinite(g).all()
    assert_close(g, 1 - 3 * np.exp(want), rtol=1e-5, atol=1e-6)
    s = A.softmax(md.tensor(x, device=device), 1).numpy()
    assert np.isfinite(s).all()
    assert_close(s, np.exp(want), rtol=1e-5, atol=1e-7)


def test_log_softmax_with_minus_inf_entry(device):
    x = np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]])
    X = md.tensor(x, device=device, requires_grad=True)
    y = A.log_softmax(X, 1)
    assert y.numpy()[0, 1] == -np.inf and y.numpy()[1, 2] == -np.inf
    assert_close(y.numpy()[1, :2], [-math.log(2)] * 2, rtol=1e-12)
    y.backward(md.ones(2, 3, dtype="float64", device=device))
    assert np.isfinite(X.grad.numpy()).all()
    p = A.softmax(md.tensor(x, device=device), 1).numpy()
    assert p[0, 1] == 0 and np.isfinite(p).all()
    assert_close(p.sum(1), [1.0, 1.0], rtol=1e-12)


def test_gelu_and_silu_at_extremes(device):
    x = md.tensor([-1e4, -50.0, 50.0, 1e4], dtype="float32", device=device,
                  requires_grad=True)
    for fn in (A.gelu, lambda t: A.gelu(t, "tanh"), A.silu):
        x.grad = None
        y = fn(x)
        y.sum().backward()
        assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()
        assert_close(y.numpy()[[0, 3]], [0.0, 1e4], atol=1e-3)


# ---- bad input ------------------------------------------------------------------------
def test_activation_bad_input(device):
    x = md.randn(2, 3, device=device)
    with pytest.raises(ValueError, match="softmax: dim 2 is out of range"):
        A.softmax(x, 2)
    with pytest.raises(ValueError, match="log_softmax: dim -3"):
        A.log_softmax(x, -3)
    with pytest.raises(TypeError, match="dim must be an int"):
        A.softmax(x, None)
    with pytest.raises(ValueError, match="approximate"):
        A.gelu(x, "fast")
    with pytest.raises(ValueError, match="max_val"):
        A.hardtanh(x, 1.0, -1.0)
    with pytest.raises(TypeError, match="negative_slope"):
        A.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match="float"):
        A.gelu(md.tensor([1, 2], device=device))

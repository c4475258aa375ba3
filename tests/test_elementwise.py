"""Elementwise ops: forward against NumPy, gradients by gradcheck and gradgradcheck."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.testing import assert_close, gradcheck, gradgradcheck
from minidl.testing import strategies as mst


def t(a, device, grad=True):
    return md.tensor(a, device=device, requires_grad=grad)


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (md.maximum, np.maximum),
    "minimum": (md.minimum, np.minimum),
}


@pytest.mark.parametrize("name", list(BINARY))
@given(shapes=mst.broadcastable_shapes(max_dims=3), seed=st.integers(0, 2**16))
@settings(max_examples=10)
def test_binary_broadcast_forward_and_grad(device, name, shapes, seed):
    rng = np.random.default_rng(seed)
    a = np.asarray(rng.standard_normal(shapes[0]))
    b = np.asarray(rng.standard_normal(shapes[1]))
    if name == "div":
        b = np.sign(b) * (np.abs(b) + 0.5)       # away from zero
    if name in ("maximum", "minimum"):
        b = b + 0.3 * np.sign(b - 0.0) + 0.01  # ties are measure zero; keep a margin
    op, ref = BINARY[name]
    out = op(t(a, device), t(b, device))
    assert_close(out, ref(a, b), rtol=1e-12)
    gradcheck(op, [t(a, device), t(b, device)])


@pytest.mark.parametrize("name", ["add", "mul", "div"])
def test_binary_second_derivative(device, name):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 1)), rng.standard_normal((4,)) + 3
    gradgradcheck(BINARY[name][0], [t(a, device), t(b, device)])


UNARY = {
    "exp": (lambda x: x.exp(), np.exp, lambda a: a),
    "log": (lambda x: x.log(), np.log, lambda a: np.abs(a) + 0.5),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, lambda a: np.abs(a) + 0.5),
    "abs": (lambda x: x.abs(), np.abs, lambda a: a + 0.05 * np.sign(a)),
    "neg": (lambda x: -x, np.negative, lambda a: a),
    "pow3": (lambda x: x ** 3, lambda a: a ** 3, lambda a: a),
    "pow_half": (lambda x: x ** 0.5, np.sqrt, lambda a: np.abs(a) + 0.5),
    "relu": (lambda x: x.relu(), lambda a: np.maximum(a, 0), lambda a: a + 0.05 * np.sign(a)),
    "sigmoid": (lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), lambda a: a),
    "tanh": (lambda x: x.tanh(), np.tanh, lambda a: a),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5),
              lambda a: np.where(np.abs(np.abs(a) - 0.5) < 0.05, a + 0.1, a)),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(x=mst.arrays(mst.shapes(0, 3)))
@settings(max_examples=8)
def test_unary_forward_grad_and_second_derivative(device, name, x):
    op, ref, domain = UNARY[name]
    x = domain(x)
    assert_close(op(t(x, device)), ref(x), rtol=1e-12)
    gradcheck(op, [t(x, device)])
    if name not in ("relu", "abs", "clamp", "neg") and x.size:
        gradgradcheck(op, [t(x, device)])


def test_tensor_power_both_operands(device):
    a = t(np.abs(np.random.default_rng(0).standard_normal((2, 3))) + 0.5, device)
    b = t(np.random.default_rng(1).standard_normal((3,)), device)
    gradcheck(lambda x, y: x ** y, [a, b])
    gradgradcheck(lambda x, y: x ** y, [a, b])


def test_where_routes_gradients(device):
    x = t(np.arange(6.0).reshape(2, 3), device)
    y = t(-np.arange(6.0).reshape(2, 3), device)
    cond = x > 2
    out = md.where(cond, x, y)
    assert_close(out, np.where(np.arange(6).reshape(2, 3) > 2, np.arange(6.0).reshape(2, 3),
                               -np.arange(6.0).reshape(2, 3)))
    gradcheck(lambda a, b: md.where(cond, a, b), [x, y])


def test_sigmoid_is_stable_at_extremes(device):
    x = t(np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=np.float32), device)
    y = x.sigmoid()
    assert np.isfinite(y.numpy()).all()
    assert_close(y, [0, 3.7200760e-44, 0.5, 1, 1], atol=1e-30, rtol=1e-6)
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_python_scalars_keep_float32(device):
    x = md.ones(3, device=device)
    for y in (x * 2.5, 2.5 * x, x / 3, x - 1, 1 - x, x ** 2, x + np.float64(1.0)):
        assert y.dtype == np.float32


def test_comparisons_return_bool_without_graph(device):
    x = t(np.array([1.0, 2.0, 3.0]), device)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    assert m.numpy().tolist() == [False, True, True]
    assert ((x == 2.0) | (x < 1.5)).numpy().tolist() == [True, True, False]


def test_bad_broadcast_names_shapes(device):
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        md.ones(2, 3, device=device) + md.ones(4, device=device)


def test_clamp_bad_bounds():
    with pytest.raises(ValueError, match="min"):
        md.ones(2).clamp(1.0, 0.0)
    with pytest.raises(ValueError, match="min and max"):
        md.ones(2).clamp()

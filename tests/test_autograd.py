"""The tape: order, accumulation, graph freeing, deep graphs, grad modes, second order."""
import gc
import sys
import weakref

import numpy as np
import pytest

import minidl as md
from minidl.function import Function
from minidl.testing import assert_close


def test_fan_out_gradients_add(device):
    x = md.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x * x + x * 3 + x
    y.sum().backward()
    assert x.grad.numpy().tolist() == [6.0, 8.0]


def test_grad_accumulates_over_backward_calls(device):
    x = md.tensor([1.0, 2.0], device=device, requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.numpy().tolist() == [5.0, 5.0]


def test_broadcast_gradient_is_summed_to_operand_shape(device):
    a = md.ones(3, 1, device=device, requires_grad=True)
    b = md.ones(4, device=device, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and a.grad.numpy().ravel().tolist() == [4, 4, 4]
    assert b.grad.shape == (4,) and b.grad.numpy().tolist() == [3, 3, 3, 3]


def test_long_chain_has_no_recursion_limit(device):
    x = md.tensor([0.5], dtype="float64", device=device, requires_grad=True)
    y = x
    for _ in range(3 * sys.getrecursionlimit()):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    assert_close(x.grad, [1.0001 ** (3 * sys.getrecursionlimit())], rtol=1e-9)


def test_deep_mlp_backward(device):
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((4, 8)), device=device)
    weights = [md.tensor(rng.standard_normal((8, 8)) / np.sqrt(8), device=device,
                         requires_grad=True) for _ in range(200)]
    h = x
    for w in weights:
        h = (h @ w).tanh()
    h.sum().backward()
    assert all(w.grad is not None and np.isfinite(w.grad.numpy()).all() for w in weights)


def test_graph_is_released_after_backward(device):
    x = md.tensor(np.ones((100, 100)), device=device, requires_grad=True)
    y = x.exp()
    z = (y * 2).sum()
    fn = z.grad_fn
    saved_ref = weakref.ref(y.grad_fn)
    z.backward()
    assert not fn.__dict__.get("inputs")             # saved inputs dropped
    assert getattr(fn, "released", False)
    del y
    gc.collect()
    # the exp node no longer holds x's array, and backward a second time is refused
    assert saved_ref() is None or not saved_ref().__dict__.get("inputs")
    with pytest.raises(RuntimeError, match="second time"):
        z.backward()


def test_intermediate_arrays_are_freed(device):
    x = md.tensor(np.ones(10), device=device, requires_grad=True)
    y = x * 2
    ref = weakref.ref(y.data) if hasattr(y.data, "__weakref__") else None
    z = (y * y).sum()
    del y
    z.backward()
    gc.collect()
    if ref is not None:
        assert ref() is None


def test_retain_graph_allows_second_backward(device):
    x = md.tensor([1.0, 2.0], device=device, requires_grad=True)
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert x.grad.numpy().tolist() == [4.0, 8.0]


def test_no_grad_and_enable_grad(device):
    x = md.tensor([1.0], device=device, requires_grad=True)
    with md.no_grad():
        y = x * 2
        with md.enable_grad():
            w = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert w.requires_grad

    @md.no_grad()
    def f(a):
        return a * 3
    assert not f(x).requires_grad


def test_detach_and_requires_grad_(device):
    x = md.tensor([1.0], device=device, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    with pytest.raises(TypeError, match="float"):
        md.tensor([1, 2], device=device).requires_grad_()


def test_create_graph_second_derivative(device):
    x = md.tensor([0.3, -1.2], device=device, dtype="float64", requires_grad=True)
    (gx,) = md.grad((x ** 3).sum(), [x], create_graph=True)
    assert_close(gx, 3 * x.numpy() ** 2)
    gx.sum().backward()
    assert_close(x.grad, 6 * x.numpy())


def test_layer_op_refuses_double_backward(device):
    class Square(Function):  # array backward, like the layer ops
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return 2 * self.x * gy

    x = md.tensor([2.0], device=device, requires_grad=True)
    with pytest.raises(NotImplementedError, match="double backward through Square"):
        md.grad(Square().apply(x).sum(), [x], create_graph=True)


def test_non_scalar_backward_needs_grad(device):
    x = md.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(md.tensor([1.0, 10.0], device=device))
    assert x.grad.numpy().tolist() == [2.0, 20.0]
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(md.ones(3, device=device))


def test_retain_grad_on_intermediate(device):
    x = md.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    assert y.grad.numpy().tolist() == [6.0, 12.0]


def test_detect_anomaly_names_the_op(device):
    x = md.tensor([-1.0, 1.0], device=device, requires_grad=True)
    with md.detect_anomaly():
        with np.errstate(invalid="ignore"):
            with pytest.raises(FloatingPointError, match="Log"):
                x.log()
    x = md.tensor([0.0, 1.0], device=device, requires_grad=True)
    y = x.sqrt()     # forward is finite at 0; the gradient 1/(2*sqrt(0)) is not
    with md.detect_anomaly():
        with np.errstate(divide="ignore"):
            with pytest.raises(FloatingPointError, match="Sqrt produced NaN or inf in "
                                                         "backward"):
                y.sum().backward()


def test_mixing_devices_names_both():
    cupy = pytest.importorskip("cupy", reason="needs CuPy to hold a tensor on a GPU")
    if not md.cuda_available():
        pytest.skip(md.backend.cuda_unavailable_reason())
    with pytest.raises(ValueError, match="cpu.*cuda:0|cuda:0.*cpu"):
        md.ones(2) + md.ones(2, device="cuda")
    assert cupy  # imported only to detect a GPU


def test_backward_on_a_leaf_fills_its_grad(device):
    x = md.tensor([1.0, 2.0], device=device, requires_grad=True)
    x.backward(md.tensor([3.0, 4.0], device=device))
    assert x.grad.numpy().tolist() == [3.0, 4.0]

"""F.linear is one graph node (LinearFunction) whose backward is made of tensor ops."""
import numpy as np
import pytest

import minidl as md
import minidl.nn.functional as F
from minidl.testing import assert_close, gradcheck, gradgradcheck


def _t(shape, device, seed, requires_grad=True):
    data = np.random.default_rng(seed).standard_normal(shape)
    return md.tensor(data, device=device, requires_grad=requires_grad)


@pytest.mark.parametrize("x_shape", [(5, 4), (4,), (2, 3, 4)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradcheck_and_second_derivatives(device, x_shape, with_bias):
    x, w = _t(x_shape, device, 0), _t((3, 4), device, 1)
    inputs = [x, w] + ([_t((3,), device, 2)] if with_bias else [])
    assert gradcheck(lambda *a: F.linear(*a), inputs)
    assert gradgradcheck(lambda *a: F.linear(*a), inputs)


def test_linear_is_one_node_matching_torch(device):
    torch = pytest.importorskip("torch")
    x, w, b = _t((6, 5), device, 3), _t((4, 5), device, 4), _t((4,), device, 5)
    y = F.linear(x, w, b)
    assert y.grad_fn.name == "LinearFunction"
    gy = np.random.default_rng(6).standard_normal(y.shape)
    y.backward(md.tensor(gy, device=device))
    tx, tw, tb = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.tensor(gy))
    assert_close(y, ty.detach().numpy())
    for mine, theirs in ((x, tx), (w, tw), (b, tb)):
        assert_close(mine.grad, theirs.grad.numpy())


def test_linear_gradients_only_where_asked(device):
    x = _t((3, 4), device, 7, requires_grad=False)
    w, b = _t((2, 4), device, 8), _t((2,), device, 9)
    F.linear(x, w, b).sum().backward()
    assert x.grad is None
    assert_close(w.grad, np.tile(x.numpy().sum(0), (2, 1)))
    assert_close(b.grad, np.full(2, 3.0))


def test_linear_keeps_float32_and_accepts_float64_input(device):
    layer = md.nn.Linear(4, 3).to(device)
    assert layer(md.randn(2, 4, device=device)).dtype == np.float32
    y = layer(md.randn(2, 4, dtype="float64", device=device))   # promoted, as before
    assert y.dtype == np.float64

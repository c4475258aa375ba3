"""Matrix product: 1-D, 2-D and batched operands with broadcasting."""
import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_close, gradcheck, gradgradcheck

SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
          ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2)),
          ((2, 1, 2, 3), (3, 3, 1))]


@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_forward_grad_and_second_derivative(device, sa, sb):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    ta = md.tensor(a, device=device, requires_grad=True)
    tb = md.tensor(b, device=device, requires_grad=True)
    assert_close(ta @ tb, np.matmul(a, b), rtol=1e-12)
    gradcheck(lambda x, y: x @ y, [ta, tb])
    gradgradcheck(lambda x, y: x @ y, [ta, tb])


def test_matmul_against_torch(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((3, 5))
    ta = md.tensor(a, device=device, requires_grad=True)
    tb = md.tensor(b, device=device, requires_grad=True)
    (ta @ tb).tanh().sum().backward()
    pa = torch.tensor(a, requires_grad=True)
    pb = torch.tensor(b, requires_grad=True)
    (pa @ pb).tanh().sum().backward()
    assert_close(ta.grad, pa.grad, rtol=1e-12)
    assert_close(tb.grad, pb.grad, rtol=1e-12)


def test_matmul_errors(device):
    with pytest.raises(ValueError, match="inner dimensions"):
        md.ones(2, 3, device=device) @ md.ones(4, 2, device=device)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        md.matmul(md.tensor(1.0, device=device), md.ones(2, device=device))

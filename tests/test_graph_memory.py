"""The graph keeps only what backward needs.

An op whose backward does not read its inputs (Add, Reshape, ReLU, and every layer op with
an array backward, which saves its own state) keeps a non-leaf input as an InputRecord, so
the input's array is freed once nothing else holds it. These tests check that the arrays
really go, that gradients still arrive, and that an op which breaks the contract fails
loudly instead of computing with garbage.
"""
import sys
import weakref

import numpy as np
import pytest

import minidl as md
from minidl.function import Function
from minidl.tensor import InputRecord
from minidl.testing import assert_close


class Double(Function):
    """A layer-style op (array backward) that saves nothing: y = 2x, gx = 2 gy."""

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        return 2 * gy


class SquareReadingInputs(Function):
    """Breaks the contract: its array backward reads self.inputs instead of saving x."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return 2 * self.inputs[0].data * gy


class SquareKeepingInputs(SquareReadingInputs):
    saves_inputs = True


class TwoOutputs(Function):
    """y1 = 2x, y2 = 3x: for gradients reaching only some outputs."""

    def forward(self, x):
        return 2 * x, 3 * x

    def backward(self, g1, g2):
        return 2 * g1 + 3 * g2


def _leaf(device, shape=(8, 16), seed=0):
    data = np.random.default_rng(seed).standard_normal(shape)
    return md.tensor(data, device=device, requires_grad=True)


# (Not reshape: its output is a view, which rightly keeps the memory it shows.)
@pytest.mark.parametrize("consumer", [lambda h: h + 1, lambda h: 1 - h, lambda h: -h,
                                      lambda h: h.relu(), lambda h: Double().apply(h),
                                      lambda h: h.sum()])
def test_input_array_freed_after_forward(device, consumer):
    if device != "cpu":
        pytest.skip("CuPy's memory pool keeps freed blocks: the check is for NumPy")
    x = _leaf(device)
    h = x * 3                        # a non-leaf: only the graph would keep it
    array = weakref.ref(h.data)
    y = consumer(h)
    assert any(isinstance(i, InputRecord) for i in y.grad_fn.inputs)
    del h
    assert array() is None, "the consumer's graph node still holds its input's array"
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_gradients_through_records_are_right(device):
    x = _leaf(device)
    h = (x * 3).reshape(16, 8)       # Mul keeps x; Reshape keeps a record of x * 3
    y = Double().apply(h.relu() + h)  # Add and Double keep records
    y.sum().backward()
    expected = 2 * 3 * ((3 * x.numpy() > 0) + 1.0)
    assert_close(x.grad, expected)


def test_reading_a_dropped_input_fails_loudly(device):
    x = _leaf(device)
    with pytest.raises(RuntimeError, match="not kept for backward.*saves_inputs"):
        SquareReadingInputs().apply(x * 1).sum().backward()
    # A leaf input is always kept, and saves_inputs = True keeps non-leaves too.
    x.grad = None
    SquareReadingInputs().apply(x).sum().backward()
    assert_close(x.grad, 2 * x.numpy())
    x.grad = None
    SquareKeepingInputs().apply(x * 1).sum().backward()
    assert_close(x.grad, 2 * x.numpy())


def test_op_reading_its_output_survives_a_recording_consumer(device):
    # tanh's backward reads its output through a weak reference; a consumer that keeps
    # only records must not let that output die before tanh's backward runs.
    x = _leaf(device)
    y = Double().apply(x.tanh())
    assert not isinstance(y.grad_fn.inputs[0], InputRecord)
    (y + x.sigmoid().reshape(-1).reshape(8, 16)).sum().backward()
    t, s = np.tanh(x.numpy()), 1 / (1 + np.exp(-x.numpy()))
    assert_close(x.grad, 2 * (1 - t * t) + s * (1 - s))


def test_unused_output_gets_zeros_of_its_shape(device):
    x = _leaf(device)
    y1, y2 = TwoOutputs().apply(x)
    del y2                           # dead before backward: its shape comes from the node
    y1.sum().backward()
    assert_close(x.grad, np.full(x.shape, 2.0))


def test_grad_and_retain_grad_of_a_recorded_tensor(device):
    x = _leaf(device)
    h = x * 3
    h.retain_grad()
    y = (Double().apply(h) + 1).sum()
    gh, = md.grad(y, [h], retain_graph=True)
    assert_close(gh, np.full(h.shape, 2.0))
    assert x.grad is None            # md.grad returns gradients; it writes no .grad
    y.backward()
    assert_close(h.grad, np.full(h.shape, 2.0))
    assert_close(x.grad, np.full(x.shape, 6.0))


def test_second_derivative_through_shape_only_ops(device):
    x = _leaf(device, (5,))
    y = ((x * x).reshape(5, 1) + 1).sum()
    gx, = md.grad(y, [x], create_graph=True)
    ggx, = md.grad(gx.sum(), [x])
    assert_close(gx, 2 * x.numpy())
    assert_close(ggx, np.full(5, 2.0))


class FreshGrad(Function):
    """y = 2x; backward returns a fresh array (through a view chain) and notes its id."""

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        g = (2 * gy).reshape(-1).reshape(gy.shape)
        FreshGrad.last_id = id(g)
        return g


class KeptGrad(Function):
    """y = 2x; backward returns an array it also keeps (as an op could with retain_graph)."""

    def forward(self, x):
        self.g = None
        return 2 * x

    def backward(self, gy):
        self.g = 2 * gy
        return self.g


def test_private_leaf_gradient_is_kept_without_a_copy():
    if sys.version_info >= (3, 14):
        pytest.skip("the no-copy path relies on CPython <= 3.13 reference counts")
    x = _leaf("cpu")
    FreshGrad().apply(x).sum().backward()
    assert id(x.grad.data) == FreshGrad.last_id
    assert_close(x.grad, np.full(x.shape, 2.0))


def test_shared_gradients_are_copied_into_grad(device):
    a, b = _leaf(device, seed=1), _leaf(device, seed=2)
    gy = md.tensor(np.ones(a.shape), device=device)
    (a + b).backward(gy)                 # Add hands gy itself to both inputs
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy()) or device != "cpu"
    assert not np.shares_memory(a.grad.data, gy.data)
    a.grad.data *= 5                     # e.g. gradient clipping, in place
    assert_close(b.grad, np.ones(b.shape))
    assert_close(gy, np.ones(a.shape))
    # An op that keeps the array it returned: the leaf gets its own copy, so a second
    # backward (retain_graph) adds into .grad without touching the op's array.
    x = _leaf(device)
    op = KeptGrad()
    y = op.apply(x).sum()
    y.backward(retain_graph=True)
    assert x.grad.data is not op.g
    y.backward()
    assert_close(x.grad, np.full(x.shape, 4.0))

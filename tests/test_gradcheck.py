"""The checker itself: it must catch wrong backwards and explain where."""
import numpy as np
import pytest

import minidl as md
from minidl.function import Function
from minidl.testing import GradcheckError, assert_close, gradcheck, gradgradcheck


class ScaleIgnoringUpstream(Function):
    """y = 3x with a backward that forgets the upstream gradient."""

    def forward(self, x):
        return 3 * x

    def backward(self, gy):
        return 3 * gy ** 0  # ones: correct only when the upstream gradient is all ones


class OffByOneWindow(Function):
    """y[i] = x[i] + x[i+1], with the gradient window shifted by one."""

    def forward(self, x):
        self.n = x.shape[0]
        return x[:-1] + x[1:]

    def backward(self, gy):
        gx = np.zeros(self.n)
        gx[:-1] += gy
        gx[:-1] += gy    # should be gx[1:]
        return gx


class TransposedWeightGrad(Function):
    """y = x @ w with the weight gradient transposed (square w, so shapes agree)."""

    def forward(self, x, w):
        self.x, self.w = x, w
        return x @ w

    def backward(self, gy):
        return gy @ self.w.T, (self.x.T @ gy).T


def test_catches_backward_that_ignores_upstream():
    x = md.randn(3, 4, dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda a: ScaleIgnoringUpstream().apply(a), [x])


def test_catches_off_by_one_window():
    x = md.randn(6, dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match=r"index \(\d+,\): analytic .* numeric"):
        gradcheck(lambda a: OffByOneWindow().apply(a), [x])


def test_catches_transposed_weight_gradient_also_in_fast_mode():
    x = md.randn(3, 4, dtype="float64", requires_grad=True)
    w = md.randn(4, 4, dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(lambda a, b: TransposedWeightGrad().apply(a, b), [x, w])
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(lambda a, b: TransposedWeightGrad().apply(a, b), [x, w], fast=True)


def test_passes_correct_backward_and_explicit_grad_output():
    x = md.randn(3, 4, dtype="float64", requires_grad=True)
    assert gradcheck(lambda a: (a * a).sum(1), [x])
    assert gradcheck(lambda a: a.exp(), [x], grad_output=np.ones((3, 4)))
    assert gradcheck(lambda a: a.exp(), [x], fast=True)
    assert gradgradcheck(lambda a: (a * a * a).sum(0), [x])


def test_gradgradcheck_catches_wrong_second_derivative():
    class CubeWrongSecond(Function):
        backward_on_tensors = True

        def forward(self, x):
            return x ** 3

        def backward(self, gy):
            x, = self.inputs
            return gy * 3 * x.detach() * x   # d/dx treats one factor as constant

    x = md.randn(4, dtype="float64", requires_grad=True)
    assert gradcheck(lambda a: CubeWrongSecond().apply(a), [x])
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda a: CubeWrongSecond().apply(a), [x])


def test_requires_float64_and_some_input_requiring_grad():
    with pytest.raises(TypeError, match="input 0 has dtype float32"):
        gradcheck(lambda a: a * 2, [md.randn(3, requires_grad=True)])
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda a: a * 2, [md.randn(3, dtype="float64")])


def test_inputs_are_restored_after_the_check():
    x = md.randn(5, dtype="float64", requires_grad=True)
    before = x.numpy().copy()
    gradcheck(lambda a: a.sin() if hasattr(a, "sin") else a.tanh(), [x])
    assert_close(x, before, rtol=0)


def test_assert_close_reports_worst_element():
    with pytest.raises(AssertionError, match=r"worst at index \(1,\): actual 2.5"):
        assert_close(np.array([1.0, 2.5]), np.array([1.0, 2.0]))
    with pytest.raises(AssertionError, match="shape mismatch"):
        assert_close(np.ones(2), np.ones(3))
    assert_close(np.array([np.inf, np.nan]), np.array([np.inf, np.nan]))
    for actual, expected in [(np.inf, -np.inf), (np.inf, 1e308), (np.nan, 1.0), (1.0, np.inf)]:
        with pytest.raises(AssertionError, match="not close"):
            assert_close(np.array([0.0, actual]), np.array([0.0, expected]), rtol=1e-3)

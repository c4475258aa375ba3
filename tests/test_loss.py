"""Losses: gradients for every option, PyTorch parity, large logits, one_hot, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.ops.activation import log_softmax
from minidl.ops.loss import (binary_cross_entropy_with_logits, cross_entropy, l1_loss,
                             mse_loss, nll_loss, one_hot)
from minidl.testing import assert_close, gradcheck
from minidl.testing import strategies as mst

REDUCTIONS = ["mean", "sum", "none"]


def _t(a, device, requires_grad=False):
    return md.tensor(a, device=device, requires_grad=requires_grad)


@st.composite
def class_problems(draw):
    """Logits (N, C, *), class targets with some ignored, and class weights."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    spatial = draw(st.sampled_from([(), (2,), (2, 1)]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + spatial) * 2
    t = rng.integers(0, c, (n,) + spatial)
    if t.size > 1 and draw(st.booleans()):
        t.reshape(-1)[0] = -100
    w = rng.random(c) + 0.5
    return x, t, w


# ---- cross_entropy and nll_loss: gradients ---------------------------------------------
@settings(max_examples=20)
@given(problem=class_problems(), reduction=st.sampled_from(REDUCTIONS),
       weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.1, 0.5]))
def test_cross_entropy_class_targets_gradcheck(device, problem, reduction, weighted,
                                               smoothing):
    x, t, w = problem
    X, T = _t(x, device, True), _t(t, device)
    W = _t(w, device) if weighted else None
    assert gradcheck(lambda a: cross_entropy(a, T, W, reduction=reduction,
                                             label_smoothing=smoothing), [X])


@settings(max_examples=15)
@given(problem=class_problems(), reduction=st.sampled_from(REDUCTIONS),
       weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_probability_targets_gradcheck(device, problem, reduction, weighted,
                                                     smoothing):
    x, _, w = problem
    p = np.random.default_rng(0).random(x.shape)
    p /= p.sum(axis=1, keepdims=True)
    X, P = _t(x, device, True), _t(p, device, True)     # soft targets get a gradient too
    W = _t(w, device) if weighted else None
    assert gradcheck(lambda a, b: cross_entropy(a, b, W, reduction=reduction,
                                                label_smoothing=smoothing), [X, P])


@settings(max_examples=15)
@given(problem=class_problems(), reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans())
def test_nll_loss_gradcheck(device, problem, reduction, weighted):
    x, t, w = problem
    X, T = _t(x, device, True), _t(t, device)
    W = _t(w, device) if weighted else None
    assert gradcheck(lambda a: nll_loss(a, T, W, reduction=reduction), [X])


def test_cross_entropy_ignore_index_inside_range_gradcheck(device):
    rng = np.random.default_rng(1)
    X = _t(rng.standard_normal((5, 3)), device, True)
    T = _t(np.array([0, 1, 2, 1, 1]), device)
    assert gradcheck(lambda a: cross_entropy(a, T, ignore_index=1, label_smoothing=0.1), [X])


def test_cross_entropy_is_one_fused_node(device):
    X = md.randn(4, 5, device=device, requires_grad=True)
    loss = cross_entropy(X, _t(np.array([0, 1, 2, 3]), device))
    assert loss.grad_fn.name == "SoftmaxCrossEntropy" and loss.grad_fn.inputs[0] is X
    loss.backward()
    # mean over 4 samples: each row of the gradient is (softmax - onehot) / 4
    p = np.exp(X.numpy() - X.numpy().max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert_close(X.grad, (p - np.eye(5, dtype=np.float32)[[0, 1, 2, 3]]) / 4, rtol=1e-5,
                 atol=1e-7)


def test_cross_entropy_equals_nll_of_log_softmax(device):
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((6, 4, 3)), rng.integers(0, 4, (6, 3))
    w = _t(rng.random(4) + 0.1, device)
    a = cross_entropy(_t(x, device), _t(t, device), w)
    b = nll_loss(log_softmax(_t(x, device), 1), _t(t, device), w)
    assert_close(a, b, rtol=1e-12)


# ---- regression and binary losses: gradients ------------------------------------------
@settings(max_examples=10)
@given(x=mst.arrays(mst.shapes(0, 3, 1, 4)), reduction=st.sampled_from(REDUCTIONS),
       l1=st.booleans())
def test_mse_and_l1_gradcheck(device, x, reduction, l1):
    # targets a distinct offset away, so |x - t| never crosses its kink
    offset = np.random.default_rng(3).choice([-1, 1], x.shape) * (0.1 + np.abs(x) / 10)
    X, T = _t(x, device, True), _t(x + offset, device, True)
    fn = l1_loss if l1 else mse_loss
    assert gradcheck(lambda a, b: fn(a, b, reduction), [X, T])


@settings(max_examples=15)
@given(x=mst.arrays(st.tuples(st.integers(1, 3), st.integers(1, 4)), magnitude=3.0),
       reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans(),
       pos_weighted=st.booleans())
def test_bce_with_logits_gradcheck(device, x, reduction, weighted, pos_weighted):
    rng = np.random.default_rng(4)
    X, T = _t(x, device, True), _t(rng.random(x.shape), device, True)
    W = _t(rng.random((1, x.shape[1])) + 0.5, device) if weighted else None
    PW = _t(rng.random(x.shape[1]) * 3, device) if pos_weighted else None
    assert gradcheck(lambda a, b: binary_cross_entropy_with_logits(a, b, W, reduction, PW),
                     [X, T])


# ---- PyTorch parity -------------------------------------------------------------------
def _compare(device, torch, ours, theirs, x, targets, dtype, grad_target=False):
    X = _t(x.astype(dtype), device, True)
    Ts = [_t(t, device, grad_target and t.dtype.kind == "f") for t in targets]
    y = ours(X, *Ts)
    tx = torch.tensor(x.astype(dtype), requires_grad=True)
    tts = [torch.tensor(t, requires_grad=grad_target and t.dtype.kind == "f") for t in targets]
    ty = theirs(tx, *tts)
    assert y.shape == tuple(ty.shape) and y.dtype == np.dtype(dtype)
    gy = np.random.default_rng(5).standard_normal(y.shape).astype(dtype)
    y.backward(_t(gy, device))
    ty.backward(torch.tensor(gy))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-11, atol=1e-13)
    assert_close(y, ty, **tol)
    assert_close(X.grad, tx.grad, **tol)
    for T, tt in zip(Ts, tts):
        if T.requires_grad:
            assert_close(T.grad, tt.grad, **tol)


CE_CASES = [dict(), dict(weight=True), dict(ignore_index=2), dict(label_smoothing=0.2),
            dict(weight=True, label_smoothing=0.3, ignore_index=-100),
            dict(weight=True, ignore_index=1, label_smoothing=0.1)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spatial", [(), (3, 2)], ids=["NC", "NCHW"])
def test_cross_entropy_and_nll_match_torch(device, dtype, reduction, spatial):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4) + spatial) * 3
    t = rng.integers(0, 4, (5,) + spatial)
    t.reshape(-1)[1] = -100
    w = (rng.random(4) + 0.2).astype(dtype)
    p = rng.random(x.shape).astype(dtype)
    p /= p.sum(axis=1, keepdims=True)
    for case in CE_CASES:
        ii = case.get("ignore_index", -100)
        tt = np.where(t == -100, ii, t)
        kw = dict(ignore_index=ii, reduction=reduction,
                  label_smoothing=case.get("label_smoothing", 0.0))
        weight = w if case.get("weight") else None
        _compare(device, torch,
                 lambda a, b: cross_entropy(a, b, None if weight is None else _t(weight, device),
                                            **kw),
                 lambda a, b: F.cross_entropy(a, b, None if weight is None else
                                              torch.tensor(weight), **kw), x, [tt], dtype)
        kw.pop("ignore_index")
        _compare(device, torch,     # probability targets (with a gradient for them)
                 lambda a, b: cross_entropy(a, b, None if weight is None else _t(weight, device),
                                            **kw),
                 lambda a, b: F.cross_entropy(a, b, None if weight is None else
                                              torch.tensor(weight), **kw),
                 x, [p], dtype, grad_target=True)
        kw.pop("label_smoothing")
        _compare(device, torch,
                 lambda a, b: nll_loss(a, b, None if weight is None else _t(weight, device),
                                       ignore_index=ii, **kw),
                 lambda a, b: F.nll_loss(a, b, None if weight is None else torch.tensor(weight),
                                         ignore_index=ii, **kw), x, [tt], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_and_bce_match_torch(device, dtype, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3)) * 5
    t = rng.random((4, 3)).astype(dtype)
    w = (rng.random((4, 1)) + 0.5).astype(dtype)
    pw = (rng.random(3) * 3).astype(dtype)
    _compare(device, torch, lambda a, b: mse_loss(a, b, reduction),
             lambda a, b: F.mse_loss(a, b, reduction=reduction), x, [t], dtype, True)
    _compare(device, torch, lambda a, b: l1_loss(a, b, reduction),
             lambda a, b: F.l1_loss(a, b, reduction=reduction), x, [t], dtype, True)
    for weight, pos_weight in [(None, None), (w, None), (None, pw), (w, pw)]:
        _compare(device, torch,
                 lambda a, b: binary_cross_entropy_with_logits(
                     a, b, None if weight is None else _t(weight, device), reduction,
                     None if pos_weight is None else _t(pos_weight, device)),
                 lambda a, b: F.binary_cross_entropy_with_logits(
                     a, b, None if weight is None else torch.tensor(weight),
                     reduction=reduction,
                     pos_weight=None if pos_weight is None else torch.tensor(pos_weight)),
                 x, [t], dtype, True)


def test_unbatched_and_all_ignored_match_torch(device):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.array([0.5, -1.0, 2.0])
    for reduction in REDUCTIONS:
        ours = cross_entropy(_t(x, device), _t(np.array(2), device), reduction=reduction)
        theirs = F.cross_entropy(torch.tensor(x), torch.tensor(2), reduction=reduction)
        assert ours.shape == tuple(theirs.shape)
        assert_close(ours, theirs, rtol=1e-12)
    ignored = np.full(2, -100)
    ours = cross_entropy(_t(np.ones((2, 3)), device), _t(ignored, device))
    theirs = F.cross_entropy(torch.ones(2, 3, dtype=torch.float64), torch.tensor(ignored))
    assert np.isnan(ours.item()) and np.isnan(theirs.item())


# ---- stability at large logits --------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_at_logits_1e4(device, dtype):
    x = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    t = np.array([0, 1, 2])
    for smoothing in (0.0, 0.1):
        X = _t(x, device, True)
        loss = cross_entropy(X, _t(t, device), reduction="none", label_smoothing=smoothing)
        loss.sum().backward()
        assert np.isfinite(loss.numpy()).all() and np.isfinite(X.grad.numpy()).all()
        # -log p: 0, 2e4, log 2 without smoothing
        ln2 = np.log(2)
        logp = np.array([[0, -2e4, -1e4], [0, -2e4, -1e4], [-2e4 - ln2, -ln2, -ln2]])
        q = (1 - smoothing) * np.eye(3)[t] + smoothing / 3
        assert_close(loss, -(q * logp).sum(1), rtol=1e-6)
        assert_close(X.grad, np.exp(logp) - q, rtol=1e-6, atol=1e-6)
    P = _t(np.full((3, 3), 1 / 3, dtype=dtype), device)
    soft = cross_entropy(_t(x, device), P, reduction="none")
    assert np.isfinite(soft.numpy()).all()


def test_bce_with_logits_at_large_logits(device):
    x = _t(np.array([1e4, -1e4, 80.0, -80.0], dtype=np.float32), device, True)
    t = _t(np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32), device)
    loss = binary_cross_entropy_with_logits(x, t, reduction="none")
    loss.sum().backward()
    assert_close(loss, [0.0, 0.0, 80.0, 80.0], rtol=1e-6)
    assert_close(x.grad, [0.0, 0.0, 1.0, -1.0], atol=1e-6)


# ---- one_hot --------------------------------------------------------------------------
def test_one_hot(device):
    t = _t(np.array([[0, 3], [2, 1]]), device)
    y = one_hot(t, 5)
    assert y.dtype == np.int64 and y.shape == (2, 2, 5)
    np.testing.assert_array_equal(y.numpy(), np.eye(5, dtype=np.int64)[[[0, 3], [2, 1]]])
    assert one_hot(t).shape == (2, 2, 4)
    with pytest.raises(ValueError, match=r"one_hot: class values must be in \[0, 2\].*got 3"):
        one_hot(t, 3)
    with pytest.raises(ValueError, match="non-negative"):
        one_hot(_t(np.array([-1, 0]), device))
    with pytest.raises(TypeError, match="integer"):
        one_hot(_t(np.array([0.0, 1.0]), device))
    with pytest.raises(ValueError, match="num_classes"):
        one_hot(t, 0)


# ---- bad input ------------------------------------------------------------------------
def test_cross_entropy_and_nll_bad_input(device):
    x = md.randn(3, 4, device=device)
    for fn in (cross_entropy, nll_loss):
        name = fn.__name__
        with pytest.raises(ValueError, match=rf"{name}: target values must be class indices "
                                             rf"in \[0, 3\].*got 4"):
            fn(x, _t(np.array([0, 4, 1]), device))
        with pytest.raises(ValueError, match="got -1"):
            fn(x, _t(np.array([0, -1, 1]), device))
        with pytest.raises(TypeError, match=f"{name}: target must hold integer class"):
            fn(x, _t(np.array([0.0, 1.0, 2.0], dtype=np.float32), device))
        with pytest.raises(ValueError, match=r"target must have shape \(3,\)"):
            fn(x, _t(np.array([0, 1]), device))
        with pytest.raises(ValueError, match="reduction"):
            fn(x, _t(np.array([0, 1, 2]), device), reduction="avg")
        with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
            fn(x, _t(np.array([0, 1, 2]), device), md.ones(3, device=device))
        with pytest.raises(TypeError, match="input"):
            fn(md.tensor([[1, 2]], device=device), _t(np.array([0]), device))
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(x, _t(np.array([0, 1, 2]), device), label_smoothing=1.5)
    with pytest.raises(TypeError, match="probability target has dtype float64"):
        cross_entropy(x, md.ones(3, 4, dtype="float64", device=device))


def test_regression_losses_bad_input(device):
    x = md.randn(3, 2, device=device)
    for fn in (mse_loss, l1_loss, binary_cross_entropy_with_logits):
        name = fn.__name__
        with pytest.raises(ValueError, match=f"{name}: target shape"):
            fn(x, md.randn(3, 1, device=device))
        with pytest.raises(TypeError, match="target must be a float tensor"):
            fn(x, md.tensor([[1, 0], [0, 1], [1, 1]], device=device))
        with pytest.raises(ValueError, match="reduction"):
            fn(x, md.randn(3, 2, device=device), reduction="mean ")
    with pytest.raises(ValueError, match="pos_weight of shape"):
        binary_cross_entropy_with_logits(x, md.rand(3, 2, device=device),
                                         pos_weight=md.ones(3, device=device))

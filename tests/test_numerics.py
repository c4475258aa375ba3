"""Numerical edge cases: huge logits, -inf masks, zero variance, saturated sigmoids, overflow.

Each case checks the forward values and the gradients against closed forms (what the math
says they must be at that extreme), never just "no NaN"; PyTorch is a second opinion where
it is installed. detect_anomaly must name the first op that made a NaN or inf.
"""
from __future__ import annotations

import numpy as np
import pytest

import minidl as md
import minidl.nn.functional as F
from minidl import nn
from minidl.testing import assert_close, gradcheck

FLOATS = ["float32", "float64"]


def t(values, device, dtype="float32", grad=True):
    return md.tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=grad)


def finite(x) -> bool:
    return bool(np.isfinite(x.numpy()).all())


def softmax_np(a, axis=-1):
    a = np.asarray(a, np.float64)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---- log_softmax and cross-entropy at logits of +-1e4 -------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_log_softmax_of_huge_logits_is_exact_and_its_gradient_finite(device, dtype):
    logits = [[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]]
    x = t(logits, device, dtype)
    y = F.log_softmax(x, 1)
    # log softmax = x - max - log(sum exp(x - max)); the sum is 1 or 2 here
    expected = np.array([[0, -1e4, -2e4], [-2e4, -2e4, 0],
                         [-np.log(2), -np.log(2), -2e4 - np.log(2)]])
    assert_close(y, expected, rtol=1e-6, atol=1e-6)
    gy = np.random.default_rng(0).standard_normal((3, 3))
    y.backward(md.tensor(gy.astype(dtype), device=device))
    p = softmax_np(logits, 1)          # one-hot rows (or halves): exactly representable
    assert finite(x.grad)
    assert_close(x.grad, gy - p * gy.sum(1, keepdims=True), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_of_huge_logits(device, dtype, label_smoothing):
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [3.0, -1e4, 1e4]])
    target = np.array([0, 2, 1])
    x = t(logits, device, dtype)
    loss = F.cross_entropy(x, md.tensor(target, device=device), reduction="none",
                           label_smoothing=label_smoothing)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    q = (1 - label_smoothing) * np.eye(3)[target] + label_smoothing / 3
    assert_close(loss, -(q * logp).sum(1), rtol=1e-6)
    assert finite(loss)
    loss.sum().backward()
    # d loss / d logits = softmax - q: a one-hot softmax here, so the gradient is exact
    assert_close(x.grad, softmax_np(logits, 1) - q, rtol=1e-6, atol=1e-7)


def test_cross_entropy_of_huge_logits_against_torch(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    logits = rng.choice([-1e4, -3.0, 0.0, 5.0, 1e4], size=(6, 5)).astype(np.float32)
    target = rng.integers(0, 5, 6)
    weight = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    x = t(logits, device)
    loss = F.cross_entropy(x, md.tensor(target, device=device),
                           weight=md.tensor(weight, device=device), label_smoothing=0.05)
    loss.backward()
    tx = torch.tensor(logits, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(target),
                                           weight=torch.tensor(weight), label_smoothing=0.05)
    tl.backward()
    assert_close(loss, tl, rtol=1e-5)
    assert_close(x.grad, tx.grad, rtol=1e-4, atol=1e-6)


def test_log_softmax_gradcheck_far_from_zero(device):
    # float64 finite differences are still exact to ~1e-6 around logits of 1e4
    x = md.tensor(np.array([[1e4, 1e4 + 1.5, 1e4 - 2.0], [-1e4, -1e4 + 0.5, -1e4 - 3.0]]),
                  device=device, requires_grad=True)
    assert gradcheck(lambda a: F.log_softmax(a, 1), [x])
    labels = md.tensor([1, 0], device=device)
    assert gradcheck(lambda a: F.cross_entropy(a, labels, label_smoothing=0.2), [x])


# ---- -inf masks --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_masked_logits_give_zero_probability_and_zero_gradient(device, dtype):
    logits = np.array([[2.0, -np.inf, 0.5, -np.inf], [-np.inf, 1e4, -1.0, 3.0]])
    finite_part = np.where(np.isinf(logits), -np.inf, logits)
    x = t(logits, device, dtype)
    with np.errstate(invalid="raise"):      # no inf - inf anywhere on the way
        p = F.softmax(x, 1)
        logp = F.log_softmax(x, 1)
    assert_close(p, softmax_np(finite_part, 1), rtol=1e-6, atol=1e-30)
    assert np.array_equal(np.isneginf(logp.numpy()), np.isinf(logits))
    assert not np.isnan(logp.numpy()).any()
    target = md.tensor([0, 1], device=device)
    loss = F.cross_entropy(x, target)
    assert finite(loss)
    expected = -np.mean([np.log(softmax_np(finite_part, 1)[0, 0]),
                         np.log(softmax_np(finite_part, 1)[1, 1])])
    assert_close(loss, expected, rtol=1e-6)
    loss.backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all()
    assert (g[np.isinf(logits)] == 0).all(), "a masked logit must get no gradient"
    onehot = np.eye(4)[[0, 1]]
    assert_close(g, (softmax_np(finite_part, 1) - onehot) / 2, rtol=1e-6, atol=1e-12)


def test_masked_log_softmax_backward_is_zero_at_the_mask(device):
    x = t([[0.0, -np.inf, 1.0]], device, "float64")
    y = F.log_softmax(x, 1)
    # the usual pattern: only the finite log-probabilities enter the loss
    keep = md.tensor(np.array([[1.0, 0.0, 1.0]]), device=device)
    loss = md.where(keep.numpy() > 0, y, md.zeros_like(y)).sum()
    loss.backward()
    assert np.isfinite(x.grad.numpy()).all() and x.grad.numpy()[0, 1] == 0.0


# ---- a single class -------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.0, 1e4, -1e4, 3.5])
def test_softmax_of_a_single_class(device, value):
    x = t([[value], [-value]], device, "float64")
    p = F.softmax(x, 1)
    assert_close(p, [[1.0], [1.0]])
    logp = F.log_softmax(x, 1)
    assert_close(logp, [[0.0], [0.0]])
    (p.sum() * 3 + logp.sum()).backward()
    assert_close(x.grad, [[0.0], [0.0]])
    x.grad = None
    loss = F.cross_entropy(x, md.tensor([0, 0], device=device))
    assert loss.item() == 0.0
    loss.backward()
    assert_close(x.grad, [[0.0], [0.0]])


# ---- BatchNorm on a constant channel (variance 0) -------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_batch_norm_of_a_constant_channel(device, dtype):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 3, 2, 2)).astype(dtype)
    a[:, 1] = 7.25                                    # channel 1: variance exactly 0
    bn = nn.BatchNorm2d(3).to(device)
    if dtype == "float64":
        bn = bn.to(md.float64) if hasattr(bn, "to") else bn
    with md.no_grad():
        bn.weight.copy_(md.tensor([1.5, 2.0, 0.5], dtype=bn.weight.dtype, device=device))
        bn.bias.copy_(md.tensor([0.1, -0.3, 0.2], dtype=bn.bias.dtype, device=device))
    x = md.tensor(a, device=device, requires_grad=True)
    y = bn(x)
    assert finite(y)
    # xhat = (x - mean) / sqrt(0 + eps) = 0 exactly: the channel becomes its bias
    assert_close(y.numpy()[:, 1], np.full((4, 2, 2), -0.3), rtol=0, atol=1e-6)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(md.tensor(gy, device=device))
    g = x.grad.numpy()
    assert np.isfinite(g).all() and np.isfinite(bn.weight.grad.numpy()).all()
    # with xhat = 0: gx = gamma / sqrt(eps) * (gy - mean(gy)) over the channel
    g1 = gy[:, 1]
    assert_close(g[:, 1], 2.0 / np.sqrt(1e-5) * (g1 - g1.mean()), rtol=1e-4, atol=1e-6)
    assert bn.weight.grad.numpy()[1] == pytest.approx(0.0, abs=1e-6)   # sum(gy * xhat)
    assert bn.running_var.numpy()[1] == pytest.approx(0.9, abs=1e-7)  # 0.9 * 1 + 0.1 * 0
    bn.eval()
    y_eval = bn(md.tensor(a, device=device))
    assert finite(y_eval)


def test_batch_norm_constant_channel_gradcheck(device):
    a = np.random.default_rng(3).standard_normal((3, 2, 2, 2))
    a[:, 0] = -1.0
    x = md.tensor(a, device=device, requires_grad=True)
    w = md.tensor(np.array([1.3, 0.7]), device=device, requires_grad=True)
    b = md.tensor(np.array([0.2, -0.1]), device=device, requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                     [x, w, b])


def test_batch_norm_against_torch_on_a_constant_channel(device):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(4).standard_normal((5, 2, 3)).astype(np.float32)
    a[:, 0] = 3.0
    x = t(a, device)
    y = F.batch_norm(x, None, None, training=True)
    gy = np.random.default_rng(5).standard_normal(a.shape).astype(np.float32)
    y.backward(md.tensor(gy, device=device))
    tx = torch.tensor(a, requires_grad=True)
    ty = torch.nn.functional.batch_norm(tx, None, None, training=True)
    ty.backward(torch.tensor(gy))
    # torch's float32 mean of a constant is off by an ulp, which 1/sqrt(eps) turns into
    # ~3e-5; minidl's is exact, so allow that much
    assert_close(y, ty.detach(), rtol=1e-5, atol=1e-4)
    assert_close(x.grad, tx.grad, rtol=1e-4, atol=1e-3)


# ---- sigmoid and BCE with logits at +-100 --------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_and_tanh_saturate_without_nan(device, dtype):
    x = t([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], device, dtype)
    with np.errstate(over="raise", invalid="raise"):   # e^-|x| never overflows
        s = md.sigmoid(x)
    v = np.array([-1e4, -100, -30, 0, 30, 100, 1e4])
    ref = np.exp(-np.logaddexp(0.0, -v))                # 1 / (1 + e^-v) in float64
    tiny = np.finfo(dtype).tiny                          # below it float32 is subnormal
    assert_close(s, ref, rtol=1e-6, atol=tiny)
    s.sum().backward()
    assert finite(x.grad)
    # y (1 - y) is exact where y is small and loses its relative precision where y rounds
    # to 1 (x >= 17 in float32), as PyTorch's does: check it to an ulp of the peak 0.25.
    assert_close(x.grad, ref * (1 - ref), rtol=1e-5, atol=np.finfo(dtype).eps)
    x.grad = None
    th = md.tanh(x)
    th.sum().backward()
    assert finite(th) and finite(x.grad)
    assert_close(th.numpy()[[0, 1, -2, -1]], [-1.0, -1.0, 1.0, 1.0])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_bce_with_logits_at_100(device, dtype, pos_weight):
    logits = np.array([100.0, -100.0, 100.0, -100.0, 1e4, -1e4])
    target = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    x = t(logits, device, dtype)
    pw = None if pos_weight is None else md.tensor(np.full(6, pos_weight, dtype), device=device)
    with np.errstate(over="raise"):
        loss = F.binary_cross_entropy_with_logits(x, t(target, device, dtype, grad=False),
                                                  reduction="none", pos_weight=pw)
    l_pos = 1.0 if pos_weight is None else pos_weight
    # loss = l * t * softplus(-x) + (1 - t) * softplus(x): softplus(100) = 100 (+ e^-100)
    expected = np.array([0.0, 0.0, 100.0, 100.0 * l_pos, 1e4, 1e4 * l_pos])
    assert_close(loss, expected, rtol=1e-6, atol=1e-30)
    loss.sum().backward()
    sig = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    # d/dx = (1 - t) sigmoid(x) - l t (1 - sigmoid(x))
    assert_close(x.grad, (1 - target) * sig - l_pos * target * (1 - sig), atol=1e-30)


def test_bce_with_logits_against_torch(device):
    torch = pytest.importorskip("torch")
    logits = np.array([[100.0, -100.0, 7.0], [-40.0, 40.0, 1e4]], np.float32)
    target = np.array([[1.0, 0.0, 0.3], [0.9, 0.1, 0.0]], np.float32)
    pw = np.array([2.0, 0.5, 1.5], np.float32)
    x = t(logits, device)
    loss = F.binary_cross_entropy_with_logits(x, t(target, device, grad=False),
                                              pos_weight=md.tensor(pw, device=device))
    loss.backward()
    tx = torch.tensor(logits, requires_grad=True)
    tl = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, torch.tensor(target), pos_weight=torch.tensor(pw))
    tl.backward()
    assert_close(loss, tl, rtol=1e-5)
    assert_close(x.grad, tx.grad, rtol=1e-5, atol=1e-7)


# ---- float32 overflow in exp -----------------------------------------------------------------
def test_float32_exp_overflows_to_inf_not_nan(device):
    x = t([88.0, 89.0, 100.0, -200.0], device)       # e^89 > float32 max (3.4e38)
    with np.errstate(over="ignore", under="ignore"):
        y = md.exp(x)
        y.sum().backward()
    v = y.numpy()
    assert v.dtype == np.float32
    assert np.isfinite(v[0]) and np.isposinf(v[1]) and np.isposinf(v[2]) and v[3] == 0.0
    assert not np.isnan(x.grad.numpy()).any()
    assert np.isposinf(x.grad.numpy()[1])            # d e^x / dx = e^x, honestly inf


def test_logsumexp_and_softmax_do_not_overflow_in_float32(device):
    a = np.array([[100.0, 100.0, 0.0], [1e4, -1e4, 1e4], [-1e4, -1e4, -1e4]], np.float32)
    x = t(a, device)
    with np.errstate(over="raise", invalid="raise"):
        lse = md.logsumexp(x, 1)
    expected = np.array([100 + np.log(2 + np.exp(-100.0)), 1e4 + np.log(2),
                         -1e4 + np.log(3)])
    assert_close(lse, expected, rtol=1e-6)
    lse.sum().backward()
    assert_close(x.grad, softmax_np(a, 1), rtol=1e-6, atol=1e-30)
    assert finite(F.softmax(t(a, device, grad=False), 1))


# ---- detect_anomaly names the first op -------------------------------------------------------
def test_detect_anomaly_names_the_first_op_in_forward(device):
    x = t([1.0, -1.0], device)
    with md.detect_anomaly(), np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        with pytest.raises(FloatingPointError, match=r"^detect_anomaly: Log produced NaN"):
            ((x * 2).log() * 3).exp()           # Log makes the NaN; Mul and Exp follow
        with pytest.raises(FloatingPointError, match=r"^detect_anomaly: Exp produced"):
            (md.exp(t([100.0], device)) * 0.0).sum()   # float32 overflow, then inf * 0
        bn_input = md.tensor(np.ones((4, 2), np.float32), device=device)
        with pytest.raises(FloatingPointError, match=r"BatchNorm produced NaN or inf in "
                                                     r"forward"):
            F.batch_norm(bn_input, None, None, training=True, eps=0.0)   # 0 / sqrt(0)
    # outside the context nothing is checked
    with np.errstate(invalid="ignore"):
        assert np.isnan(x.log().numpy()[1])


def test_detect_anomaly_names_the_first_op_in_backward(device):
    x = t([0.0, 4.0], device, "float64")
    a = x * 1.0                  # Mul: its backward would only pass the inf along
    b = a.sqrt()                 # Sqrt: finite at 0 forward, 1 / (2 sqrt 0) backward
    c = (b * 2.0).sum()
    with md.detect_anomaly(), np.errstate(divide="ignore", invalid="ignore"):
        with pytest.raises(FloatingPointError, match=r"^detect_anomaly: Sqrt produced NaN "
                                                     r"or inf in backward"):
            c.backward()
    assert md.function._anomaly_mode[0] is False     # restored after the exception


def test_detect_anomaly_in_a_layer_backward(device):
    class Explodes(md.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy / 0.0          # a broken backward: inf everywhere

    x = t([1.0, 2.0], device)
    y = Explodes().apply(x)
    loss = F.mse_loss(y, md.zeros_like(y))
    with md.detect_anomaly(), np.errstate(divide="ignore", invalid="ignore"):
        with pytest.raises(FloatingPointError, match="Explodes produced NaN or inf in "
                                                     "backward"):
            loss.backward()


def test_a_training_step_on_extreme_inputs_stays_finite(device):
    # The classic ways a step turns to NaN: huge logits, a dead (constant) channel, a
    # saturated sigmoid. With detect_anomaly on, the step must go through.
    md.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 16, 3)).to(device)
    x = np.zeros((4, 1, 4, 4), np.float32)            # a constant batch: BN variance 0
    x[0] = 1e4
    xb = md.tensor(x, device=device)
    y = md.tensor([0, 1, 2, 0], device=device)
    with md.detect_anomaly():
        loss = F.cross_entropy(model(xb) * 1e3, y)      # logits far beyond 1e4
        loss.backward()
    assert np.isfinite(loss.item())
    for p in model.parameters():
        assert np.isfinite(p.grad.numpy()).all()

"""Optimizers: PyTorch's trajectories, hand-computed steps, groups, state dicts, bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl import optim
from minidl.testing import assert_close

STEPS = 10


def _problem(seed=0):
    """A fixed least-squares problem: weights (3, 4), bias (4,), data X (8, 3), Y (8, 4)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, 4)), rng.standard_normal(4),
            rng.standard_normal((8, 3)), rng.standard_normal((8, 4)))


def _loss(w, b, X, Y):
    r = X @ w + b - Y
    return (r * r).mean()


def _minidl_run(opt_cls, kwargs, device, steps=STEPS, dtype="float64"):
    """Train with minidl; return the gradients seen and the parameters after each step."""
    w0, b0, X, Y = _problem()
    w = md.tensor(w0, dtype=dtype, device=device, requires_grad=True)
    b = md.tensor(b0, dtype=dtype, device=device, requires_grad=True)
    X, Y = md.tensor(X, dtype=dtype, device=device), md.tensor(Y, dtype=dtype, device=device)
    opt = opt_cls([w, b], **kwargs)
    grads, params = [], []
    for _ in range(steps):
        opt.zero_grad()
        _loss(w, b, X, Y).backward()
        grads.append([w.grad.numpy().copy(), b.grad.numpy().copy()])
        opt.step()
        params.append([w.numpy().copy(), b.numpy().copy()])
    return grads, params, opt


def _torch_run(torch, opt_name, kwargs, grads):
    """Feed PyTorch's optimizer the same gradients; return its parameters after each step."""
    w0, b0, _, _ = _problem()
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, opt_name)([w, b], **kwargs)
    params = []
    for gw, gb in grads:
        w.grad, b.grad = torch.from_numpy(gw.copy()), torch.from_numpy(gb.copy())
        opt.step()
        params.append([w.detach().numpy().copy(), b.detach().numpy().copy()])
    return params


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.2, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, betas=(0.3, 0.9), eps=1e-3, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.05, maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-4, weight_decay=0.1, momentum=0.5,
                     centered=True)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                     enumerate(CASES)])
def test_trajectory_matches_torch(device, name, kwargs):
    torch = pytest.importorskip("torch")
    grads, ours, _ = _minidl_run(getattr(optim, name), kwargs, device)
    theirs = _torch_run(torch, name, kwargs, grads)
    moved = np.abs(ours[-1][0] - _problem()[0]).max()
    assert moved > 1e-3, "the parameters should have moved"
    for step, (a, e) in enumerate(zip(ours, theirs)):
        for i in range(2):
            assert_close(a[i], e[i], rtol=0, atol=1e-10, msg=f"{name} step {step} param {i}: ")


def test_param_groups_with_their_own_lr_match_torch(device):
    torch = pytest.importorskip("torch")
    w0, b0, X, Y = _problem()
    w = md.tensor(w0, dtype="float64", device=device, requires_grad=True)
    b = md.tensor(b0, dtype="float64", device=device, requires_grad=True)
    X, Y = md.tensor(X, dtype="float64", device=device), md.tensor(Y, dtype="float64",
                                                                   device=device)
    opt = optim.SGD([{"params": [w]}, {"params": b, "lr": 0.01, "momentum": 0.0}],
                    lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.0]
    tw = torch.tensor(w0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    topt = torch.optim.SGD([{"params": [tw]}, {"params": tb, "lr": 0.01, "momentum": 0.0}],
                           lr=0.1, momentum=0.9)
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(w, b, X, Y).backward()
        tw.grad, tb.grad = torch.from_numpy(w.grad.numpy()), torch.from_numpy(b.grad.numpy())
        before = b.numpy().copy()
        opt.step()
        topt.step()
        # The second group is plain SGD at its own lr.
        assert_close(b.numpy(), before - 0.01 * tb.grad.numpy(), rtol=0, atol=1e-15)
        assert_close(w, tw, rtol=0, atol=1e-10)
        assert_close(b, tb, rtol=0, atol=1e-10)


def _two_steps(device, opt, p, grads):
    for g in grads:
        p.grad = md.tensor([g], dtype="float64", device=device)
        opt.step()
    return p.item()


def _scalar(device, value=1.0):
    return md.tensor([value], dtype="float64", device=device, requires_grad=True)


def test_sgd_by_hand(device):
    # p0 = 1, gradients 1 then 2, lr 0.1.
    p = _scalar(device)
    assert _two_steps(device, optim.SGD([p], lr=0.1), p, [1.0, 2.0]) == pytest.approx(0.7)
    # momentum 0.9: b1 = 1, p1 = 0.9; b2 = 0.9 + 2 = 2.9, p2 = 0.9 - 0.29 = 0.61
    p = _scalar(device)
    got = _two_steps(device, optim.SGD([p], lr=0.1, momentum=0.9), p, [1.0, 2.0])
    assert got == pytest.approx(0.61, abs=1e-15)
    # dampening 0.5: b1 = 1 (not damped), b2 = 0.9 + 0.5*2 = 1.9, p2 = 0.9 - 0.19 = 0.71
    p = _scalar(device)
    got = _two_steps(device, optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5), p,
                     [1.0, 2.0])
    assert got == pytest.approx(0.71, abs=1e-15)
    # nesterov: step 1 uses 1 + 0.9*1 = 1.9 -> 0.81; step 2: b = 2.9, 2 + 0.9*2.9 = 4.61
    p = _scalar(device)
    got = _two_steps(device, optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True), p,
                     [1.0, 2.0])
    assert got == pytest.approx(0.81 - 0.461, abs=1e-15)
    # weight decay 0.5: g1 = 1 + 0.5 = 1.5 -> 0.85; g2 = 2 + 0.425 = 2.425 -> 0.6075
    p = _scalar(device)
    got = _two_steps(device, optim.SGD([p], lr=0.1, weight_decay=0.5), p, [1.0, 2.0])
    assert got == pytest.approx(0.6075, abs=1e-15)


def test_adam_and_adamw_by_hand(device):
    # Adam, lr 0.1, betas (0.9, 0.999), eps 0, gradients 1 then 2.
    # step 1: m = 0.1, v = 0.001, m_hat = 1, v_hat = 1 -> p = 1 - 0.1 = 0.9
    # step 2: m = 0.09 + 0.2 = 0.29, v = 0.000999 + 0.004 = 0.004999
    #         m_hat = 0.29 / 0.19, v_hat = 0.004999 / 0.001999
    p = _scalar(device)
    got = _two_steps(device, optim.Adam([p], lr=0.1, eps=0.0), p, [1.0, 2.0])
    expected = 0.9 - 0.1 * (0.29 / 0.19) / math.sqrt(0.004999 / 0.001999)
    assert got == pytest.approx(expected, abs=1e-14)
    # AdamW, weight_decay 0.5: p is first scaled by 1 - 0.1*0.5 = 0.95 at every step.
    p = _scalar(device)
    got = _two_steps(device, optim.AdamW([p], lr=0.1, eps=0.0, weight_decay=0.5), p,
                     [1.0, 2.0])
    expected = (0.95 - 0.1) * 0.95 - 0.1 * (0.29 / 0.19) / math.sqrt(0.004999 / 0.001999)
    assert got == pytest.approx(expected, abs=1e-14)
    # AMSGrad with gradients 2 then 0: v2 = 0.999 * 0.004 < v_max = 0.004.
    p = _scalar(device)
    got = _two_steps(device, optim.Adam([p], lr=0.1, eps=0.0, amsgrad=True), p, [2.0, 0.0])
    m2_hat = 0.9 * 0.2 / 0.19
    expected = 0.9 - 0.1 * m2_hat / (math.sqrt(0.004) / math.sqrt(0.001999))
    assert got == pytest.approx(expected, abs=1e-14)


def test_rmsprop_by_hand(device):
    # lr 0.01, alpha 0.99, eps 0: s1 = 0.01 -> p1 = 1 - 0.01 * 1 / 0.1 = 0.9
    # s2 = 0.0099 + 0.04 = 0.0499 -> p2 = 0.9 - 0.01 * 2 / sqrt(0.0499)
    p = _scalar(device)
    got = _two_steps(device, optim.RMSprop([p], lr=0.01, eps=0.0), p, [1.0, 2.0])
    assert got == pytest.approx(0.9 - 0.02 / math.sqrt(0.0499), abs=1e-14)
    # centered: a1 = 0.01, d1 = sqrt(0.01 - 0.0001); a2 = 0.0099 + 0.02 = 0.0299
    p = _scalar(device)
    got = _two_steps(device, optim.RMSprop([p], lr=0.01, eps=0.0, centered=True), p,
                     [1.0, 2.0])
    p1 = 1 - 0.01 / math.sqrt(0.0099)
    assert got == pytest.approx(p1 - 0.02 / math.sqrt(0.0499 - 0.0299 ** 2), abs=1e-14)
    # momentum 0.5: b1 = 1/0.1 = 10 -> 0.9; b2 = 5 + 2/sqrt(0.0499)
    p = _scalar(device)
    got = _two_steps(device, optim.RMSprop([p], lr=0.01, eps=0.0, momentum=0.5), p,
                     [1.0, 2.0])
    assert got == pytest.approx(0.9 - 0.01 * (5 + 2 / math.sqrt(0.0499)), abs=1e-14)


@pytest.mark.parametrize("opt_cls,kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
])
def test_float32_stays_float32_and_tracks_float64(device, opt_cls, kwargs):
    _, p32, opt = _minidl_run(opt_cls, kwargs, device, dtype="float32")
    _, p64, _ = _minidl_run(opt_cls, kwargs, device, dtype="float64")
    for group in opt.param_groups:
        for p in group["params"]:
            assert p.dtype == np.float32
            for key, value in opt.state[p].items():
                if key != "step":
                    assert value.dtype == np.float32, key
                    assert value.device == p.device
    for a, e in zip(p32[-1], p64[-1]):
        assert a.dtype == np.float32
        assert_close(a, e, rtol=1e-4, atol=1e-5)


def test_parameters_without_grad_are_skipped(device):
    a, b = _scalar(device, 1.0), _scalar(device, 2.0)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = md.tensor([1.0], dtype="float64", device=device)
    opt.step()
    assert b.item() == 2.0 and b not in opt.state
    assert a.item() == pytest.approx(0.9) and opt.state[a]["step"] == 1


def test_step_does_not_touch_the_gradient_or_record_a_graph(device):
    p = _scalar(device)
    p.grad = md.tensor([1.0], dtype="float64", device=device)
    opt = optim.SGD([p], lr=0.1, weight_decay=0.5, maximize=True)
    opt.step()
    assert p.grad.item() == 1.0 and p.is_leaf and p.requires_grad


def test_zero_grad(device):
    p = _scalar(device)
    opt = optim.SGD([p], lr=0.1)
    (p * 3.0).sum().backward()
    grad_array = p.grad.data
    opt.zero_grad(set_to_none=False)
    assert p.grad.data is grad_array and p.grad.item() == 0.0
    (p * 3.0).sum().backward()
    assert p.grad.item() == 3.0
    opt.zero_grad()
    assert p.grad is None


def test_step_with_closure_returns_the_loss(device):
    p = _scalar(device, 3.0)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0 and p.item() == pytest.approx(3.0 - 0.25 * 6.0)


def test_add_param_group_later(device):
    a, b = _scalar(device), _scalar(device)
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.5})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.5
    b.grad = md.tensor([1.0], dtype="float64", device=device)
    opt.step()
    assert b.item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="twice"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize("opt_cls,kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.05, amsgrad=True)),
    (optim.AdamW, dict(lr=0.05, weight_decay=0.1)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
])
def test_state_dict_round_trip_continues_identically(device, opt_cls, kwargs):
    w0, b0, X, Y = _problem()
    X, Y = md.tensor(X, dtype="float64", device=device), md.tensor(Y, dtype="float64",
                                                                   device=device)

    def make():
        w = md.tensor(w0, dtype="float64", device=device, requires_grad=True)
        b = md.tensor(b0, dtype="float64", device=device, requires_grad=True)
        return w, b, opt_cls([{"params": [w]}, {"params": [b], "lr": 0.02}], **kwargs)

    def train(w, b, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            _loss(w, b, X, Y).backward()
            opt.step()

    w, b, opt = make()
    train(w, b, opt, 5)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.02
    saved_w, saved_b = w.numpy().copy(), b.numpy().copy()
    train(w, b, opt, 5)
    # The snapshot is a copy: training on did not change it.
    for key, value in sd["state"][0].items():
        if key != "step":
            assert not np.array_equal(value.numpy(), opt.state[w][key].numpy()), key

    w2, b2, opt2 = make()
    w2.data[...] = md.tensor(saved_w, device=device).data
    b2.data[...] = md.tensor(saved_b, device=device).data
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == 0.02 and opt2.param_groups[0]["params"][0] is w2
    train(w2, b2, opt2, 5)
    assert np.array_equal(w2.numpy(), w.numpy()) and np.array_equal(b2.numpy(), b.numpy())


def test_load_state_dict_casts_state_to_the_parameter(device):
    p64 = _scalar(device)
    opt = optim.Adam([p64], lr=0.1)
    p64.grad = md.tensor([1.0], dtype="float64", device=device)
    opt.step()
    sd = opt.state_dict()
    p32 = md.tensor([1.0], dtype="float32", device=device, requires_grad=True)
    opt32 = optim.Adam([p32], lr=0.1)
    opt32.load_state_dict(sd)
    state = opt32.state[p32]
    assert state["step"] == 1 and state["exp_avg"].dtype == np.float32
    state["exp_avg"].data[...] = 7  # the loaded state is a copy
    assert sd["state"][0]["exp_avg"].item() == pytest.approx(0.1)


def test_load_state_dict_rejects_a_mismatch_and_changes_nothing(device):
    a = md.tensor(np.ones(3), device=device, requires_grad=True)
    b = md.tensor(np.ones(2), device=device, requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = md.ones(3, dtype="float64", device=device)
    b.grad = md.ones(2, dtype="float64", device=device)
    opt.step()
    sd = opt.state_dict()

    other = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.3)
    with pytest.raises(ValueError, match="has 1 parameter groups but the optimizer has 2"):
        other.load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0 has 2 parameters"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    swapped = optim.SGD([b, a], lr=0.3, momentum=0.5)
    with pytest.raises(ValueError, match=r"shape \(3,\) but its parameter has shape \(2,\)"):
        swapped.load_state_dict(sd)
    assert swapped.param_groups[0]["lr"] == 0.3 and len(swapped.state) == 0
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        swapped.load_state_dict({"state": {}})


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-0.1), "SGD: lr must be >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "SGD: momentum must be >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), "SGD: weight_decay must be >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov=True requires momentum > 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "dampening 0"),
    (lambda p: optim.SGD(p), "required option 'lr'"),
    (lambda p: optim.SGD([{"params": p, "lr": -1.0}], lr=0.1), "SGD: lr must be >= 0"),
    (lambda p: optim.Adam(p, lr=-1e-3), "Adam: lr must be >= 0"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\] must be >= 0.0 and < 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), r"betas\[1\] must be >= 0.0"),
    (lambda p: optim.Adam(p, eps=-1e-8), "Adam: eps must be >= 0"),
    (lambda p: optim.Adam(p, weight_decay=-0.1), "Adam: weight_decay must be >= 0"),
    (lambda p: optim.AdamW(p, betas=(0.9, 1.5)), r"AdamW: betas\[1\]"),
    (lambda p: optim.AdamW(p, lr=float("nan")), "AdamW: lr must be >= 0"),
    (lambda p: optim.RMSprop(p, lr=-0.01), "RMSprop: lr must be >= 0"),
    (lambda p: optim.RMSprop(p, alpha=1.5), "RMSprop: alpha must be >= 0.0 and <= 1.0"),
    (lambda p: optim.RMSprop(p, eps=-1.0), "RMSprop: eps must be >= 0"),
    (lambda p: optim.RMSprop(p, momentum=-0.9), "RMSprop: momentum must be >= 0"),
    (lambda p: optim.RMSprop(p, weight_decay=-0.9), "RMSprop: weight_decay must be >= 0"),
    (lambda p: optim.SGD(p + p, lr=0.1), "appears twice"),
    (lambda p: optim.SGD([{"params": p}, {"params": p}], lr=0.1), "appears twice"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD([p[0] * 2], lr=0.1), "non-leaf"),
    (lambda p: optim.SGD([{"lr": 0.1}], lr=0.1), "needs a 'params' entry"),
])
def test_bad_options_raise_value_error(make, match):
    params = [md.randn(2, 2, dtype="float64", requires_grad=True)]
    with pytest.raises(ValueError, match=match):
        make(params)


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p[0], lr=0.1), "single Tensor"),
    (lambda p: optim.SGD(set(p), lr=0.1), "set"),
    (lambda p: optim.SGD([p[0], np.ones(2)], lr=0.1), "param 1 is a ndarray"),
    (lambda p: optim.SGD(3, lr=0.1), "got int"),
    (lambda p: optim.SGD([md.tensor([1, 2])], lr=0.1), "dtype int64"),
    (lambda p: optim.SGD(p, lr="0.1"), "lr must be a real number"),
    (lambda p: optim.Adam(p, betas=0.9), "betas must be a pair"),
])
def test_bad_params_raise_type_error(make, match):
    params = [md.randn(2, 2, dtype="float64", requires_grad=True)]
    with pytest.raises(TypeError, match=match):
        make(params)


def test_repr_lists_the_groups():
    opt = optim.Adam([md.randn(2, requires_grad=True)], lr=0.01)
    text = repr(opt)
    assert text.startswith("Adam (") and "lr: 0.01" in text and "betas: (0.9, 0.999)" in text


class _Float32Only(np.ndarray):
    """An ndarray view that fails on any ufunc result that is not float32."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, _Float32Only) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, _Float32Only) else o
                                  for o in kwargs["out"])
        result = getattr(ufunc, method)(*plain, **kwargs)
        for r in result if isinstance(result, tuple) else (result,):
            if isinstance(r, np.ndarray) and r.dtype.kind == "f":
                assert r.dtype == np.float32, f"{ufunc.__name__} made a {r.dtype} array"
        if isinstance(result, np.ndarray):
            return result.view(_Float32Only)
        return result


@pytest.mark.parametrize("opt_cls,kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01,
                     maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
])
def test_no_float64_temporaries_for_float32_params(opt_cls, kwargs):
    p = md.randn(3, 2, requires_grad=True)
    p.data = p.data.view(_Float32Only)
    opt = opt_cls([p], **kwargs)
    for _ in range(2):
        p.grad = md.Tensor._wrap(np.full((3, 2), 0.5, np.float32).view(_Float32Only))
        opt.step()
    assert p.dtype == np.float32


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_random_options_match_torch(data):
    torch = pytest.importorskip("torch")
    name = data.draw(st.sampled_from(["SGD", "Adam", "AdamW", "RMSprop"]), label="optimizer")
    rate = st.floats(0.0, 0.5)
    frac = st.floats(0.0, 0.99)
    kwargs = dict(lr=data.draw(st.floats(1e-4, 0.3), label="lr"),
                  weight_decay=data.draw(rate, label="weight_decay"),
                  maximize=data.draw(st.booleans(), label="maximize"))
    if name == "SGD":
        nesterov = data.draw(st.booleans(), label="nesterov")
        kwargs.update(momentum=data.draw(st.floats(0.01, 0.99) if nesterov else frac),
                      dampening=0.0 if nesterov else data.draw(frac, label="dampening"),
                      nesterov=nesterov)
    elif name in ("Adam", "AdamW"):
        kwargs.update(betas=(data.draw(frac, label="beta1"), data.draw(frac, label="beta2")),
                      eps=data.draw(st.floats(1e-8, 1e-2), label="eps"),
                      amsgrad=data.draw(st.booleans(), label="amsgrad"))
    else:
        kwargs.update(alpha=data.draw(frac, label="alpha"), momentum=data.draw(frac),
                      eps=data.draw(st.floats(1e-8, 1e-2), label="eps"),
                      centered=data.draw(st.booleans(), label="centered"))
    grads, ours, _ = _minidl_run(getattr(optim, name), kwargs, "cpu")
    theirs = _torch_run(torch, name, kwargs, grads)
    for step, (a, e) in enumerate(zip(ours, theirs)):
        for i in range(2):
            assert_close(a[i], e[i], rtol=1e-9, atol=1e-10,
                         msg=f"{name} {kwargs} step {step} param {i}: ")


def test_zero_grad_of_a_create_graph_gradient_keeps_its_graph(device):
    p = _scalar(device, 2.0)
    (p * p * p).sum().backward(create_graph=True)       # grad 3 p^2 = 12, with a graph
    graph_grad = p.grad
    optim.SGD([p], lr=0.1).zero_grad(set_to_none=False)
    assert p.grad.item() == 0.0 and p.grad.grad_fn is None
    assert graph_grad.item() == 12.0
    graph_grad.sum().backward()                          # d(3 p^2)/dp = 6 p = 12
    assert p.grad.item() == 12.0


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                     enumerate(CASES)])
def test_update_in_blocks_over_threads_gives_the_same_bits(monkeypatch, name, kwargs):
    """Optimizer._in_blocks cuts each update into blocks run in threads; the rules are
    elementwise, so the trajectory must be bit for bit that of whole-array updates."""
    from minidl.optim import optimizer as optimizer_module
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal((37, 29)).astype(np.float32)     # 1073 elements
    grads = [rng.standard_normal(p0.shape).astype(np.float32) for _ in range(4)]

    def trajectory(block, threads):
        monkeypatch.setattr(optimizer_module, "UPDATE_BLOCK", block)
        md.set_num_threads(threads)
        p = md.tensor(p0.copy(), requires_grad=True)
        opt = getattr(optim, name)([p], **kwargs)
        out = []
        for g in grads:
            p.grad = md.tensor(g)
            opt.step()
            out.append(p.numpy().copy())
        return out

    before = md.get_num_threads()
    try:
        whole = trajectory(1 << 20, 1)
        blocked = trajectory(50, 3)        # 22 blocks, the last one short, in 3 threads
    finally:
        md.set_num_threads(before)
    assert np.abs(whole[-1] - p0).max() > 1e-4, "the parameters should have moved"
    for step, (a, b) in enumerate(zip(whole, blocked)):
        assert np.array_equal(a, b), f"{name} step {step}: blocked update differs"

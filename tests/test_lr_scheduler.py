"""Learning-rate schedulers: PyTorch's lrs over 100 steps, resuming, bad input."""
import math
import warnings

import numpy as np
import pytest

import minidl as md
from minidl import optim
from minidl.optim import lr_scheduler as sched
from minidl.testing import assert_close

STEPS = 100
LRS = [0.1, 0.02]  # two parameter groups with their own lr


def _optimizer(kind="SGD", lib=None):
    """An optimizer with two groups, from minidl (lib=None) or from torch."""
    if lib is None:
        params = [md.zeros(1, requires_grad=True), md.zeros(1, requires_grad=True)]
        module = optim
    else:
        params = [lib.zeros(1, requires_grad=True), lib.zeros(1, requires_grad=True)]
        module = lib.optim
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, LRS)]
    if kind == "SGD":
        return module.SGD(groups, lr=LRS[0], momentum=0.9)
    return module.Adam(groups, lr=LRS[0])


def _history(opt, scheduler, steps=STEPS):
    """The lr of every group (and the momentum/beta1) before each of ``steps`` steps."""
    lrs, momenta = [], []
    for _ in range(steps):
        lrs.append(list(scheduler.get_last_lr()))
        momenta.append([g["betas"][0] if "betas" in g else g["momentum"]
                        for g in opt.param_groups])
        opt.step()
        scheduler.step()
    return np.array(lrs), np.array(momenta)


CASES = [
    ("StepLR", dict(step_size=7)),
    ("StepLR", dict(step_size=3, gamma=0.7)),
    ("MultiStepLR", dict(milestones=[10, 30, 30, 75], gamma=0.5)),
    ("MultiStepLR", dict(milestones=[80, 20])),
    ("CosineAnnealingLR", dict(T_max=100)),
    ("CosineAnnealingLR", dict(T_max=30, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=17)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.01, end_factor=1.0, total_iters=40)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.1, total_iters=60)),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=100)),
    ("OneCycleLR", dict(max_lr=0.3, epochs=10, steps_per_epoch=10, pct_start=0.25,
                        anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=100, three_phase=True)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=120, cycle_momentum=False)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=100, base_momentum=0.8,
                        max_momentum=[0.9, 0.99], opt="Adam")),
]


@pytest.mark.parametrize("name,kwargs", CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_learning_rates_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    kwargs = dict(kwargs)
    kind = kwargs.pop("opt", "SGD")
    opt = _optimizer(kind)
    ours_lr, ours_m = _history(opt, getattr(sched, name)(opt, **kwargs))
    topt = _optimizer(kind, lib=torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_lr, theirs_m = _history(topt, getattr(torch.optim.lr_scheduler, name)(
            topt, **kwargs))
    assert len(np.unique(ours_lr[:, 0])) > 1, "the schedule should change the lr"
    # Closed forms against PyTorch's recursive updates: equal to float precision.
    assert_close(ours_lr, theirs_lr, rtol=1e-12, atol=1e-15)
    assert_close(ours_m, theirs_m, rtol=1e-12, atol=1e-15)
    # After the last step the groups hold the next lr, as PyTorch's do.
    assert_close([g["lr"] for g in opt.param_groups], [g["lr"] for g in topt.param_groups],
                 rtol=1e-12, atol=1e-15)


def test_closed_forms_by_hand():
    opt = _optimizer()
    step = sched.StepLR(opt, step_size=2, gamma=0.5)
    lrs, _ = _history(opt, step, 6)
    assert_close(lrs[:, 0], [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-15)
    assert_close(lrs[:, 1], [0.02, 0.02, 0.01, 0.01, 0.005, 0.005], rtol=1e-15)

    opt = _optimizer()
    lrs, _ = _history(opt, sched.CosineAnnealingLR(opt, T_max=4, eta_min=0.0), 5)
    expected = [0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    assert_close(lrs[:, 0], expected, rtol=1e-15, atol=1e-18)
    assert lrs[4, 0] == pytest.approx(0.0, abs=1e-18) and lrs[2, 0] == pytest.approx(0.05)

    opt = _optimizer()
    lrs, _ = _history(opt, sched.LinearWarmup(opt, start_factor=0.25, total_iters=3), 5)
    assert_close(lrs[:, 0], [0.025, 0.05, 0.075, 0.1, 0.1], rtol=1e-15)

    opt = _optimizer()
    lrs, _ = _history(opt, sched.MultiStepLR(opt, milestones=[1, 3, 3]), 4)
    assert_close(lrs[:, 0], [0.1, 0.01, 0.01, 0.0001], rtol=1e-12)


def test_one_cycle_by_hand():
    opt = _optimizer()
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=11, pct_start=0.5,
                         anneal_strategy="linear", div_factor=10.0, final_div_factor=10.0)
    lrs, momenta = _history(opt, s, 11)
    # up from 0.1 to 1.0 over steps 0..4.5, then down to 0.01 at step 10
    assert lrs[0, 0] == pytest.approx(0.1) and lrs[10, 0] == pytest.approx(0.01)
    assert lrs[:, 0].argmax() in (4, 5) and lrs[:, 0].max() <= 1.0
    assert momenta[0, 0] == pytest.approx(0.95) and momenta[:, 0].min() >= 0.85
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(0.1)
    assert opt.param_groups[0]["min_lr"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="stepped 12 times but total_steps is 11"):
        s.step()


def test_initial_lr_and_last_epoch():
    opt = _optimizer()
    s = sched.StepLR(opt, step_size=5)
    assert [g["initial_lr"] for g in opt.param_groups] == LRS
    assert s.base_lrs == LRS and s.last_epoch == 0 and s.get_last_lr() == LRS
    for _ in range(5):
        s.step()
    assert s.last_epoch == 5 and s.get_last_lr() == pytest.approx([0.01, 0.002])
    assert [g["lr"] for g in opt.param_groups] == s.get_last_lr()
    # get_last_lr is a copy
    s.get_last_lr()[0] = 123.0
    assert s.get_last_lr()[0] == pytest.approx(0.01)


@pytest.mark.parametrize("make", [
    lambda o: sched.StepLR(o, step_size=4, gamma=0.5),
    lambda o: sched.MultiStepLR(o, milestones=[5, 12]),
    lambda o: sched.CosineAnnealingLR(o, T_max=25, eta_min=1e-3),
    lambda o: sched.LinearWarmup(o, start_factor=0.1, total_iters=15),
    lambda o: sched.OneCycleLR(o, max_lr=0.5, total_steps=40, three_phase=True),
])
def test_resume_from_state_dicts_continues_identically(make):
    opt = _optimizer()
    s = make(opt)
    for _ in range(10):
        opt.step()
        s.step()
    opt_sd, s_sd = opt.state_dict(), s.state_dict()
    assert "optimizer" not in s_sd and s_sd["last_epoch"] == 10
    rest, _ = _history(opt, s, 20)

    opt2 = _optimizer()
    s2 = make(opt2)        # as PyTorch advises: build the scheduler, then load both
    opt2.load_state_dict(opt_sd)
    s2.load_state_dict(s_sd)
    assert s2.get_last_lr() == s_sd["_last_lr"]
    rest2, _ = _history(opt2, s2, 20)
    assert np.array_equal(rest, rest2)


def test_resume_with_last_epoch_needs_initial_lr():
    opt = _optimizer()
    with pytest.raises(ValueError, match=r"param_groups\[0\] has no 'initial_lr'"):
        sched.StepLR(opt, step_size=3, last_epoch=5)
    opt.param_groups[0]["initial_lr"] = opt.param_groups[1]["initial_lr"] = 1.0
    s = sched.StepLR(opt, step_size=3, gamma=0.5, last_epoch=5)
    assert s.last_epoch == 6 and s.get_last_lr() == [0.25, 0.25]


def test_load_state_dict_of_another_scheduler_fails():
    opt = _optimizer()
    s = sched.StepLR(opt, step_size=3)
    other = sched.CosineAnnealingLR(_optimizer(), T_max=10).state_dict()
    with pytest.raises(ValueError, match="missing.*step_size.*unexpected.*T_max"):
        s.load_state_dict(other)


@pytest.mark.parametrize("make,error,match", [
    (lambda o: sched.StepLR(o, step_size=0), ValueError, "StepLR: step_size must be >= 1"),
    (lambda o: sched.StepLR(o, step_size=2.5), TypeError, "step_size must be an int"),
    (lambda o: sched.StepLR(o, step_size=2, gamma=-0.1), ValueError, "gamma must be >= 0"),
    (lambda o: sched.MultiStepLR(o, milestones=[3, "a"]), TypeError, r"milestones\[1\]"),
    (lambda o: sched.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be >= 1"),
    (lambda o: sched.CosineAnnealingLR(o, T_max=5, eta_min=-1.0), ValueError, "eta_min"),
    (lambda o: sched.LinearLR(o, start_factor=0.0), ValueError, "start_factor must be > 0"),
    (lambda o: sched.LinearLR(o, end_factor=1.5), ValueError, "end_factor"),
    (lambda o: sched.LinearLR(o, total_iters=0), ValueError, "total_iters must be >= 1"),
    (lambda o: sched.OneCycleLR(o, max_lr=0.1), ValueError, "give total_steps"),
    (lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=0), ValueError, "total_steps"),
    (lambda o: sched.OneCycleLR(o, max_lr=[0.1], total_steps=10), ValueError,
     "max_lr has 1 values but the optimizer has 2"),
    (lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5), ValueError,
     "pct_start"),
    (lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"),
     ValueError, "anneal_strategy"),
    (lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=0.1), ValueError,
     "phase 1 of the cycle is empty"),
    (lambda o: sched.StepLR(object(), step_size=3), TypeError, "minidl Optimizer"),
    (lambda o: sched.OneCycleLR("opt", max_lr=0.1, total_steps=10), TypeError,
     "minidl Optimizer"),
])
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make(_optimizer())


def test_one_cycle_momentum_needs_an_optimizer_with_momentum():
    class Plain(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def _update(self, param, grad, group, state):
            param -= group["lr"] * grad

    opt = Plain([md.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="cycle_momentum=True needs an optimizer"):
        sched.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    s = sched.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)
    assert s.get_last_lr() == [pytest.approx(0.004)]


def test_linear_warmup_is_linear_lr():
    assert sched.LinearWarmup is sched.LinearLR

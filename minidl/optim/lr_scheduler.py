"""Learning-rate schedulers: StepLR, MultiStepLR, CosineAnnealingLR, OneCycleLR, LinearLR.

A scheduler owns the ``lr`` of each parameter group of one optimizer. Creating it stores
each group's starting lr as ``group["initial_lr"]`` (kept in ``base_lrs``) and sets the
lr for epoch 0; each ``step()`` (call it after ``optimizer.step()``) advances
``last_epoch`` by one and writes the new lr into every group::

    for epoch in range(epochs):
        train_one_epoch(model, optimizer)     # calls optimizer.step() per batch
        scheduler.step()

Every lr is computed from ``base_lrs`` and ``last_epoch`` with the closed form of the
schedule (PyTorch's ``_get_closed_form_lr``), which equals PyTorch's step-by-step values
to float precision. So the schedule does not drift, resumes exactly from
``state_dict()``, but does not compose with another scheduler changing the same lrs
(PyTorch's "chaining"): use one scheduler per optimizer.
"""
from __future__ import annotations

import bisect
import copy
import math
import numbers

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "CosineAnnealingLR", "OneCycleLR",
           "LinearLR", "LinearWarmup"]


def _check_int(op: str, key: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {key} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{op}: {key} must be >= {low}, got {value!r}")


def _check_real(op: str, key: str, value, low: float = None, high: float = None,
                low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {key} must be a real number, got {value!r}")
    below = low is not None and (value <= low if low_open else value < low)
    if below or (high is not None and value > high) or value != value:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        raise ValueError(f"{op}: {key} must be {' and '.join(s for s in (lo, hi) if s)}, "
                         f"got {value!r}")


class LRScheduler:
    """Base class: sets ``initial_lr``, steps ``last_epoch``, saves and restores.

    Subclasses define ``get_lr()``: the lr of every group at epoch ``last_epoch``.

    Args:
        optimizer: the optimizer whose groups' ``lr`` this scheduler sets.
        last_epoch: -1 to start a schedule; the index of the last epoch to resume one (the
            groups must then hold ``initial_lr``, as a loaded optimizer state does).

    Raises:
        TypeError: optimizer is not a minidl Optimizer.
        ValueError: resuming (last_epoch >= 0) with a group that has no ``initial_lr``.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: optimizer must be a minidl Optimizer, got "
                            f"{type(optimizer).__name__}")
        _check_int(name, "last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(f"{name}: resuming with last_epoch={last_epoch} but "
                                     f"param_groups[{i}] has no 'initial_lr'; load the "
                                     f"optimizer's state dict first, or use last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> list:
        """The lr of each group at epoch ``last_epoch`` (each scheduler's own formula)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch (or one batch, for OneCycleLR) and set the groups' lr."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The lrs set by the last ``step()`` (one per parameter group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer: plain numbers, strings and lists (checkpointable)."""
        return {key: copy.deepcopy(value)
                for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()`` of the same kind of scheduler.

        Raises:
            ValueError: keys missing from the state dict, or keys this scheduler lacks.
        """
        name = type(self).__name__
        mine = set(self.state_dict())
        theirs = set(state_dict)
        if mine != theirs:
            raise ValueError(f"{name}.load_state_dict: keys do not match; missing "
                             f"{sorted(mine - theirs)}, unexpected {sorted(theirs - mine)}")
        # A checkpoint may hand back tuples where lists were saved (and vice versa).
        self.__dict__.update({k: (list(v) if isinstance(v, tuple) else copy.deepcopy(v))
                              for k, v in state_dict.items()})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, " \
               f"last_lr={self.get_last_lr()})"


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs.

    lr(epoch) = base_lr * gamma ** (epoch // step_size)

    >>> sched = StepLR(opt, step_size=30, gamma=0.1)   # 0.1, 0.01 after 30, 0.001 after 60
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        _check_int("StepLR", "step_size", step_size, 1)
        _check_real("StepLR", "gamma", gamma, 0.0)
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        factor = self.gamma ** (self.last_epoch // self.step_size)
        return [base_lr * factor for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch.

    lr(epoch) = base_lr * gamma ** (number of milestones <= epoch); a milestone given twice
    counts twice, as in PyTorch.

    >>> sched = MultiStepLR(opt, milestones=[30, 80], gamma=0.1)
    """

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1,
                 last_epoch: int = -1):
        milestones = list(milestones)
        for i, m in enumerate(milestones):
            _check_int("MultiStepLR", f"milestones[{i}]", m, 0)
        _check_real("MultiStepLR", "gamma", gamma, 0.0)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        factor = self.gamma ** bisect.bisect_right(self.milestones, self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from base_lr to ``eta_min`` along half a cosine over ``T_max`` epochs.

    lr(epoch) = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2

    Past T_max the cosine continues (the lr rises again), as PyTorch's does; this is the
    SGDR schedule without restarts.

    >>> sched = CosineAnnealingLR(opt, T_max=100, eta_min=1e-5)
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        _check_real("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        self.T_max, self.eta_min = int(T_max), eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the lr linearly from ``start_factor`` to ``end_factor`` over ``total_iters``.

    lr(epoch) = base_lr * (start + (end - start) * min(epoch, total_iters) / total_iters)

    With the defaults this is a linear warm-up from base_lr/3 to base_lr in 5 steps
    (``LinearWarmup`` is the same class).

    >>> sched = LinearWarmup(opt, start_factor=0.01, total_iters=500)   # step per batch
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1):
        name = type(self).__name__
        _check_real(name, "start_factor", start_factor, 0.0, 1.0, low_open=True)
        _check_real(name, "end_factor", end_factor, 0.0, 1.0)
        _check_int(name, "total_iters", total_iters, 1)
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        progress = min(self.total_iters, self.last_epoch) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base_lr * factor for base_lr in self.base_lrs]


LinearWarmup = LinearLR


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin): warm up to ``max_lr``, then anneal far below.

    Step it once per batch. With ``total_steps`` = T and pct_start = s, the lr goes

        phase 1, steps 0 .. s*T - 1:    max_lr / div_factor  ->  max_lr
        phase 2, up to step T - 1:      max_lr  ->  max_lr / (div_factor * final_div_factor)

    along half cosines (anneal_strategy='cos') or straight lines ('linear'). With
    three_phase=True the second phase returns to the initial lr over another s*T steps and
    a third phase anneals to the minimum. When ``cycle_momentum`` is true, the momentum
    (SGD, RMSprop: ``group["momentum"]``; Adam: beta1 of ``group["betas"]``) moves the
    other way, between ``max_momentum`` and ``base_momentum``.

    Args:
        optimizer: the optimizer.
        max_lr: the peak lr, one number or one per group.
        total_steps: the number of steps in the cycle; or give epochs and steps_per_epoch.
        pct_start: the fraction of the cycle spent increasing the lr, in [0, 1].
        anneal_strategy: 'cos' or 'linear'.
        cycle_momentum, base_momentum, max_momentum: the inverse momentum cycle.
        div_factor: initial lr = max_lr / div_factor.
        final_div_factor: minimum lr = initial lr / final_div_factor.
        three_phase: the three-phase variant of fastai.

    Raises:
        ValueError: no step count, a bad fraction or strategy, cycle_momentum with an
            optimizer without momentum, or more than total_steps steps.

    >>> sched = OneCycleLR(opt, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))
    """

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int = None,
                 epochs: int = None, steps_per_epoch: int = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1):
        name = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: optimizer must be a minidl Optimizer, got "
                            f"{type(optimizer).__name__}")
        if total_steps is not None:
            _check_int(name, "total_steps", total_steps, 1)
            self.total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            _check_int(name, "epochs", epochs, 1)
            _check_int(name, "steps_per_epoch", steps_per_epoch, 1)
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError(f"{name}: give total_steps, or both epochs and "
                             f"steps_per_epoch; got total_steps={total_steps}, "
                             f"epochs={epochs}, steps_per_epoch={steps_per_epoch}")
        _check_real(name, "pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        _check_real(name, "div_factor", div_factor, 0.0, low_open=True)
        _check_real(name, "final_div_factor", final_div_factor, 0.0, low_open=True)
        self.anneal_strategy = anneal_strategy

        # Phase boundaries are PyTorch's, float end steps included.
        up = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                dict(end_step=up, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=float(2 * pct_start * self.total_steps) - 2,
                     start_lr="max_lr", end_lr="initial_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum"),
            ]
        else:
            self._schedule_phases = [
                dict(end_step=up, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
            ]

        start = 0.0
        for i, phase in enumerate(self._schedule_phases):
            if phase["end_step"] == start:  # PyTorch divides by zero here
                raise ValueError(f"{name}: phase {i + 1} of the cycle is empty (pct_start="
                                 f"{pct_start}, total_steps={self.total_steps}); change "
                                 f"pct_start or the number of steps")
            start = phase["end_step"]

        groups = optimizer.param_groups
        max_lrs = _per_group(name, "max_lr", max_lr, groups)
        if last_epoch == -1:
            for group, peak in zip(groups, max_lrs):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with a "
                                 f"'momentum' or 'betas' option, got "
                                 f"{type(optimizer).__name__}; pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            max_ms = _per_group(name, "max_momentum", max_momentum, groups)
            base_ms = _per_group(name, "base_momentum", base_momentum, groups)
            if last_epoch == -1:
                for group, m_max, m_base in zip(groups, max_ms, base_ms):
                    self._set_momentum(group, m_max)
                    group["max_momentum"], group["base_momentum"] = m_max, m_base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict, momentum: float) -> None:
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times but total_steps is "
                             f"{self.total_steps}; make total_steps (or epochs * "
                             f"steps_per_epoch) cover the whole run")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[phase["start_lr"]],
                                            group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(
                            group[phase["start_momentum"]], group[phase["end_momentum"]],
                            pct))
                    break
                start_step = phase["end_step"]
        return lrs


def _per_group(op: str, key: str, value, groups: list) -> list:
    """One value per parameter group, from a number or a list/tuple of them."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(f"{op}: {key} has {len(value)} values but the optimizer has "
                             f"{len(groups)} parameter groups")
        values = list(value)
    else:
        values = [value] * len(groups)
    for i, v in enumerate(values):
        _check_real(op, key if len(values) == 1 else f"{key}[{i}]", v, 0.0)
    return values

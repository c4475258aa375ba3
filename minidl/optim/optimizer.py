"""Optimizer: the bookkeeping shared by SGD, Adam, AdamW and RMSprop.

An optimizer holds ``param_groups`` (a list of dicts, each with its ``params`` and its own
options such as ``lr``) and ``state`` (a dict per parameter: momentum buffers, moment
estimates, step counts). ``step()`` visits every parameter that has a gradient and calls the
subclass's ``_update(param, grad, group, state)``, which changes ``param.data`` in place with
plain array arithmetic: no graph is recorded, the same lines run on NumPy and CuPy, and a
float32 parameter stays float32 (options are Python floats, which never upcast an array).

On the CPU each rule runs on blocks of the flattened arrays (``_in_blocks``), shared out over
minidl's threads: the rule's passes then find each block in the cache, and its intermediate
results are block-sized instead of parameter-sized.

``state_dict()`` / ``load_state_dict()`` follow PyTorch: parameters are referred to by their
index in the order of the groups, state arrays are copied into Tensors, and loading casts
floating-point state to the dtype and device of the parameter it belongs to.
"""
from __future__ import annotations

import copy
import numbers
from collections import defaultdict

import numpy as np

from .. import backend
from ..grad_mode import enable_grad
from ..parallel import map_blocks
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]

# Elements per block of an update rule: 256 KB of float32, so that the three or four
# arrays a rule touches stay in a core's L2 cache (1 MB here) for all of its passes.
# Measured on 2 cores, SGD with momentum on ResNet-18's 11.2M parameters: 26 ms in whole
# arrays, 13 ms in blocks of 2^16 (18 ms in one thread), 21 ms in blocks of 2^14 and
# 16 ms in blocks of 2^18; PyTorch 2.13: 11 ms.
UPDATE_BLOCK = 1 << 16


class _RequiredOption:
    """Marks an option that has no default and must be given (SGD's lr)."""

    def __repr__(self) -> str:
        return "<required option>"


required = _RequiredOption()


class Optimizer:
    """Base class of the optimizers: parameter groups, per-parameter state, step, save/load.

    Subclasses set the defaults of their options, check them in ``_check_group`` and write
    the update of one parameter in ``_update`` on raw arrays.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups) each holding
            ``"params"`` and any options that override ``defaults`` for that group.
        defaults: the options of every group that does not set its own.

    Raises:
        TypeError: params is a single Tensor, a set, or holds something other than Tensors.
        ValueError: no parameters, a parameter given twice, a non-leaf parameter, or an
            option out of range (named by the subclass's check).

    >>> opt = md.optim.SGD([{"params": [w]}, {"params": [b], "lr": 1e-3}], lr=0.1)
    >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        if not any(v is required for v in self.defaults.values()):
            self._check_group(self.defaults)  # bad defaults fail even if every group overrides
        self.state: dict = defaultdict(dict)
        self.param_groups: list = []
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, "
                            f"got a single Tensor of shape {params.shape}; wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: params must be an ordered collection (list), got a "
                            f"set, whose order changes between runs")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, "
                            f"got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    # ---- parameter groups ---------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own options (e.g. layers unfrozen later).

        Args:
            param_group: ``{"params": tensors, **options}``; missing options take the
                optimizer's defaults.

        Raises:
            TypeError: not a dict, or a parameter that is not a float Tensor.
            ValueError: a parameter already optimized, a non-leaf, a missing required
                option, or an option out of range.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry, got keys "
                             f"{sorted(param_group)}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: the params of a group must be an ordered collection "
                            f"(list), got a set")
        group["params"] = list(params)
        g = len(self.param_groups)
        for i, p in enumerate(group["params"]):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, but param_groups[{g}] "
                                f"param {i} is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (param_groups"
                                 f"[{g}] param {i}, made by {p.grad_fn.name})")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: only float Tensors can be optimized, but "
                                f"param_groups[{g}] param {i} has dtype {p.dtype}")
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group {g} does not set the required "
                                 f"option {key!r}")
            group.setdefault(key, default)
        self._check_group(group)

        seen = {id(p) for other in self.param_groups for p in other["params"]}
        for i, p in enumerate(group["params"]):
            if id(p) in seen:
                raise ValueError(f"{name}: a parameter appears twice (param_groups[{g}] "
                                 f"param {i}, shape {p.shape}); each parameter may be "
                                 f"given only once")
            seen.add(id(p))
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        """Raise ValueError/TypeError for an option out of range (each optimizer's own)."""

    def _check_option(self, group: dict, key: str, low: float = 0.0, high: float = None,
                      high_open: bool = False) -> None:
        """Check ``low <= group[key]`` (and ``<= high``, or ``< high`` when ``high_open``)."""
        _check_number(type(self).__name__, key, group[key], low, high, high_open)

    # ---- the update ---------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set ``p.grad`` to None (default) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif p.grad.grad_fn is not None:
                    # A create_graph gradient: fresh zeros, so its graph keeps its arrays.
                    xp = backend.get_array_module(p.grad.data)
                    p.grad = Tensor._wrap(xp.zeros_like(p.grad.data))
                else:
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; return ``closure()``'s loss if given.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss
                (it runs with grad enabled, before the update).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                if grad.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}.step: gradient of shape "
                                     f"{grad.shape} does not match its parameter of shape "
                                     f"{p.data.shape}")
                if grad.dtype != p.data.dtype:
                    grad = grad.astype(p.data.dtype)
                self._update(p.data, grad, group, self.state[p])
        return loss

    def _update(self, param, grad, group: dict, state: dict) -> None:
        """Change the array ``param`` in place from ``grad`` (each optimizer's own rule)."""
        raise NotImplementedError

    @staticmethod
    def _in_blocks(rule, *arrays) -> None:
        """rule(*pieces) on blocks of UPDATE_BLOCK elements of the flattened ``arrays``
        (parameter, gradient, state buffers, all of one shape), in minidl's threads.

        An update rule is a handful of elementwise passes. Run on whole arrays, each pass
        streams every array through memory once more, and each intermediate result is a
        new array the size of the parameter (ResNet-18's largest: 9.4 MB). On a block of
        256 KB the passes after the first find the data in the cache, and the
        intermediates are small. The rule is elementwise, so the blocks give the same
        bits as one whole-array call. CuPy arrays, and arrays that reshape(-1) could not
        flatten in place, go to ``rule`` whole.
        """
        if backend.get_array_module(arrays[0]) is not np or \
                not all(a.flags.c_contiguous for a in arrays):
            rule(*arrays)
            return
        flat = [a.reshape(-1) for a in arrays]
        map_blocks(lambda block: rule(*(a[block] for a in flat)), flat[0].size,
                   min_block=4 * UPDATE_BLOCK, max_block=UPDATE_BLOCK)

    @staticmethod
    def _new_buffer(param, fill=None) -> Tensor:
        """A state Tensor shaped like ``param``: zeros, or a copy of ``fill``."""
        xp = backend.get_array_module(param)
        return Tensor._wrap(xp.zeros_like(param) if fill is None else fill.copy())

    # ---- saving and restoring -----------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state as ``{"state": {index: {...}}, "param_groups": [...]}``.

        Parameters are numbered in the order of the groups; state arrays are copied into
        Tensors (on the parameters' device), so later steps do not change the snapshot.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: _copy_value(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()`` onto this optimizer's parameters (same group layout).

        Floating-point state is cast to the dtype and moved to the device of its parameter
        ('step' stays an int). The options saved with each group replace the current ones.
        Nothing is changed when the state dict does not fit.

        Raises:
            ValueError: different number of groups or of parameters in a group, state for
                an unknown parameter index, or a state array whose shape is not its
                parameter's.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else \
                type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' "
                             f"and 'param_groups', got {keys}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has "
                             f"{len(saved_groups)} parameter groups but the optimizer has "
                             f"{len(self.param_groups)}")
        id_map = {}
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {g} has "
                                 f"{len(saved['params'])} parameters in the state dict but "
                                 f"{len(group['params'])} in the optimizer")
            id_map.update(zip(saved["params"], group["params"]))

        new_state = defaultdict(dict)
        for index, saved in state_dict["state"].items():
            if index not in id_map:
                raise ValueError(f"{name}.load_state_dict: state for parameter {index!r}, "
                                 f"which no parameter group lists (known: "
                                 f"{sorted(id_map)})")
            p = id_map[index]
            new_state[p] = {k: _cast_state_value(name, index, k, v, p)
                            for k, v in saved.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            new = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            new["params"] = group["params"]
            self._check_group(new)
            new_groups.append(new)
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _check_number(op: str, key: str, value, low: float = 0.0, high: float = None,
                  high_open: bool = False) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {key} must be a real number, got {value!r}")
    too_high = high is not None and (value >= high if high_open else value > high)
    if not value >= low or too_high:  # `not >=` also rejects NaN
        upper = "" if high is None else f" and {'<' if high_open else '<='} {high}"
        raise ValueError(f"{op}: {key} must be >= {low}{upper}, got {value!r}")


def _copy_value(value):
    if isinstance(value, Tensor):
        return Tensor._wrap(value.data.copy())
    return copy.deepcopy(value)


def _cast_state_value(op: str, index, key: str, value, param: Tensor):
    """A state entry from a state dict, made ready for ``param`` (copied)."""
    if key == "step":
        return int(float(value.item() if isinstance(value, Tensor) else value))
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray) or hasattr(value, "__cuda_array_interface__"):
        array = backend.to_device(value, param.device)
        if array.shape != param.data.shape:
            raise ValueError(f"{op}.load_state_dict: state[{index!r}][{key!r}] has shape "
                             f"{tuple(array.shape)} but its parameter has shape "
                             f"{param.shape}")
        if array.dtype.kind == "f":
            array = array.astype(param.dtype, copy=False)
        xp = backend.get_array_module(array)
        return Tensor._wrap(xp.array(array, copy=True))
    return copy.deepcopy(value)

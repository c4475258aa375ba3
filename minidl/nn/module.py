"""Module: the base class of every layer and model.

A Module keeps three insertion-ordered dicts, filled by plain attribute assignment:

* ``_parameters``: the learnable Parameters (``self.weight = Parameter(...)``);
* ``_buffers``: Tensors that are state but not learned (BatchNorm's running mean);
* ``_modules``: the sub-modules (``self.conv1 = Conv2d(...)``).

Everything else (``parameters()``, ``state_dict()``, ``to()``, ``train()``, the printed
tree) walks those dicts, so the key of a weight in a state dict is just the path of
attribute names that leads to it: ``layer1.0.conv1.weight``, as in PyTorch.
"""
from __future__ import annotations

import itertools
import numbers
from collections import OrderedDict, namedtuple
from typing import Callable, Iterator

import numpy as np

from .. import backend
from ..backend import Device
from ..grad_mode import no_grad
from ..tensor import Tensor, _parse_dtype
from .parameter import Parameter

__all__ = ["Module", "RemovableHandle", "StateDictError", "IncompatibleKeys"]


class StateDictError(ValueError, RuntimeError):
    """load_state_dict found missing, unexpected or mis-shaped keys (nothing was changed).

    A ValueError like every minidl input error, and also a RuntimeError so that code
    written for PyTorch (which raises RuntimeError here) catches it too.
    """


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by ``register_forward_hook``: ``handle.remove()`` takes the hook away."""

    _ids = itertools.count()

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _shape_of(value):
    return tuple(value.shape)


def _as_array_source(value):
    """The raw array inside a state-dict value: a Tensor, a NumPy/CuPy array, a torch
    tensor (for importing PyTorch weights) or a plain number (a 0-d value such as
    num_batches_tracked); None for anything else."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (numbers.Number, np.number)) and not isinstance(value, bool):
        return np.asarray(value)
    if isinstance(value, np.ndarray) or hasattr(value, "__cuda_array_interface__") and \
            not hasattr(value, "detach"):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()  # a torch tensor
    return None


class Module:
    """Base class of layers and models: subclass it, assign layers in ``__init__``, write
    ``forward``.

    >>> class MLP(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.fc2(self.fc1(x).relu())
    >>> list(MLP().state_dict())
    ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these dicts to exist first.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: forward() is not implemented")

    # ---- registration ---------------------------------------------------------------
    def _check_ready(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call "
                                 f"(call super().__init__() first in "
                                 f"{type(self).__name__}.__init__)")

    def _check_name(self, name, what: str) -> None:
        # KeyError for a bad name string, as PyTorch raises.
        owner = type(self).__name__
        if not isinstance(name, str):
            raise TypeError(f"{owner}: {what} name should be a string, got "
                            f"{type(name).__name__} {name!r}")
        if "." in name or name == "":
            raise KeyError(f"{owner}: {what} name can't contain '.' or be empty, got "
                           f"{name!r}")

    def register_parameter(self, name: str, param: "Parameter | None") -> None:
        """Add a Parameter (or None, a declared but absent one like ``bias=False``)."""
        self._check_ready("parameters")
        self._check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: "Tensor | None",
                        persistent: bool = True) -> None:
        """Add a Tensor that is state but not learned; persistent ones go to state_dict.

        >>> self.register_buffer("running_mean", md.zeros(num_features))
        """
        self._check_ready("buffers")
        self._check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer "
                            f"'{name}' (Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add a child module under ``name`` (what ``self.name = module`` does)."""
        self._check_ready("child modules")
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: module {name!r} must be an nn.Module or "
                            f"None, got {type(module).__name__}, which is not a Module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_ready("parameters")
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter "
                                f"'{name}' (nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._check_ready("child modules")
            self._forget(name, keep="_modules")
            self._modules[name] = value
        elif name in self.__dict__.get("_modules", {}):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                f"'{name}' (nn.Module or None expected)")
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", {}):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer "
                                f"'{name}' (Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: str) -> None:
        """Remove ``name`` from the places other than ``keep`` where it may live, before it
        is registered anew (in ``keep`` it is replaced where it stands, keeping the order
        of the state dict)."""
        self.__dict__.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                self.__dict__[store].pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name: str):
        # Called only when normal lookup fails: the registered names live in the dicts.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(store, {}):
                del self.__dict__[store][name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    # ---- traversal ------------------------------------------------------------------
    def named_modules(self, memo: "set | None" = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple]:
        """(name, module) for this module and every module below it, depth first."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple]:
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool, skip=None):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                if skip is not None and skip(module, name):
                    continue
                seen.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple]:
        """(dotted name, Parameter); a parameter shared by two layers is listed once."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every Parameter of this module (and its sub-modules), each once: for optimizers.

        >>> opt = optim.SGD(model.parameters(), lr=0.1)
        """
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple]:
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The module at a dotted path such as ``"layer1.0.conv1"`` ('' is self)."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}' "
                                     f"(looking for '{target}')")
            module = module._modules[part]
        return module

    # ---- modes ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode here and in every sub-module (Dropout, BatchNorm read it)."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode should be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Turn gradients of every parameter on or off (freeze a backbone).

        >>> model.requires_grad_(False); model.fc.requires_grad_(True)
        """
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the ``.grad`` of every parameter (to None, or to zeros in place)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every sub-module (children first) and then on self.

        >>> model.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---- device and dtype -----------------------------------------------------------
    def _apply_to_arrays(self, convert: Callable) -> "Module":
        """Replace the array of every parameter, gradient and buffer by ``convert(array)``.

        The Parameter and buffer objects stay the same, so an optimizer made before
        ``model.to("cuda")`` still updates the model's weights.
        """
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for t in store.values():
                    if t is None:
                        continue
                    t.data = convert(t.data)
                    if t.grad is not None:
                        t.grad.data = convert(t.grad.data)
        return self

    def to(self, *args, **kwargs) -> "Module":
        """Move parameters and buffers in place: ``to("cuda")``, ``to(md.float64)``, or both.

        Only floating-point arrays change dtype (``num_batches_tracked`` stays int64).
        >>> model.to("cuda")
        """
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"Module.to: unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Device) or (isinstance(a, str) and
                                         a.split(":")[0].strip().lower() in ("cpu", "cuda")):
                device = a
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            else:
                dtype = a
        device = Device.parse(device) if device is not None else None
        dtype = _parse_dtype(dtype)
        if dtype is not None and dtype.kind not in "fc":
            raise TypeError(f"Module.to: expected a floating-point dtype, got {dtype}")

        def convert(array):
            if dtype is not None and array.dtype.kind in "fc" and array.dtype != dtype:
                array = array.astype(dtype)
            if device is not None and backend.device_of(array) != device:
                array = backend.to_device(array, device)
            return array
        return self._apply_to_arrays(convert)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, device: "int | None" = None) -> "Module":
        return self.to("cuda" if device is None else f"cuda:{device}")

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    def half(self) -> "Module":
        return self.to(np.float16)

    # ---- state dict -----------------------------------------------------------------
    def _state_items(self, prefix: str = ""):
        """(key, tensor) of the saved state, in PyTorch's order: own parameters, own
        persistent buffers, then each child's, recursively (shared modules repeated)."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield prefix + name, b
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_items(prefix + name + ".")

    def state_dict(self, destination: "OrderedDict | None" = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """An OrderedDict of every parameter and persistent buffer, with PyTorch's keys.

        The values are detached Tensors sharing memory with the module (copy them, or
        save them, before training on).
        >>> list(nn.BatchNorm2d(3).state_dict())
        ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        """
        destination = OrderedDict() if destination is None else destination
        for key, t in self._state_items(prefix):
            destination[key] = t if keep_vars else t.detach()
        return destination

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into the existing parameters and buffers.

        Every key and shape is checked before anything changes; all the problems are
        reported in one error, and a failed load leaves the module untouched. Values are
        cast to the dtype and moved to the device of the module's own tensors.

        Args:
            state_dict: a mapping from keys to Tensors, NumPy arrays (or torch tensors).
            strict: when True, missing and unexpected keys are errors; when False they are
                returned. Mis-shaped values are an error either way.
        Returns:
            IncompatibleKeys(missing_keys, unexpected_keys), named tuple of lists.
        Raises:
            StateDictError (a ValueError, also a RuntimeError) naming every bad key.
            TypeError: ``state_dict`` is not a mapping.

        >>> model.load_state_dict(md.utils.checkpoint.load("model.npz"))
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict: expected a dict of Tensors or arrays, got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in own]
        problems, sources = [], {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = _as_array_source(value)
            if array is None:
                problems.append(f'While copying the parameter named "{key}", expected a '
                                f'Tensor or an array, got {type(value).__name__}.')
                continue
            if _shape_of(array) != target.shape:
                problems.append(
                    f"size mismatch for {key}: copying a param with shape "
                    f"{_shape_of(array)} from checkpoint, the shape in current model is "
                    f"{target.shape}.")
                continue
            if array.dtype.kind not in "biufc":
                problems.append(f'While copying the parameter named "{key}", expected a '
                                f'numeric array, got dtype {array.dtype}.')
                continue
            sources[key] = array
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.append("Missing key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in missing) + ". ")
        errors.extend(problems)
        if errors:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}"
                                 f":\n\t" + "\n\t".join(errors))
        with no_grad():
            for key, array in sources.items():
                target = own[key]
                xp = backend.get_array_module(target.data)
                value = xp.asarray(backend.to_device(array, target.device))
                target.data[...] = value.astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ---- calling --------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, inputs)`` runs before forward; it may return new inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, inputs, output)`` runs after forward; it may return a new output.

        >>> h = model.fc.register_forward_hook(lambda m, i, o: print(o.shape)); h.remove()
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def __call__(self, *args, **kwargs):
        # Hooks are rare: the common call is just forward (a ResNet step makes ~100 calls).
        if self._forward_pre_hooks:
            for hook in list(self._forward_pre_hooks.values()):
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    # ---- printing -------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's line (override in layers)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2)
                       for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"

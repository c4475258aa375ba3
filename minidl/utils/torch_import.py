"""load_torch_state_dict: bring PyTorch (torchvision) weights into a minidl model.

minidl's modules use PyTorch's parameter and buffer names and shapes (Conv2d weight
(out, in/groups, kh, kw), Linear weight (out, in), BatchNorm's running_mean, running_var
and num_batches_tracked), and the models in ``minidl.models`` use torchvision's layer
names. So importing weights is a key-for-key copy: each torch tensor becomes a NumPy
array, then ``Module.load_state_dict`` checks every key and shape before it changes
anything, and casts to the model's dtype and device.

PyTorch is needed only to read a ``.pth`` file; a dict of torch tensors (or NumPy arrays)
can be passed directly. Weights are only half of a pretrained model: feed it inputs
prepared as its training did (torchvision's ImageNet models expect RGB in [0, 1]
normalised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); its pretrained
GoogLeNet also needs ``googlenet(transform_input=True)``).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Mapping, Union

import numpy as np

from .. import nn
from ..tensor import Tensor

__all__ = ["load_torch_state_dict", "torch_state_dict_to_numpy"]

# Wrappers a training script may have saved around the weights.
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")


def _to_numpy(key: str, value) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.detach().cpu()
        # NumPy has no bfloat16: widen it (the model's own dtype is applied on load).
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    raise TypeError(f"load_torch_state_dict: the value of '{key}' is a "
                    f"{type(value).__name__}, expected a torch tensor, a NumPy array or a "
                    f"minidl Tensor")


def _read_file(path) -> Mapping:
    try:
        import torch
    except ImportError:
        raise ImportError(f"load_torch_state_dict: reading '{path}' needs PyTorch (pip "
                          f"install torch); without it, pass a dict of NumPy arrays") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_torch_state_dict: no file at '{path}'")
    # weights_only: a .pth is a pickle; never run code from a downloaded file.
    return torch.load(path, map_location="cpu", weights_only=True)


def torch_state_dict_to_numpy(state_dict: Mapping) -> "OrderedDict[str, np.ndarray]":
    """The same keys with NumPy arrays as values (torch tensors copied to the host).

    >>> arrays = torch_state_dict_to_numpy(torch_model.state_dict())
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"load_torch_state_dict: expected a state dict (a mapping from "
                        f"names to tensors) or a path, got {type(state_dict).__name__}")
    return OrderedDict((str(k), _to_numpy(str(k), v)) for k, v in state_dict.items())


def _unwrap(state_dict: Mapping) -> Mapping:
    """The weights inside a training checkpoint such as {'epoch': 3, 'state_dict': {...}}."""
    if _looks_like_weights(state_dict):
        return state_dict
    for key in _CHECKPOINT_KEYS:
        if isinstance(state_dict.get(key), Mapping):
            return state_dict[key]
    return state_dict


def _looks_like_weights(state_dict: Mapping) -> bool:
    return all(hasattr(v, "shape") for v in state_dict.values())


def load_torch_state_dict(model: nn.Module, state_dict_or_path: Union[Mapping, str,
                                                                      os.PathLike],
                          strict: bool = True) -> nn.IncompatibleKeys:
    """Copy a PyTorch state dict (or a ``.pth`` file) into a minidl model with the same
    layout.

    Also handled: the ``module.`` prefix that ``nn.DataParallel`` adds to every key, a
    checkpoint dict that holds the weights under 'state_dict', 'model_state_dict' or
    'model', and BatchNorm ``num_batches_tracked`` counters absent from old files (the
    model keeps its own).

    Args:
        model: the minidl model (e.g. ``minidl.models.resnet18()``).
        state_dict_or_path: a mapping from names to torch tensors (or NumPy arrays), or
            the path of a file written by ``torch.save`` (reading it needs torch).
        strict: missing or unexpected keys are an error (True) or are returned (False).
    Returns:
        IncompatibleKeys(missing_keys, unexpected_keys).
    Raises:
        StateDictError (a ValueError): missing, unexpected or mis-shaped keys; the model
            is left unchanged.
        TypeError: a value that is not an array, or an argument of the wrong type.
        ImportError: a path was given and torch is not installed.

    >>> import torchvision                                  # where torchvision is at hand
    >>> model = models.resnet18()
    >>> load_torch_state_dict(model, torchvision.models.resnet18(weights="DEFAULT")
    ...                       .state_dict())
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"load_torch_state_dict: model must be an nn.Module, got "
                        f"{type(model).__name__}")
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        state_dict = _unwrap(_read_file(state_dict_or_path))
    elif isinstance(state_dict_or_path, Mapping):
        state_dict = _unwrap(state_dict_or_path)
    else:
        raise TypeError(f"load_torch_state_dict: expected a state dict or a path, got "
                        f"{type(state_dict_or_path).__name__}")
    arrays = torch_state_dict_to_numpy(state_dict)
    own = model.state_dict()
    if arrays and all(k.startswith("module.") for k in arrays) and \
            not any(k.startswith("module.") for k in own):
        arrays = OrderedDict((k[len("module."):], v) for k, v in arrays.items())
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in arrays:
            arrays[key] = value.numpy()
    return model.load_state_dict(arrays, strict=strict)

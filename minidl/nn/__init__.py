"""minidl.nn: Module, Parameter, containers and layers (PyTorch's names and arguments).

>>> from minidl import nn
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> net(md.randn(5, 4)).shape
(5, 2)
"""
from .containers import ModuleDict, ModuleList, Sequential
from .layers.misc import Flatten, Identity
from .module import IncompatibleKeys, Module, RemovableHandle, StateDictError
from .parameter import Parameter
from . import functional, init
from .layers.linear import Linear

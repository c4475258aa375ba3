"""Optimizers and learning-rate schedulers, with PyTorch's names and update rules.

>>> from minidl import optim
>>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
>>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
>>> for epoch in range(epochs):
...     for x, y in loader:
...         opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
...     sched.step()
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]

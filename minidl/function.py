"""Function: the base of every differentiable op.

A Function is made fresh for each call. ``forward(*arrays)`` computes the outputs on raw
arrays and saves, as plain attributes, what ``backward`` will need. ``backward(*grads)``
returns one gradient per input (None where ``self.needs_input_grad[i]`` is False).

Two kinds of backward exist:

* layer ops (conv, pool, norm, losses...) receive and return raw arrays: the clearest
  way to write their gradient. They cannot be differentiated twice.
* primitive tensor math sets ``backward_on_tensors = True``: its backward receives and
  returns Tensors and is written with Tensor ops, so that with ``create_graph=True`` the
  gradient is itself a graph (second derivatives, gradgradcheck).

A layer op must not read ``self.inputs[i].data`` in backward: the graph keeps only an
InputRecord of a non-leaf input (shape, dtype, producer) unless the op sets
``saves_inputs = True``, so that activations are freed as soon as forward has used them.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import backend
from .grad_mode import is_grad_enabled


class Function:
    backward_on_tensors = False
    # Does backward read the input Tensors themselves (``self.inputs[i].data``)? Mul
    # needs both factors, so ops with a Tensor backward keep their inputs by default.
    # Layer ops save in forward what their backward needs, and Add or Reshape need only
    # the input shapes: for those the graph keeps each non-leaf input as an InputRecord
    # (shape, dtype, producer), so the input's array is freed as soon as nothing else
    # holds it, instead of living until backward (in a ResNet-18 training step that is
    # every convolution's and BatchNorm's input: a fifth of the activation memory).
    saves_inputs = None     # None: the same as backward_on_tensors
    # An op whose backward reads its own output through ``self.outputs[0]()`` (Tanh,
    # Exp) sets this: consumers then keep that output as a Tensor, never as a record.
    saves_outputs = False

    # Filled in by apply(); students can print them.
    inputs: tuple = ()
    outputs: tuple = ()
    needs_input_grad: tuple = ()

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError(
            f"{type(self).__name__} has no backward: it is not differentiable")

    @property
    def name(self) -> str:
        return type(self).__name__

    def apply(self, *inputs):
        """Run forward on the inputs' arrays; record this node when a gradient is wanted."""
        # Nearly every call gets Tensors holding NumPy arrays: all on the CPU, nothing to
        # convert or compare. This check is the whole cost of that case (small ops in a
        # LeNet step are dominated by such bookkeeping, so it is kept short).
        if not inputs or not all(isinstance(x, Tensor) and type(x.data) is np.ndarray
                                 for x in inputs):
            inputs = self._prepare_inputs(inputs)
        outputs = self.forward(*[x.data for x in inputs])
        single = type(outputs) is not tuple
        if single:
            outputs = (outputs,)
        record = is_grad_enabled() and any(x.requires_grad for x in inputs)
        results = tuple(Tensor._wrap(y, record) for y in outputs)
        if _anomaly_mode[0]:
            _check_finite(self.name, "forward", [y.data for y in results])
        if record:
            keep = self.backward_on_tensors if self.saves_inputs is None else self.saves_inputs
            self.inputs = inputs if keep else tuple(
                x if x._ctx is None or x._ctx.saves_outputs else InputRecord(x)
                for x in inputs)
            self.needs_input_grad = tuple(x.requires_grad for x in inputs)
            self.outputs = tuple(weakref.ref(y) for y in results)
            self.output_shapes = tuple(y.data.shape for y in results)
            for i, y in enumerate(results):
                y._ctx, y._output_nr = self, i
        return results[0] if single else results

    def _prepare_inputs(self, inputs) -> tuple:
        """Check that the Tensors share one device; turn numbers and arrays into Tensors."""
        tensors = [x for x in inputs if isinstance(x, Tensor)]
        if not tensors:
            given = ", ".join(type(x).__name__ for x in inputs) or "no input"
            raise TypeError(f"{self.name}: expected at least one Tensor input, got {given}")
        first = tensors[0]
        device = first.device
        for t in tensors[1:]:
            if t.device != device:
                raise ValueError(
                    f"{self.name}: expected all tensors on one device, got {device} and "
                    f"{t.device}")
        return tuple(x if isinstance(x, Tensor) else as_tensor_like(x, first, self.name)
                     for x in inputs)

    def release(self) -> None:
        """Drop everything saved for backward (called after backward unless retain_graph)."""
        self.__dict__.clear()
        self.released = True


# detect_anomaly: a global flag checked after every forward and backward.
_anomaly_mode = [False]


def _check_finite(op: str, phase: str, arrays) -> None:
    for a in arrays:
        if a is None or not hasattr(a, "dtype") or a.dtype.kind not in "fc":
            continue
        xp = backend.get_array_module(a)
        if not bool(xp.isfinite(a).all()):
            raise FloatingPointError(f"detect_anomaly: {op} produced NaN or inf in {phase}")


class detect_anomaly:
    """Context manager: raise FloatingPointError naming the first op whose forward or
    backward produced NaN/inf.

    >>> with md.detect_anomaly():
    ...     loss.backward()
    """

    def __enter__(self):
        self._prev = _anomaly_mode[0]
        _anomaly_mode[0] = True
        return self

    def __exit__(self, *exc):
        _anomaly_mode[0] = self._prev
        return False


def unbroadcast_array(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, down to ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    grad = grad.sum(axis=axes, keepdims=True) if axes else grad
    return grad.reshape(shape)


__all__ = ["Function", "detect_anomaly", "unbroadcast_array", "np"]

# tensor.py imports the ops, which import this module: Tensor is imported last.
from .tensor import InputRecord, Tensor, as_tensor_like  # noqa: E402

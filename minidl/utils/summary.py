"""summary: what each layer of a model outputs, how many weights it has, what it costs.

One forward pass of a zero input (batch 1) runs with a forward hook on every leaf module
(a module without children: Conv2d, BatchNorm2d, ReLU, ...). Each hook records the
output shape, the module's own parameters and its multiply-accumulates (MACs):

    Conv2d           numel(output) * (in_channels / groups) * kh * kw
    ConvTranspose2d  numel(input) * (out_channels / groups) * kh * kw
    Linear           numel(output) * in_features
    everything else  0 (BatchNorm, activations, pooling and additions are cheap
                     elementwise work, not weight multiplies; this is the convention of
                     the MAC/FLOP counts published with torchvision's models)

Biases are not counted as MACs. The pass runs in eval mode under ``no_grad`` and the
model's modes are restored afterwards, so nothing (BatchNorm running statistics, dropout
generators) changes; GoogLeNet's auxiliary classifiers, which only run in training mode,
are in the parameter totals but not in the MACs.

The course notes' Inception arithmetic, reproduced:

>>> summary(nn.Conv2d(192, 32, 5, padding=2), (192, 28, 28)).total_macs
120422400
>>> summary(nn.Sequential(nn.Conv2d(192, 16, 1), nn.Conv2d(16, 32, 5, padding=2)),
...         (192, 28, 28)).total_macs                 # 2,408,448 + 10,035,200
12443648
"""
from __future__ import annotations

import numbers
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, TextIO, Tuple, Union

from .. import nn
from ..grad_mode import no_grad
from ..tensor import Tensor, zeros

__all__ = ["LayerInfo", "ModelSummary", "summary", "layer_macs", "format_count",
           "model_table"]


@dataclass
class LayerInfo:
    """One row of the table: a leaf module's call during the forward pass."""

    name: str                 # dotted path in the model, e.g. "layer1.0.conv1"
    kind: str                 # the module's class name
    output_shape: tuple       # a shape, or a tuple of shapes for several outputs
    params: int               # the module's own parameters (0 when it was called before)
    macs: int                 # multiply-accumulates of this call


@dataclass
class ModelSummary:
    """What ``summary`` returns: the rows and the totals (printing it gives the table)."""

    input_shape: tuple
    rows: List[LayerInfo] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def table(self) -> str:
        """The table as text: one line per layer call, then the totals."""
        header = ("Layer (type)", "Output shape", "Params", "MACs")
        lines = [(f"{r.name or '(model)'} ({r.kind})", _shape_text(r.output_shape),
                  f"{r.params:,}", f"{r.macs:,}") for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(header, *lines)]

        def fmt(cells):
            return "  ".join([cells[0].ljust(widths[0])] +
                             [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])
        rule = "-" * len(fmt(header))
        out = [rule, fmt(header), rule] + [fmt(line) for line in lines] + [rule]
        out += [f"Input shape: {_shape_text(self.input_shape)}",
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.non_trainable_params:,}",
                f"Total MACs: {self.total_macs:,} ({format_count(self.total_macs)})", rule]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _shape_text(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def format_count(n: int) -> str:
    """A count in thousands, millions or billions: 11689512 -> '11.69M'."""
    for unit, size in (("G", 10 ** 9), ("M", 10 ** 6), ("K", 10 ** 3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def layer_macs(module: nn.Module, input_shape: tuple, output_shape: tuple) -> int:
    """Multiply-accumulates of one call of a leaf module (0 for non-weight layers).

    >>> layer_macs(nn.Conv2d(16, 32, 5, padding=2), (1, 16, 28, 28), (1, 32, 28, 28))
    10035200
    """
    if isinstance(module, nn.Conv2d):
        kh, kw = module.weight.shape[2], module.weight.shape[3]
        return _numel(output_shape) * module.weight.shape[1] * kh * kw
    if hasattr(nn, "ConvTranspose2d") and isinstance(module, nn.ConvTranspose2d):
        # weight (in, out/groups, kh, kw): every input pixel is spread over a kh*kw
        # window of out/groups channels.
        _, out_per_group, kh, kw = module.weight.shape
        return _numel(input_shape) * out_per_group * kh * kw
    if isinstance(module, nn.Linear):
        return _numel(output_shape) * module.weight.shape[1]
    return 0


def _first_tensor(values):
    for v in values:
        if isinstance(v, Tensor):
            return v
        if isinstance(v, (list, tuple)):
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _output_shape(output):
    if isinstance(output, Tensor):
        return output.shape
    if isinstance(output, (list, tuple)):
        return tuple(o.shape for o in output if isinstance(o, Tensor))
    return ()


def summary(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1,
            device=None, dtype=None, file: Optional[TextIO] = sys.stdout) -> ModelSummary:
    """Print and return each leaf layer's output shape, parameters and MACs, with totals.

    Args:
        model: any nn.Module taking one tensor.
        input_shape: the shape of one sample, without the batch dim, e.g. (3, 224, 224).
        batch_size: the batch of the zero input (MACs scale with it; 1 gives per-sample
            cost).
        device, dtype: of the input; by default those of the model's first parameter.
        file: where the table is printed (None: do not print).
    Returns:
        a ModelSummary with ``rows`` (LayerInfo per leaf-module call), ``total_params``,
        ``trainable_params`` and ``total_macs``.
    Raises:
        TypeError: model is not an nn.Module.
        ValueError: input_shape is not a sequence of positive ints.

    >>> s = summary(models.resnet18(), (3, 224, 224), file=None)
    >>> s.total_params, s.total_macs
    (11689512, 1814073344)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(input_shape, Sequence) or not input_shape or any(
            not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1
            for s in input_shape):
        raise ValueError(f"summary: input_shape must be a sequence of positive ints (one "
                         f"sample's shape, without the batch dim), got {input_shape!r}")
    shape = tuple(int(s) for s in input_shape)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
    first = next(iter(model.parameters()), None)
    if device is None:
        device = first.device if first is not None else None
    if dtype is None:
        dtype = first.dtype if first is not None else None

    result = ModelSummary(input_shape=shape)
    names = {id(m): name for name, m in model.named_modules()}
    counted = set()

    def hook(module, inputs, output):
        x = _first_tensor(inputs)
        in_shape = x.shape if x is not None else ()
        out_shape = _output_shape(output)
        first_call = id(module) not in counted
        counted.add(id(module))
        own = sum(p.numel() for p in module.parameters(recurse=False)) if first_call else 0
        macs = layer_macs(module, in_shape, out_shape if isinstance(output, Tensor) else ())
        result.rows.append(LayerInfo(names.get(id(module), "?"), type(module).__name__,
                                     out_shape, own, macs))

    # Leaves do the work; a module with its own parameters and children (rare) also
    # gets a row so that no parameter is left out of the table.
    watched = [m for m in model.modules()
               if not any(True for _ in m.children()) or
               any(True for _ in m.parameters(recurse=False))]
    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook) for m in watched]
    try:
        model.eval()
        with no_grad():
            model(zeros((batch_size,) + shape, dtype=dtype, device=device))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode

    params = list(model.parameters())
    result.total_params = sum(p.numel() for p in params)
    result.trainable_params = sum(p.numel() for p in params if p.requires_grad)
    result.total_macs = sum(r.macs for r in result.rows)
    if file is not None:
        print(result.table(), file=file)
    return result


ModelSpec = Tuple[str, Union[nn.Module, Callable[[], nn.Module]], Sequence[int]]


def model_table(specs: Sequence[ModelSpec], progress: Optional[TextIO] = None) -> str:
    """A Markdown table of parameters and MACs for several models (for a README).

    Args:
        specs: (name, model or zero-argument builder, one sample's input shape) triples;
            a builder is called, measured and dropped before the next one, so big models
            are not all in memory at once.
        progress: where to print each model's name as it is measured (None: silent).
    Returns:
        the table as a Markdown string.

    >>> print(model_table([("LeNet-5", models.lenet5, (1, 28, 28))]))
    | Model | Input | Parameters | MACs |
    |---|---|---:|---:|
    | LeNet-5 | 1x28x28 | 61,706 | 416.52K |
    """
    lines = ["| Model | Input | Parameters | MACs |", "|---|---|---:|---:|"]
    for name, model, shape in specs:
        if progress is not None:
            print(f"measuring {name} ...", file=progress, flush=True)
        model = model if isinstance(model, nn.Module) else model()
        s = summary(model, shape, file=None)
        del model
        size = "x".join(str(int(v)) for v in shape)
        lines.append(f"| {name} | {size} | {s.total_params:,} | {format_count(s.total_macs)} |")
    return "\n".join(lines)

"""Datasets: anything with ``__len__`` and ``__getitem__(i) -> sample``.

A dataset may also offer ``get_batch(indices) -> tuple of stacked arrays``: the
DataLoader then fetches a whole batch with one fancy index instead of one call per
sample (and a minidl transform runs once on the batch, with per-sample draws).
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from .. import backend
from ..backend import get_array_module

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split",
           "apply_transform"]


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__")


def apply_transform(transform, batch):
    """Run ``transform`` on a stacked batch: once if it is a minidl Transform (it draws
    per-sample parameters), else sample by sample."""
    if transform is None:
        return batch
    from .transforms.base import Transform
    if isinstance(transform, Transform):
        return transform(batch)
    xp = get_array_module(batch)
    return xp.stack([transform(item) for item in batch])


class Dataset:
    """Base class: subclasses define ``__len__`` and ``__getitem__``.

    >>> class Squares(Dataset):
    ...     def __len__(self): return 10
    ...     def __getitem__(self, i): return np.float32(i), i * i
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


def _check_index(index, n, name):
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
        raise TypeError(f"{name}: index must be an int, got {type(index).__name__}")
    if not -n <= index < n:
        raise IndexError(f"{name}: index {index} is out of range for {n} samples")
    return int(index) % n


class TensorDataset(Dataset):
    """Samples are the i-th rows of equally long arrays or Tensors.

    >>> ds = TensorDataset(images, labels)       # (N, 1, 8, 8) and (N,)
    >>> x, y = ds[0]
    """

    def __init__(self, *arrays, transform=None):
        from ..tensor import Tensor
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array")
        arrays = tuple(a.data if isinstance(a, Tensor) else a for a in arrays)
        for i, a in enumerate(arrays):
            if not _is_array(a):
                raise TypeError(f"TensorDataset: argument {i} must be an array or Tensor, "
                                f"got {type(a).__name__}")
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is 0-d; each array needs a "
                                 f"first axis of samples")
        sizes = [a.shape[0] for a in arrays]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: all arrays must have the same first dimension, "
                             f"got sizes {sizes}")
        self.arrays = arrays
        self.transform = transform

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index):
        index = _check_index(index, len(self), "TensorDataset")
        first = self.arrays[0][index]
        if self.transform is not None:
            first = self.transform(first)
        return (first,) + tuple(a[index] for a in self.arrays[1:])

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        out = []
        for a in self.arrays:
            xp = get_array_module(a)
            out.append(a[xp.asarray(indices)])
        out[0] = apply_transform(self.transform, out[0])
        return tuple(out)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        raw = np.asarray(indices)
        if raw.size and raw.dtype.kind not in "iu":   # 0.5 would truncate to 0 silently
            raise TypeError(f"Subset: indices must be ints, got dtype {raw.dtype}")
        indices = raw.astype(np.int64).reshape(-1)
        n = len(dataset)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"Subset: indices must be in [0, {n}) for a dataset of {n} "
                             f"samples, got range [{indices.min()}, {indices.max()}]")
        self.dataset, self.indices = dataset, indices % max(n, 1)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[_check_index(index, len(self), "Subset")])]

    def __getattr__(self, name):
        # get_batch exists only when the wrapped dataset has it.
        inner = self.__dict__.get("dataset")
        if name == "get_batch" and hasattr(inner, "get_batch"):
            return lambda idx: inner.get_batch(self.indices[np.asarray(idx, np.int64)])
        raise AttributeError(name)


class ConcatDataset(Dataset):
    """Datasets one after the other."""

    def __init__(self, datasets: Sequence):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: expected at least one dataset")
        self.cumulative = np.cumsum([len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.cumulative[-1])

    def __getitem__(self, index):
        index = _check_index(index, len(self), "ConcatDataset")
        k = int(np.searchsorted(self.cumulative, index, side="right"))
        start = 0 if k == 0 else int(self.cumulative[k - 1])
        return self.datasets[k][index - start]


def random_split(dataset, lengths: Sequence, generator=None, seed=None) -> list:
    """Split into non-overlapping Subsets of the given lengths, in a random order.

    lengths: ints that sum to len(dataset), or fractions that sum to 1 (the remainder of
    rounding goes one by one to the first parts, as PyTorch does). The order comes from
    ``generator`` (numpy Generator), else ``seed``, else minidl's CPU generator.
    >>> train, val = random_split(ds, [0.8, 0.2], seed=0)
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if all(isinstance(v, numbers.Real) and 0 <= v <= 1 for v in lengths) and \
            not all(isinstance(v, numbers.Integral) for v in lengths):
        if abs(sum(lengths) - 1) > 1e-6:
            raise ValueError(f"random_split: lengths given as fractions must sum to 1, got "
                             f"{lengths} (sum {sum(lengths)})")
        sizes = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if any(not isinstance(v, numbers.Integral) or v < 0 for v in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions, "
                         f"got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths sum to {sum(lengths)} but the dataset has "
                         f"{n} samples")
    if generator is None:
        generator = np.random.default_rng(seed) if seed is not None else \
            backend.generator("cpu")
    order = generator.permutation(n)
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

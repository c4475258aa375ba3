"""DataLoader: batches of a dataset as minidl Tensors on a device.

One batch is: the sampler's next ``batch_size`` indices -> samples -> ``collate`` (stack
each field) -> arrays on ``device`` -> optional ``batch_transform`` on the inputs (the
place for batched, per-sample-random augmentation, on the GPU when device is 'cuda') ->
Tensors. Loading runs in the main process (there is no ``num_workers``): with batched
augmentation the CPU work per batch is a few vectorised array operations.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..backend import Device, get_array_module
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader", "default_collate"]


def _stack(items):
    """Stack arrays/numbers; Python floats become float32, ints int64."""
    from ..tensor import Tensor, get_default_dtype
    first = items[0]
    if isinstance(first, Tensor):
        items = [t.data for t in items]
        first = items[0]
    if isinstance(first, np.ndarray) or hasattr(first, "__cuda_array_interface__"):
        return get_array_module(first).stack(items)
    if isinstance(first, (bool, np.bool_)):
        return np.asarray(items, dtype=bool)
    if isinstance(first, numbers.Integral):
        return np.asarray(items, dtype=np.int64)
    if isinstance(first, numbers.Real):
        return np.asarray(items, dtype=get_default_dtype())
    if isinstance(first, np.generic):
        return np.asarray(items)
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; "
                    f"pass collate_fn")


def default_collate(samples: list):
    """Stack a list of samples field by field into arrays (no device move, no Tensors).

    A sample may be an array, a number, a tuple/list of fields or a dict of fields.
    Integer labels become int64, Python floats float32.
    >>> default_collate([(np.zeros(3), 1), (np.ones(3), 2)])   # (array (2, 3), array([1, 2]))
    """
    if not samples:
        raise ValueError("default_collate: got an empty batch")
    first = samples[0]
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("default_collate: samples have different numbers of fields")
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    return _stack(samples)


class DataLoader:
    """Iterate over a dataset in batches of minidl Tensors on ``device``.

    Args:
        dataset: a Dataset (``len`` and ``[i]``; ``get_batch(indices)`` is used when
            present and no collate_fn is given: one fancy index per batch).
        batch_size: samples per batch.
        shuffle: a new random order every epoch (RandomSampler).
        sampler: an iterable of indices (e.g. WeightedRandomSampler); excludes shuffle.
        batch_sampler: an iterable of index lists; excludes batch_size/shuffle/sampler/
            drop_last.
        drop_last: drop the last, incomplete batch.
        collate_fn: list of samples -> batch of arrays (default ``default_collate``).
        device: where the Tensors go ('cpu' default, or 'cuda').
        seed / generator: the order's randomness (a seed makes a fresh numpy Generator;
            each epoch continues its stream, so epochs differ and the run reproduces).
        batch_transform: called on the first field (the inputs) of every batch after it
            is on ``device``, e.g. a minidl ``transforms.Compose``.
        num_workers: accepted only as 0: loading happens in the calling process.
    Integer fields become int64 Tensors (labels), float arrays keep their dtype.
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, seed=0)
    >>> for xb, yb in loader: ...
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, sampler=None,
                 batch_sampler=None, drop_last: bool = False, collate_fn=None, device=None,
                 seed: int = None, generator=None, batch_transform=None,
                 num_workers: int = 0):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__ (a "
                            f"Dataset), got {type(dataset).__name__}")
        for name, value in (("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value is not None and not hasattr(value, "__iter__"):
                raise TypeError(f"DataLoader: {name} must be an iterable of indices, got "
                                f"{type(value).__name__}")
        if num_workers not in (0, None):
            raise ValueError(f"DataLoader: num_workers must be 0 (minidl loads in the main "
                             f"process; use batched transforms for speed), got {num_workers}")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: pass seed or generator, not both")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"DataLoader: seed must be an int, got {seed!r}")
            generator = np.random.default_rng(int(seed))
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"DataLoader: generator must be a numpy.random.Generator, got "
                            f"{type(generator).__name__}")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler excludes batch_size, shuffle, "
                                 "sampler and drop_last")
        else:
            if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                    or batch_size < 1:
                raise ValueError(f"DataLoader: batch_size must be a positive int, got "
                                 f"{batch_size!r}")
            if sampler is not None and shuffle:
                raise ValueError("DataLoader: sampler and shuffle are mutually exclusive")
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else \
                    SequentialSampler(dataset)
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, bool(drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.collate_fn = collate_fn
        self.device = Device.parse(device) if device is not None else Device("cpu")
        self.generator, self.batch_transform = generator, batch_transform

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def _fetch(self, indices):
        if self.collate_fn is None and hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(indices)
        samples = [self.dataset[i] for i in indices]
        return (self.collate_fn or default_collate)(samples)

    def _to_tensor(self, array):
        from ..tensor import Tensor
        if isinstance(array, Tensor):
            array = array.data
        array = backend.to_device(array, self.device)
        if array.dtype.kind in "iu":
            array = array.astype(np.int64, copy=False)
        return Tensor._wrap(array)

    def _convert(self, batch, transform):
        if isinstance(batch, dict):
            return {k: self._convert(v, None) for k, v in batch.items()}
        if isinstance(batch, (tuple, list)):
            return tuple(self._convert(b, transform if i == 0 else None)
                         for i, b in enumerate(batch))
        if transform is not None:
            from ..tensor import Tensor
            moved = backend.to_device(batch.data if isinstance(batch, Tensor) else batch,
                                      self.device)
            return self._to_tensor(transform(moved))
        return self._to_tensor(batch)

    def __iter__(self):
        for indices in self.batch_sampler:
            yield self._convert(self._fetch(list(indices)), self.batch_transform)

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, batches={len(self)}, device='{self.device}')")

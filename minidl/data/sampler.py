"""Samplers: the order (and multiplicity) in which a DataLoader visits a dataset.

Each yields dataset indices; a BatchSampler groups them into lists. Random samplers draw
from a NumPy Generator: the one given, or minidl's CPU generator (``md.manual_seed``).
Every pass over a random sampler draws a new order, so epochs differ while the whole
run stays reproducible from the seed.
"""
from __future__ import annotations

import numbers
from typing import Iterator, Sequence

import numpy as np

from .. import backend

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "WeightedRandomSampler",
           "BatchSampler", "class_balanced_weights"]


def _generator(generator):
    if generator is None:
        return backend.generator("cpu")
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"sampler: generator must be a numpy.random.Generator, got "
                        f"{type(generator).__name__}")
    return generator


def _positive_int(value, name, arg):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
    return int(value)


class Sampler:
    """Base class: iterate over indices; ``len`` is how many."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation each pass, or ``num_samples`` draws with replacement.

    >>> list(RandomSampler(range(5), generator=np.random.default_rng(0)))
    [2, 4, 3, 0, 1]
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int = None,
                 generator=None):
        self.data_source, self.replacement = data_source, bool(replacement)
        self._num_samples = None if num_samples is None else \
            _positive_int(num_samples, "RandomSampler", "num_samples")
        self.generator = generator if generator is None else _generator(generator)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        gen = _generator(self.generator)
        n = len(self.data_source)
        if self.replacement:
            return iter(gen.integers(0, n, self.num_samples).tolist())
        # More than n samples without replacement: whole permutations, one after another.
        reps = -(-self.num_samples // n) if n else 0
        order = np.concatenate([gen.permutation(n) for _ in range(reps)]) if reps else \
            np.zeros(0, np.int64)
        return iter(order[:self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples


class WeightedRandomSampler(Sampler):
    """Draw ``num_samples`` indices, index i with probability weights[i] / sum(weights).

    With replacement (the default) a rare class with large weights is seen as often as a
    common one: oversampling. ``class_balanced_weights(labels)`` gives those weights.
    >>> w = class_balanced_weights(labels)
    >>> loader = DataLoader(ds, batch_size=64, sampler=WeightedRandomSampler(w, len(w)))
    """

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator=None):
        w = np.asarray(weights.numpy() if hasattr(weights, "numpy") else weights,
                       dtype=np.float64)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"WeightedRandomSampler: weights must be a non-empty 1-D "
                             f"sequence, got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
            given = f"{float(w[bad[0]])!r} at index {int(bad[0])}" if bad.size else "all 0"
            raise ValueError(f"WeightedRandomSampler: weights must be finite, non-negative "
                             f"and not all zero, got {given}")
        self.weights = w
        self.num_samples = _positive_int(num_samples, "WeightedRandomSampler", "num_samples")
        self.replacement = bool(replacement)
        if not self.replacement and self.num_samples > np.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw {self.num_samples} samples "
                             f"without replacement from {np.count_nonzero(w)} non-zero "
                             f"weights")
        self.generator = generator if generator is None else _generator(generator)

    def __iter__(self):
        gen = _generator(self.generator)
        p = self.weights / self.weights.sum()
        return iter(gen.choice(p.size, size=self.num_samples, replace=self.replacement,
                               p=p).tolist())

    def __len__(self) -> int:
        return self.num_samples


def class_balanced_weights(labels) -> np.ndarray:
    """Per-sample weights 1 / (count of its class): every class gets the same total.

    >>> class_balanced_weights([0, 0, 0, 1])
    array([0.33333333, 0.33333333, 0.33333333, 1.        ])
    """
    labels = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"class_balanced_weights: labels must be 1-D integers, got shape "
                         f"{labels.shape} and dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"class_balanced_weights: labels must be non-negative, got "
                         f"{labels.min()}")
    counts = np.bincount(labels)
    return 1.0 / counts[labels]


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size`` (the last one may be
    shorter unless ``drop_last``)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool = False):
        self.sampler = sampler
        self.batch_size = _positive_int(batch_size, "BatchSampler", "batch_size")
        self.drop_last = bool(drop_last)

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

"""minidl.data: datasets, samplers, DataLoader."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, RandomSampler,
                         SequentialSampler, Subset, TensorDataset, WeightedRandomSampler,
                         class_balanced_weights, default_collate, random_split)
from minidl.data import transforms as T
from minidl.testing import assert_close


def toy(n=10, c=1, size=4):
    x = np.arange(n * c * size * size, dtype=np.float32).reshape(n, c, size, size)
    return x, np.arange(n) % 3


class ListDataset(Dataset):
    """A dataset with only __getitem__ (no get_batch): the per-sample path."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


# ---- datasets ------------------------------------------------------------------------

def test_tensor_dataset_and_subset():
    x, y = toy()
    ds = TensorDataset(md.tensor(x), y)
    assert len(ds) == 10
    xi, yi = ds[-1]
    assert_close(xi, x[9])
    assert yi == y[9]
    sub = Subset(ds, [3, 1])
    assert len(sub) == 2 and sub[0][1] == y[3]
    bx, by = sub.get_batch([1, 0])
    assert_close(bx, x[[1, 3]])
    assert np.array_equal(by, y[[1, 3]])
    with pytest.raises(IndexError, match="TensorDataset: index 10 is out of range"):
        ds[10]
    with pytest.raises(IndexError, match="Subset: indices must be in"):
        Subset(ds, [0, 12])
    assert not hasattr(Subset(ListDataset(x, y), [0]), "get_batch")


def test_tensor_dataset_bad_input():
    with pytest.raises(ValueError, match="same first dimension, got sizes \\[10, 9\\]"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(TypeError, match="argument 1 must be an array"):
        TensorDataset(np.zeros((10, 2)), [1, 2])


def test_concat_dataset():
    x, y = toy()
    ds = TensorDataset(x[:4], y[:4]) + TensorDataset(x[4:], y[4:])
    assert isinstance(ds, ConcatDataset) and len(ds) == 10
    assert_close(ds[6][0], x[6])


def test_random_split_is_a_partition_and_reproducible():
    ds = TensorDataset(*toy(25))
    parts = random_split(ds, [0.6, 0.2, 0.2], seed=3)
    assert [len(p) for p in parts] == [15, 5, 5]
    everything = np.concatenate([p.indices for p in parts])
    assert sorted(everything.tolist()) == list(range(25))
    again = random_split(ds, [15, 5, 5], generator=np.random.default_rng(3))
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(parts, again))
    assert [len(p) for p in random_split(ds, [0.5, 0.5], seed=0)] == [13, 12]
    with pytest.raises(ValueError, match="lengths sum to 24 but the dataset has 25"):
        random_split(ds, [20, 4])


# ---- samplers ------------------------------------------------------------------------

def test_sequential_and_random_sampler():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    s = RandomSampler(range(50), generator=np.random.default_rng(0))
    first, second = list(s), list(s)
    assert sorted(first) == list(range(50)) and first != second
    s = RandomSampler(range(5), replacement=True, num_samples=200,
                      generator=np.random.default_rng(0))
    assert len(list(s)) == 200 and set(s) <= set(range(5))
    counts = np.bincount(list(RandomSampler(range(3), num_samples=7,
                                            generator=np.random.default_rng(1))))
    assert counts.max() - counts.min() <= 1             # whole permutations first


def test_weighted_sampler_frequencies_follow_the_weights():
    weights = np.array([1.0, 2.0, 7.0, 0.0])
    s = WeightedRandomSampler(weights, 20000, generator=np.random.default_rng(0))
    freq = np.bincount(list(s), minlength=4) / 20000
    assert_close(freq, weights / weights.sum(), atol=0.015)
    assert freq[3] == 0


def test_oversampling_balances_a_rare_class():
    labels = np.array([0] * 950 + [1] * 50)
    w = class_balanced_weights(labels)
    assert_close(w[[0, -1]], np.array([1 / 950, 1 / 50]))
    s = WeightedRandomSampler(w, 10000, generator=np.random.default_rng(0))
    seen = labels[np.array(list(s))]
    assert abs(seen.mean() - 0.5) < 0.03            # the rare class is now half the draws
    ds = TensorDataset(np.zeros((1000, 1, 2, 2), np.float32), labels)
    sampler = WeightedRandomSampler(w, 1000, generator=np.random.default_rng(1))
    loader = DataLoader(ds, batch_size=100, sampler=sampler)
    seen = np.concatenate([yb.numpy() for _, yb in loader])
    assert abs(seen.mean() - 0.5) < 0.06


def test_weighted_sampler_bad_input():
    with pytest.raises(ValueError, match="non-negative and not all zero"):
        WeightedRandomSampler([1.0, -1.0], 3)
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement from 2"):
        WeightedRandomSampler([1.0, 0.0, 2.0], 3, replacement=False)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        WeightedRandomSampler([1.0], 0)
    without = list(WeightedRandomSampler([1.0, 0.0, 2.0, 1.0], 3, replacement=False))
    assert sorted(without) == [0, 2, 3]


def test_batch_sampler():
    assert list(BatchSampler(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(BatchSampler(range(7), 3)) == 3 and len(BatchSampler(range(7), 3, True)) == 2


# ---- DataLoader ----------------------------------------------------------------------

@settings(max_examples=15)
@given(n=st.integers(1, 40), batch=st.integers(1, 12), shuffle=st.booleans(),
       drop_last=st.booleans(), per_sample=st.booleans())
def test_every_sample_appears_once_per_epoch(n, batch, shuffle, drop_last, per_sample):
    x, y = toy(n)
    ds = ListDataset(x, y) if per_sample else TensorDataset(x, y)
    loader = DataLoader(ds, batch_size=batch, shuffle=shuffle, drop_last=drop_last, seed=0)
    seen, sizes = [], []
    for xb, yb in loader:
        assert isinstance(xb, md.Tensor) and xb.dtype == np.float32
        assert yb.dtype == np.int64
        sizes.append(xb.shape[0])
        seen.extend(int(v) for v in xb.numpy()[:, 0, 0, 0] // 16)   # x[i, 0, 0, 0] = 16 i
    assert len(sizes) == len(loader)
    if drop_last:
        assert all(s == batch for s in sizes) and len(seen) == n // batch * batch
        assert len(set(seen)) == len(seen)
    else:
        assert sorted(seen) == list(range(n))
        assert all(s == batch for s in sizes[:-1]) and sum(sizes) == n


def test_shuffle_order_is_reproducible_and_changes_per_epoch():
    ds = TensorDataset(*toy(30))

    def epochs(loader, k=3):
        return [np.concatenate([yb.numpy() * 0 + xb.numpy()[:, 0, 0, 0] for xb, yb in loader])
                for _ in range(k)]

    a = epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=5))
    b = epochs(DataLoader(ds, batch_size=7, shuffle=True, generator=np.random.default_rng(5)))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    c = epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=6))
    assert not np.array_equal(a[0], c[0])
    md.manual_seed(9)
    d = epochs(DataLoader(ds, batch_size=7, shuffle=True), 1)
    md.manual_seed(9)
    assert np.array_equal(d[0], epochs(DataLoader(ds, batch_size=7, shuffle=True), 1)[0])
    unshuffled = epochs(DataLoader(ds, batch_size=7), 1)[0]
    assert np.array_equal(unshuffled, np.arange(30) * 16)


def test_batch_path_equals_sample_path():
    x, y = toy(9)
    fast = list(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=1))
    slow = list(DataLoader(ListDataset(x, y), batch_size=4, shuffle=True, seed=1))
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert_close(fx, sx)
        assert_close(fy, sy)


def test_batch_transform_runs_on_the_batch():
    x, y = toy(8)
    flip = T.RandomHorizontalFlip(p=1.0)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, batch_transform=flip)
    xb, yb = next(iter(loader))
    assert_close(xb, x[..., ::-1])
    assert_close(yb, y)
    # A per-sample transform of the dataset, applied once to the whole batch.
    ds = TensorDataset(x, y, transform=T.RandomVerticalFlip(p=1.0))
    assert_close(ds[2][0], x[2, :, ::-1])
    xb, _ = next(iter(DataLoader(ds, batch_size=8)))
    assert_close(xb, x[:, :, ::-1])
    # A plain function (not a minidl Transform) is called sample by sample.
    ds = TensorDataset(x, y, transform=lambda img: img.sum(axis=0))
    xb, _ = next(iter(DataLoader(ds, batch_size=8)))
    assert xb.shape == (8, 4, 4)


def test_default_collate():
    xs, ys = default_collate([(np.zeros(3, np.float32), 1), (np.ones(3, np.float32), 2)])
    assert xs.shape == (2, 3) and ys.dtype == np.int64
    batch = default_collate([{"a": 1.5, "b": True}, {"a": 2.5, "b": False}])
    assert batch["a"].dtype == np.float32 and batch["b"].dtype == bool
    with pytest.raises(TypeError, match="cannot batch samples of type str"):
        default_collate(["a", "b"])

    loader = DataLoader(ListDataset(*toy(4)), batch_size=2,
                        collate_fn=lambda s: (np.stack([a for a, _ in s]) * 0, [b for _, b in s]))
    xb, yb = next(iter(loader))
    assert float(xb.numpy().sum()) == 0


def test_loader_device_and_bad_arguments(device):
    x, y = toy(4)
    xb, yb = next(iter(DataLoader(TensorDataset(x, y), batch_size=4, device=device)))
    assert xb.device == device and yb.device == device
    with pytest.raises(ValueError, match="num_workers must be 0"):
        DataLoader(TensorDataset(x, y), num_workers=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(TensorDataset(x, y), batch_size=0)
    with pytest.raises(ValueError, match="sampler and shuffle are mutually exclusive"):
        DataLoader(TensorDataset(x, y), shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="pass seed or generator"):
        DataLoader(TensorDataset(x, y), seed=0, generator=np.random.default_rng())
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        DataLoader(TensorDataset(x, y), generator=3)


def test_batch_sampler_argument():
    x, y = toy(6)
    loader = DataLoader(TensorDataset(x, y), batch_sampler=[[5, 0], [2]])
    assert [yb.numpy().tolist() for _, yb in loader] == [[y[5], y[0]], [y[2]]]
    with pytest.raises(ValueError, match="batch_sampler excludes"):
        DataLoader(TensorDataset(x, y), batch_size=2, batch_sampler=[[0]])

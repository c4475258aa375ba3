"""minidl.data.datasets: real files written in the standard formats, read back exactly."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from minidl.data import CIFAR10, MNIST, DataLoader, Digits, FashionMNIST, SyntheticShapes, \
    read_idx
from minidl.testing import assert_close


def write_idx(path, array, type_code=0x08):
    """The IDX layout, written by hand: 0, 0, type code, ndim, big-endian sizes, data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def mnist_files(folder, n_train=7, n_test=3, gz=True, seed=0, size=(28, 28)):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n,) + size, dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        ext = ".gz" if gz else ""
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels)
        data[prefix] = (images, labels)
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_bit_exactly(tmp_path, gz):
    data = mnist_files(tmp_path, gz=gz)
    for train, prefix in ((True, "train"), (False, "t10k")):
        ds = MNIST(tmp_path, train=train)
        images, labels = data[prefix]
        assert ds.data.dtype == np.uint8 and ds.data.shape == (len(labels), 1, 28, 28)
        np.testing.assert_array_equal(ds.data[:, 0], images)
        np.testing.assert_array_equal(ds.targets, labels.astype(np.int64))
        image, label = ds[1]
        assert image.dtype == np.float32 and image.shape == (1, 28, 28)
        np.testing.assert_array_equal(image[0], images[1] / np.float32(255))
        assert label == labels[1]


def test_mnist_in_raw_subfolder_and_fashion(tmp_path):
    data = mnist_files(tmp_path / "MNIST" / "raw", size=(5, 6))
    np.testing.assert_array_equal(MNIST(tmp_path).data[:, 0], data["train"][0])
    fdata = mnist_files(tmp_path / "FashionMNIST" / "raw", seed=1, gz=False)
    fashion = FashionMNIST(tmp_path, train=False)
    np.testing.assert_array_equal(fashion.data[:, 0], fdata["t10k"][0])
    assert fashion.classes[9] == "Ankle boot"
    xb, yb = next(iter(DataLoader(fashion, batch_size=3)))
    assert xb.shape == (3, 1, 28, 28) and yb.dtype == np.int64


def test_read_idx_other_types(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "a.idx", a, type_code=0x0C)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    f = np.linspace(-1, 1, 6).astype(np.float32)
    write_idx(tmp_path / "f.idx.gz", f, type_code=0x0D)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx.gz"), f)


def test_mnist_missing_file_says_where_to_put_it(tmp_path):
    data = mnist_files(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert len(MNIST(tmp_path, train=True)) == len(data["train"][1])
    with pytest.raises(FileNotFoundError) as err:
        MNIST(tmp_path, train=False)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte" in message and str(tmp_path) in message
    assert "put them in" in message and "does not download" in message


def test_mnist_malformed_files(tmp_path):
    mnist_files(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    # Images where labels belong: the magic number says 3 dimensions.
    write_idx(path, np.zeros((7, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: IDX file with 3 "
                                         r"dimensions .* expected 1 \(magic 0x00000801\)"):
        MNIST(tmp_path)
    write_idx(path, np.zeros(6, np.uint8))
    with pytest.raises(ValueError, match="has 6 labels but the image file has 7 images"):
        MNIST(tmp_path)
    write_idx(path, np.full(7, 10, np.uint8))
    with pytest.raises(ValueError, match="has label 10, expected 0..9"):
        MNIST(tmp_path)
    with gzip.open(path, "wb") as f:
        f.write(b"\x12\x34\x56\x78 garbage")
    with pytest.raises(ValueError, match=r"not an IDX file \(magic number 0x12345678"):
        MNIST(tmp_path)
    raw = struct.pack(">BBBBI", 0, 0, 8, 1, 7) + bytes(5)            # 2 bytes short
    with gzip.open(path, "wb") as f:
        f.write(raw)
    with pytest.raises(ValueError, match=r"header says shape \(7,\) \(15 bytes\) but the "
                                         r"file has 13 bytes"):
        MNIST(tmp_path)
    with open(path, "wb") as f:                                     # not gzip at all
        f.write(b"plain bytes")
    with pytest.raises(ValueError, match="cannot be read"):
        MNIST(tmp_path)


def cifar_batch(path, n, seed, protocol=2, str_keys=False):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    with open(path, "wb") as f:
        pickle.dump({key("batch_label"): key("training batch"), key("labels"): labels,
                     key("data"): data, key("filenames"): [key("a.png")] * n}, f,
                    protocol=protocol)
    return data, np.array(labels)


def cifar_folder(root, sizes=(3, 2, 4, 1, 2), test=5):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = [cifar_batch(folder / f"data_batch_{i + 1}", n, i) for i, n in enumerate(sizes)]
    test_data = cifar_batch(folder / "test_batch", test, 99, protocol=4)
    return train, test_data


def test_cifar10_reads_python_batches_bit_exactly(tmp_path):
    train, (test_x, test_y) = cifar_folder(tmp_path)
    ds = CIFAR10(tmp_path, train=True)
    expected = np.concatenate([x for x, _ in train]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(ds.data, expected)
    np.testing.assert_array_equal(ds.targets, np.concatenate([y for _, y in train]))
    # The layout of a row: 1024 red values, then green, then blue, each row-major.
    first = train[0][0][0]
    assert ds.data[0, 1, 0, 5] == first[1024 + 5] and ds.data[0, 2, 31, 31] == first[3071]
    test = CIFAR10(tmp_path / "cifar-10-batches-py", train=False)    # the folder itself
    np.testing.assert_array_equal(test.data.reshape(-1, 3072), test_x)
    np.testing.assert_array_equal(test.targets, test_y)
    image, label = test[4]
    assert image.dtype == np.float32 and image.shape == (3, 32, 32) and label == test_y[4]
    xb, yb = next(iter(DataLoader(test, batch_size=5)))
    np.testing.assert_array_equal(xb.numpy(), test_x.reshape(-1, 3, 32, 32) / np.float32(255))


def test_cifar10_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        CIFAR10(tmp_path)
    message = str(err.value)
    assert "data_batch_1" in message and "cifar-10-python.tar.gz" in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    cifar_folder(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    os.remove(folder / "data_batch_4")
    with pytest.raises(FileNotFoundError, match="data_batch_4 not found"):
        CIFAR10(tmp_path)
    cifar_batch(folder / "data_batch_4", 2, 0, str_keys=True)     # latin1-style keys work
    assert len(CIFAR10(tmp_path)) == 3 + 2 + 4 + 2 + 2       # batch 4 now holds 2
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"test_batch: b'data' must be uint8 of shape "
                                         r"\(N, 3072\), got uint8 \(2, 100\)"):
        CIFAR10(tmp_path, train=False)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f)
    with pytest.raises(ValueError, match="b'labels' must hold 2 integers"):
        CIFAR10(tmp_path, train=False)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"pixels": 1}, f)
    with pytest.raises(ValueError, match="expected keys b'data' and b'labels'"):
        CIFAR10(tmp_path, train=False)
    with open(folder / "test_batch", "wb") as f:
        f.write(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR python batch"):
        CIFAR10(tmp_path, train=False)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    cifar_folder(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load"):
        CIFAR10(tmp_path, train=False)


# ---- Digits and SyntheticShapes ------------------------------------------------------

def test_digits_split_values_and_resize():
    pytest.importorskip("sklearn")
    train, test = Digits(train=True), Digits(train=False)
    assert len(train) == 1438 and len(test) == 359
    assert train.data.shape[1:] == (1, 8, 8) and train.data.dtype == np.float32
    assert train.data.min() == 0 and train.data.max() == 1
    from sklearn.datasets import load_digits
    raw = load_digits()
    # Train and test are disjoint and together are every image once.
    all_rows = np.concatenate([train.data, test.data]).reshape(-1, 64) * 16
    assert sorted(map(bytes, all_rows.astype(np.uint8))) == \
        sorted(map(bytes, raw.data.astype(np.uint8)))
    assert np.bincount(test.targets, minlength=10).min() > 20        # every class tested
    big = Digits(train=False, size=28)
    assert big.data.shape == (359, 1, 28, 28)
    assert_close(big.data.mean(axis=(1, 2, 3)), test.data.mean(axis=(1, 2, 3)), atol=0.02)
    image, label = big[0]
    assert image.shape == (1, 28, 28) and label == test.targets[0]


def test_synthetic_shapes_masks_and_reproducibility():
    ds = SyntheticShapes(60, size=24, seed=1)
    again = SyntheticShapes(60, size=24, seed=1)
    np.testing.assert_array_equal(ds.data, again.data)
    assert not np.array_equal(ds.data, SyntheticShapes(60, size=24, seed=2).data)
    assert ds.data.shape == (60, 3, 24, 24) and ds.data.dtype == np.float32
    assert set(np.unique(ds.targets)) == {0, 1, 2}
    for i in range(60):
        labels = set(np.unique(ds.masks[i])) - {0}
        assert labels == {ds.targets[i] + 1}
        inside = ds.masks[i] > 0
        assert 10 < inside.sum() < 24 * 24 * 0.6
        # The shape is brighter than the background in every channel.
        assert np.all(ds.data[i][:, inside].mean(axis=1) > ds.data[i][:, ~inside].mean(axis=1))
    seg = SyntheticShapes(8, size=16, target="mask", channels=1)
    image, mask = seg[3]
    assert image.shape == (1, 16, 16) and mask.shape == (16, 16) and mask.dtype == np.int64
    with pytest.raises(ValueError, match="target must be 'label' or 'mask'"):
        SyntheticShapes(4, target="box")

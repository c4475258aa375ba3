"""Image data sets, read from local files (nothing is downloaded) or made on the spot.

Every one holds ``data`` (N, C, H, W) (uint8 for file formats, float32 otherwise) and
``targets`` (N,) int64, and returns ``(image, target)`` with the image as float32 CHW in
[0, 1], after ``transform`` (image) and ``target_transform`` (label). ``get_batch``
returns a whole batch at once; a minidl transform then runs once on it, with
per-sample random parameters.

- Digits: scikit-learn's embedded 8x8 handwritten digits (1797 images), optional resize.
- MNIST, FashionMNIST: the standard IDX files (gzipped or not) from a folder.
- CIFAR10: the standard "python version" batches from a folder.
- SyntheticShapes: circles, squares and triangles with their masks, drawn from a seed.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np

from .dataset import Dataset, _check_index, apply_transform

__all__ = ["Digits", "MNIST", "FashionMNIST", "CIFAR10", "SyntheticShapes", "read_idx",
           "ImageDataset"]


class ImageDataset(Dataset):
    """Images ``data`` (N, C, H, W) and labels ``targets`` (N,); see the module doc."""

    classes: tuple = ()

    def __init__(self, data, targets, transform=None, target_transform=None):
        self.data = data
        self.targets = np.asarray(targets, dtype=np.int64)
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @staticmethod
    def _as_float(images):
        if images.dtype == np.uint8:
            return images.astype(np.float32) / np.float32(255)
        return images.astype(np.float32, copy=False)

    def _target(self, index):
        return self.targets[index]

    def __getitem__(self, index):
        index = _check_index(index, len(self), type(self).__name__)
        image = self._as_float(self.data[index])
        target = self._target(index)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def get_batch(self, indices):
        """(images (B, C, H, W) float32, targets) for ``indices``, transformed as a batch."""
        indices = np.asarray(indices, dtype=np.int64)
        images = apply_transform(self.transform, self._as_float(self.data[indices]))
        targets = self._target(indices)
        if self.target_transform is not None:
            targets = np.stack([np.asarray(self.target_transform(t)) for t in targets])
        return images, targets

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images of shape "
                f"{tuple(self.data.shape[1:])}, {len(np.unique(self.targets))} classes)")


# ---- scikit-learn's digits -----------------------------------------------------------

class Digits(ImageDataset):
    """scikit-learn's embedded handwritten digits: 1797 grey 8x8 images, 10 classes.

    Values are scaled from 0..16 to [0, 1]. Split: a fixed permutation of all images
    (numpy default_rng(0)); the last round(20%) = 359 are ``train=False``, the first 1438
    ``train=True``. ``size=28`` resizes every image once, bilinearly, with the same
    sampler as the ``Resize`` transform.

    Raises:
        ImportError: when scikit-learn is missing (``pip install minidl[examples]``).
    >>> ds = Digits(train=True, size=28)      # ds[0] -> ((1, 28, 28) float32, label)
    """

    classes = tuple(str(d) for d in range(10))
    test_fraction = 0.2

    def __init__(self, train: bool = True, size: int = None, transform=None,
                 target_transform=None):
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ImportError("Digits needs scikit-learn for its embedded digits data: "
                              "pip install minidl[examples]") from exc
        bunch = load_digits()
        images = (bunch.images / 16.0).astype(np.float32)[:, None]     # (1797, 1, 8, 8)
        targets = bunch.target.astype(np.int64)
        order = np.random.default_rng(0).permutation(len(targets))
        n_train = len(targets) - int(round(self.test_fraction * len(targets)))
        keep = order[:n_train] if train else order[n_train:]
        images, targets = images[keep], targets[keep]
        if size is not None:
            from .transforms.geometric import Resize
            images = np.clip(Resize((size, size) if isinstance(size, int) else size)(images),
                             0.0, 1.0)
        self.train = bool(train)
        super().__init__(images, targets, transform, target_transform)


# ---- MNIST and Fashion-MNIST (IDX files) --------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:   # a truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def read_idx(path, expect_ndim: int = None) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped when the name ends in .gz.

    Layout: 2 zero bytes, a type code (0x08 = unsigned byte, ...), the number of
    dimensions d, then d big-endian int32 sizes, then the values in C order.

    Raises:
        ValueError: a wrong magic number, dimension count or file size, naming the file.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        magic = raw[:4].hex() if len(raw) >= 4 else f"only {len(raw)} bytes"
        raise ValueError(f"{path}: not an IDX file (magic number 0x{magic}, expected "
                         f"0x0000TTDD with a type code TT such as 08 for unsigned bytes)")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    if expect_ndim is not None and ndim != expect_ndim:
        raise ValueError(f"{path}: IDX file with {ndim} dimensions (magic 0x{raw[:4].hex()}),"
                         f" expected {expect_ndim} (magic 0x000008{expect_ndim:02x})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, expected at least "
                         f"{header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the "
                         f"file has {len(raw)} bytes (truncated or corrupt)")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


class MNIST(ImageDataset):
    """The MNIST digits from the four standard IDX files in ``root``.

    Looks for train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
    and t10k-labels-idx1-ubyte, each optionally gzipped (.gz), in ``root`` and in
    ``root/MNIST/raw``. Images (N, 1, 28, 28) uint8, returned as float32 in [0, 1].

    Raises:
        FileNotFoundError: a file is missing (the message lists where to put it).
        ValueError: a file is not a valid IDX file of the expected kind and size.
    >>> train = MNIST("~/data", train=True)
    """

    folder = "MNIST"
    classes = tuple(str(d) for d in range(10))
    source = "the MNIST page of Yann LeCun (or any mirror)"

    def __init__(self, root, train: bool = True, transform=None, target_transform=None):
        self.root, self.train = os.path.expanduser(str(root)), bool(train)
        prefix = "train" if train else "t10k"
        images = read_idx(self._find(f"{prefix}-images-idx3-ubyte"), expect_ndim=3)
        labels_path = self._find(f"{prefix}-labels-idx1-ubyte")
        labels = read_idx(labels_path, expect_ndim=1)
        name = type(self).__name__
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise ValueError(f"{name}: expected unsigned-byte IDX files (type code 0x08), got "
                             f"{images.dtype} images and {labels.dtype} labels")
        if len(labels) != len(images):
            raise ValueError(f"{name}: {labels_path} has {len(labels)} labels but the image "
                             f"file has {len(images)} images")
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(f"{name}: {labels_path} has label {labels.max()}, expected "
                             f"0..{len(self.classes) - 1}")
        super().__init__(images[:, None], labels.astype(np.int64), transform,
                         target_transform)

    def _find(self, name):
        folders = [self.root, os.path.join(self.root, self.folder, "raw")]
        for folder in folders:
            for candidate in (name, name + ".gz"):
                path = os.path.join(folder, candidate)
                if os.path.isfile(path):
                    return path
        files = ", ".join(f"{p}-{k}-idx{d}-ubyte.gz" for p in ("train", "t10k")
                          for k, d in (("images", 3), ("labels", 1)))
        raise FileNotFoundError(
            f"{type(self).__name__}: {name} (or {name}.gz) not found in "
            f"{' or '.join(folders)}. minidl does not download data: get the four IDX files "
            f"({files}) from {self.source} and put them in {self.root}")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: same IDX files and layout as MNIST, in ``root`` or
    ``root/FashionMNIST/raw``; 10 clothing classes."""

    folder = "FashionMNIST"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
    source = "the Fashion-MNIST repository of Zalando Research"


# ---- CIFAR-10 (python pickles) -------------------------------------------------------

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of NumPy arrays and nothing else: a data file cannot run code."""

    _allowed = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "scalar"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch "
                                         f"holds only arrays, lists and strings")
        if module == "numpy.core.multiarray":      # old pickles; NumPy 2 moved the module
            import numpy
            module = "numpy._core.multiarray" if hasattr(numpy, "_core") else module
        return super().find_class(module, name)


def _load_pickle(path):
    try:
        with open(path, "rb") as f:
            return _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as exc:
        raise ValueError(f"{path}: not a CIFAR python batch (unpickling failed: "
                         f"{type(exc).__name__}: {exc})") from exc


def _field(batch, key):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    return None


class CIFAR10(ImageDataset):
    """CIFAR-10 from the standard "python version" batches (cifar-10-python.tar.gz).

    Reads ``root/cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (train) or
    ``test_batch``, each a pickled dict with b'data' (10000, 3072) uint8 (the 1024 red,
    then green, then blue values of each 32x32 image) and b'labels'. ``root`` may also be
    the cifar-10-batches-py folder itself. Images (N, 3, 32, 32) uint8, returned as
    float32 in [0, 1]. Only arrays, lists and strings are unpickled.

    Raises:
        FileNotFoundError: a batch file is missing (the message says where to put it).
        ValueError: a file is not a CIFAR batch of the expected layout.
    >>> test = CIFAR10("~/data", train=False)
    """

    folder = "cifar-10-batches-py"
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck")

    def __init__(self, root, train: bool = True, transform=None, target_transform=None):
        self.root, self.train = os.path.expanduser(str(root)), bool(train)
        folder = os.path.join(self.root, self.folder)
        if not os.path.isdir(folder) and os.path.basename(os.path.normpath(self.root)) == \
                self.folder:
            folder = self.root
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        images, labels = [], []
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"CIFAR10: {path} not found. minidl does not download data: extract "
                    f"cifar-10-python.tar.gz (the CIFAR-10 python version) into {self.root} "
                    f"so that {os.path.join(self.root, self.folder, name)} exists")
            x, y = self._read(path)
            images.append(x)
            labels.append(y)
        super().__init__(np.concatenate(images), np.concatenate(labels), transform,
                         target_transform)

    @staticmethod
    def _read(path):
        batch = _load_pickle(path)
        if not isinstance(batch, dict):
            raise ValueError(f"{path}: expected a pickled dict with b'data' and b'labels', "
                             f"got {type(batch).__name__}")
        data, labels = _field(batch, "data"), _field(batch, "labels")
        if data is None or labels is None:
            raise ValueError(f"{path}: expected keys b'data' and b'labels', got "
                             f"{sorted(map(str, batch))}")
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: b'data' must be uint8 of shape (N, 3072), got "
                             f"{data.dtype} {data.shape}")
        labels = np.asarray(labels)
        if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
            raise ValueError(f"{path}: b'labels' must hold {data.shape[0]} integers, got "
                             f"{labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{path}: labels must be in 0..9, got range "
                             f"[{labels.min()}, {labels.max()}]")
        return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


# ---- synthetic shapes ----------------------------------------------------------------

class SyntheticShapes(ImageDataset):
    """Coloured circles (0), squares (1) and triangles (2) on plain noisy backgrounds.

    Each image holds one shape of random size, place and colours; ``masks`` (N, H, W)
    int64 marks its pixels with class + 1 (0 is background), for segmentation. Made
    from ``seed`` with its own generator (the same data every time).
    target='label' returns (image, class); target='mask' returns (image, mask).
    >>> ds = SyntheticShapes(512, size=32, seed=0)
    """

    classes = ("circle", "square", "triangle")

    def __init__(self, n: int = 1000, size: int = 32, channels: int = 3, seed: int = 0,
                 noise: float = 0.05, target: str = "label", transform=None,
                 target_transform=None):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"SyntheticShapes: n must be a positive int, got {n!r}")
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"SyntheticShapes: size must be an int >= 8, got {size!r}")
        if channels not in (1, 3):
            raise ValueError(f"SyntheticShapes: channels must be 1 or 3, got {channels!r}")
        if target not in ("label", "mask"):
            raise ValueError(f"SyntheticShapes: target must be 'label' or 'mask', got "
                             f"{target!r}")
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 3, n)
        r = rng.uniform(0.15, 0.35, n) * size                   # half the shape's extent
        cx = rng.uniform(r, size - 1 - r)
        cy = rng.uniform(r, size - 1 - r)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
        rr = r[:, None, None]
        circle = dx ** 2 + dy ** 2 <= rr ** 2
        square = (np.abs(dx) <= 0.85 * rr) & (np.abs(dy) <= 0.85 * rr)   # about equal area
        triangle = (dy <= rr) & (np.abs(dx) <= (dy + rr) / 2 * 1.15)     # apex at the top
        inside = np.choose(labels[:, None, None], [circle, square, triangle])
        fg = rng.uniform(0.55, 1.0, (n, channels, 1, 1))
        bg = rng.uniform(0.0, 0.4, (n, channels, 1, 1))
        images = np.where(inside[:, None], fg, bg)
        images = images + noise * rng.standard_normal(images.shape)
        self.masks = np.where(inside, labels[:, None, None] + 1, 0).astype(np.int64)
        self.target = target
        super().__init__(np.clip(images, 0, 1).astype(np.float32), labels, transform,
                         target_transform)

    def _target(self, index):
        return self.masks[index] if self.target == "mask" else self.targets[index]

"""Data: datasets, samplers, the DataLoader, and augmentation (``minidl.data.transforms``).

>>> from minidl.data import Digits, DataLoader, transforms as T
>>> train = Digits(train=True, size=28)
>>> aug = T.Compose([T.RandomAffine(10, translate=(0.1, 0.1)), T.Normalize(0.5, 0.5)])
>>> loader = DataLoader(train, batch_size=64, shuffle=True, seed=0, batch_transform=aug)
>>> for images, labels in loader: ...       # Tensors (64, 1, 28, 28) float32, (64,) int64

Nothing is downloaded: MNIST, FashionMNIST and CIFAR10 read the standard files from a
folder, Digits comes with scikit-learn, SyntheticShapes is drawn from a seed.
"""
from . import transforms
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .datasets import CIFAR10, MNIST, Digits, FashionMNIST, SyntheticShapes, read_idx
from .loader import DataLoader, default_collate
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                      WeightedRandomSampler, class_balanced_weights)

__all__ = [
    "Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader",
    "default_collate", "Sampler", "SequentialSampler", "RandomSampler",
    "WeightedRandomSampler", "BatchSampler", "class_balanced_weights", "Digits", "MNIST",
    "FashionMNIST", "CIFAR10", "SyntheticShapes", "read_idx", "transforms",
]

"""Data augmentation on raw arrays: a CHW image or an NCHW batch, NumPy or CuPy.

Every transform draws its random parameters per sample from an explicit generator
(default: ``minidl.backend.generator`` of the input's device, seeded by
``md.manual_seed``), and can do so separately from applying them::

    params = t.sample_params(x.shape, generator)
    y = t.apply(x, params)              # == t(x, generator) with the same draws

Families, one file each: base (Compose, RandomApply, ToFloat, Normalize), geometric
(flips, crops, and the one inverse-mapping sampler ``warp`` behind rotation, affine,
perspective, resized crop and resize), photometric (colour jitter, grey, histogram,
solarize, PCA lighting), kernel (blur, sharpen), erase_noise (random erasing, cutout,
Gaussian noise) and mixing (MixUp, CutMix with soft labels).

>>> from minidl.data import transforms as T
>>> train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
...                       T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
>>> batch = train_tf(batch)                      # (256, 3, 32, 32), per-sample draws
"""
from .base import Compose, Normalize, RandomApply, ToFloat, Transform, select_params
from .erase_noise import Cutout, GaussianNoise, RandomErasing
from .geometric import (CenterCrop, RandomAffine, RandomCrop, RandomHorizontalFlip,
                        RandomPerspective, RandomResizedCrop, RandomRotation,
                        RandomVerticalFlip, Resize, warp)
from .kernel import GaussianBlur, Sharpen
from .mixing import CutMix, MixUp, one_hot
from .photometric import (AutoContrast, ColorJitter, Equalize, Grayscale, PCALighting,
                          RandomGrayscale, Solarize)

__all__ = [
    "Transform", "Compose", "RandomApply", "ToFloat", "Normalize", "select_params",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomCrop", "CenterCrop",
    "RandomResizedCrop", "Resize", "RandomRotation", "RandomAffine", "RandomPerspective",
    "warp", "ColorJitter", "Grayscale", "RandomGrayscale", "AutoContrast", "Equalize",
    "Solarize", "PCALighting", "GaussianBlur", "Sharpen", "RandomErasing", "Cutout",
    "GaussianNoise", "MixUp", "CutMix", "one_hot",
]

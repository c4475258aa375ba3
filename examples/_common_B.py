"""Helpers shared by the part-B examples: the command line, output files, data, metrics.

Every example builds its command line with ``make_parser`` (the common flags --device,
--epochs, --seed, --quick, --out) plus its own flags, reads it with ``parse`` (--quick
swaps in small defaults), calls ``setup`` (seed, device check), and writes through
``Outputs`` (where its PNG and JSON go). The digit examples use ``digits``
(scikit-learn's embedded 8x8 digits, resized once and cached).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time

import numpy as np

import minidl as md
from minidl import nn

HERE = os.path.dirname(os.path.abspath(__file__))
FIGURES = os.path.join(HERE, "figures")
RESULTS = os.path.join(HERE, "results")


def make_parser(description: str, epochs: int, quick_epochs: int = 1,
                epochs_help: str = "training epochs") -> argparse.ArgumentParser:
    """An ArgumentParser with the flags every example takes; ``setup`` fills in the
    default of --epochs (``epochs``, or ``quick_epochs`` with --quick)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.set_defaults(default_epochs=(epochs, quick_epochs))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where tensors and models live")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"{epochs_help} (default {epochs}, {quick_epochs} with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of md.manual_seed and data")
    parser.add_argument("--quick", action="store_true",
                        help="a seconds-long smoke run: tiny subsets, few epochs, small widths")
    parser.add_argument("--out", default=None,
                        help="folder for the PNG and the JSON (default: examples/figures "
                             "and examples/results)")
    return parser


def parse(parser: argparse.ArgumentParser, argv=None, quick: "dict | None" = None):
    """Parse ``argv``; with --quick, the ``quick`` values replace the defaults of the
    flags not given on the command line (an explicit flag always wins)."""
    args = parser.parse_args(argv)
    if args.quick and quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def setup(args) -> None:
    """Fill in the default epochs, check the device and seed minidl before any work."""
    if args.epochs is None:
        args.epochs = args.default_epochs[1] if args.quick else args.default_epochs[0]
    if args.epochs < 1:
        raise SystemExit(f"--epochs must be at least 1, got {args.epochs}")
    if args.device == "cuda":
        reason = md.backend.cuda_unavailable_reason()
        if reason is not None:
            raise SystemExit(f"--device cuda: {reason}")
    md.manual_seed(args.seed)


def config(args) -> dict:
    """The run's settings for the JSON (the parsed flags, without internals)."""
    return {k: v for k, v in vars(args).items() if k != "default_epochs"}


class Outputs:
    """Paths of an example's figures and JSON: ``--out DIR`` puts both in DIR."""

    def __init__(self, name: str, out: "str | None") -> None:
        self.name = name
        self.fig_dir = out if out is not None else FIGURES
        self.res_dir = out if out is not None else RESULTS
        os.makedirs(self.fig_dir, exist_ok=True)
        os.makedirs(self.res_dir, exist_ok=True)

    def figure(self, suffix: str = "") -> str:
        return os.path.join(self.fig_dir, f"{self.name}{suffix}.png")

    @property
    def json(self) -> str:
        return os.path.join(self.res_dir, f"{self.name}.json")


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str) -> None:
    """Save at dpi 100 (small files for the README) and free the figure."""
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"figure: {os.path.relpath(path)}")


def _plain(value):
    """JSON-friendly copies of NumPy scalars and arrays; NaN becomes null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(_plain(data), f, indent=1)
        f.write("\n")
    print(f"results: {os.path.relpath(path)}")


def progress(iterable, desc: str, total: "int | None" = None):
    """A tqdm progress bar on stderr (plain iteration when tqdm is missing)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        print(desc, file=sys.stderr)
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


@functools.lru_cache(maxsize=None)
def _digits(size: int, train: bool):
    from minidl.data import Digits
    ds = Digits(train=train, size=size)
    return ds.data, ds.targets


def digits(size: int = 16, train: bool = True):
    """The embedded digits as (images (N, 1, size, size) float32 in [0, 1], labels (N,)).

    Split as ``minidl.data.Digits``: 1438 train and 359 test images. Copies, so callers
    may change them.
    """
    images, labels = _digits(size, train)
    return images.copy(), labels.copy()


def per_class_subset(labels: np.ndarray, classes, per_class: "int | None", rng) -> np.ndarray:
    """Indices of ``per_class`` random samples of each class in ``classes`` (all if None)."""
    picked = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if per_class is not None:
            idx = rng.choice(idx, size=min(per_class, idx.size), replace=False)
        picked.append(idx)
    return np.sort(np.concatenate(picked))


class SmallCNN(nn.Module):
    """conv3x3-ReLU-maxpool twice, then a linear head: a quick digit classifier.

    ``features`` maps (N, 1, S, S) to (N, 2*width, S/4, S/4); ``head`` is the classifier,
    so transfer learning can swap it and freeze ``features``.
    """

    def __init__(self, num_classes: int = 10, width: int = 16, size: int = 16,
                 in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten())
        self.feature_dim = 2 * width * (size // 4) ** 2
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def softmax_np(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, 1e-12)).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: the gap between confidence and accuracy, averaged over confidence bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def roc_curve(scores: np.ndarray, positive: np.ndarray):
    """(false positive rates, true positive rates) as the threshold sweeps down the scores;
    ``positive`` marks the samples that should score high."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    s, p = scores[order], positive[order]
    # one point per distinct threshold: the last index of each run of equal scores
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tps = np.cumsum(p)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / max(p.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~p).sum(), 1)]
    return fpr, tpr


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random
    negative (ties count half), from the ranks (Mann-Whitney U)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc: needs both positives and negatives, got {n_pos} and "
                         f"{n_neg}")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start

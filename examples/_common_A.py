"""Helpers shared by the examples lenet5_digits, resnet_cifar, batchnorm_effect,
residual_vs_plain, init_study and dropout_and_augmentation.

Each example builds its command line with ``example_parser``, seeds minidl, runs, and
ends with ``save_results`` (a JSON of its numbers) and ``save_figure`` (a PNG). Figures
go to examples/figures and numbers to examples/results, or both into ``--out DIR``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

import minidl as md
from minidl.backend import cuda_unavailable_reason

EXAMPLES_DIR = os.path.dirname(os.path.abspath(__file__))


def example_parser(description: str, epochs: int, seed: int = 0,
                   quick_epochs: int = 1) -> argparse.ArgumentParser:
    """The options every example takes: --device, --epochs, --seed, --quick, --out."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where to train (default: cpu)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: {epochs}; {quick_epochs} with --quick)")
    parser.add_argument("--seed", type=int, default=seed, help=f"random seed (default: {seed})")
    parser.add_argument("--quick", action="store_true",
                        help="a seconds-long smoke run on a tiny subset (for the tests)")
    parser.add_argument("--out", default=None,
                        help="folder for the PNG figure(s) and the JSON of numbers (default: "
                             "examples/figures and examples/results)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(default_epochs=epochs, quick_epochs=quick_epochs)
    return parser


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse argv, fill --epochs, check the device and seed minidl."""
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.epochs is None:
        args.epochs = args.quick_epochs if args.quick else args.default_epochs
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.device == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            parser.error(f"--device cuda: {reason}")
    md.manual_seed(args.seed)
    args.progress = not args.no_progress
    return args


def output_dirs(args) -> "tuple[str, str]":
    """(figure folder, results folder), created."""
    if args.out is not None:
        fig_dir = res_dir = args.out
    else:
        fig_dir = os.path.join(EXAMPLES_DIR, "figures")
        res_dir = os.path.join(EXAMPLES_DIR, "results")
    os.makedirs(fig_dir, exist_ok=True)
    os.makedirs(res_dir, exist_ok=True)
    return fig_dir, res_dir


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, args, filename: str) -> str:
    """Save ``fig`` as a small PNG (dpi 100) and close it; returns the path."""
    fig_dir, _ = output_dirs(args)
    path = os.path.join(fig_dir, filename)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    print(f"figure: {os.path.relpath(path)}")
    return path


def _plain(value):
    """JSON-ready copy: NumPy scalars and arrays become Python numbers and lists; NaN and
    inf become None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def save_results(results: dict, args, name: str) -> str:
    """Write the numbers of example ``name`` (plus its command line) to ``name``.json;
    returns the path."""
    _, res_dir = output_dirs(args)
    path = os.path.join(res_dir, f"{name}.json")
    results = dict(results)
    results["args"] = {k: v for k, v in vars(args).items()
                       if k not in ("default_epochs", "quick_epochs", "argv")}
    results["command"] = " ".join([f"python examples/{name}.py"] + args.argv)
    with open(path, "w") as f:
        json.dump(_plain(results), f, indent=1)
    print(f"results: {os.path.relpath(path)}")
    return path


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def progress_bar(total: int, desc: str = "", enabled: bool = True):
    """A tqdm bar of ``total`` steps (a silent stand-in when tqdm is missing or disabled)."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


class Timer:
    """Wall-clock seconds since creation: ``Timer().seconds``."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def train_steps(model, loss_fn, optimizer, loader, epochs: int, device=None,
                desc: str = "train", enabled: bool = True, stop_on_nan: bool = True,
                scheduler=None) -> dict:
    """Train and record the loss and accuracy of every step (fit records per epoch only).

    ``scheduler`` (optional) is stepped after every optimizer step.
    Returns {"loss": [...], "acc": [...], "diverged": bool}; a non-finite loss stops the
    run and sets ``diverged`` (a NaN loss is a result these examples want to show, not a
    crash).
    """
    losses, accs = [], []
    diverged = False
    model.train()
    bar = progress_bar(epochs * len(loader), desc=desc, enabled=enabled)
    for _ in range(epochs):
        for x, y in loader:
            if device is not None:
                x, y = x.to(device), y.to(device)
            out = model(x)
            loss = loss_fn(out, y)
            value = loss.item()
            bar.update(1)
            if not math.isfinite(value):
                diverged = True
                losses.append(float("nan"))
                accs.append(float("nan"))
                if stop_on_nan:
                    break
                continue
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(value)
            target = y.data if y.data.ndim == 1 else y.data.argmax(axis=1)
            accs.append(float((out.data.argmax(axis=1) == target).mean()))
            if len(losses) % 10 == 0:
                bar.set_postfix(loss=f"{value:.3f}")
        if diverged and stop_on_nan:
            break
    bar.close()
    return {"loss": losses, "acc": accs, "diverged": diverged}


@md.no_grad()
def accuracy_on(model, loader, device=None) -> float:
    """Share of correct argmax predictions over a loader, in eval mode."""
    was_training = model.training
    model.eval()
    correct = seen = 0
    for x, y in loader:
        if device is not None:
            x, y = x.to(device), y.to(device)
        pred = model(x).data.argmax(axis=1)
        correct += int((pred == y.data).sum())
        seen += len(y)
    model.train(was_training)
    return correct / max(seen, 1)


def smooth(values, k: int):
    """Moving average over ``k`` steps (for noisy per-step curves); NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    if k <= 1 or values.size < k:
        return values
    kernel = np.ones(k) / k
    return np.convolve(values, kernel, mode="valid")


def subset_per_class(targets, per_class: int, seed: int):
    """Indices of ``per_class`` samples of each class, drawn with its own generator."""
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets)
    picked = [rng.permutation(np.flatnonzero(targets == c))[:per_class]
              for c in np.unique(targets)]
    return np.sort(np.concatenate(picked))

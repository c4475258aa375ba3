"""A plain training loop: fit, evaluate, predict (with ensembles and test-time augmentation).

fit runs, for each epoch, the five steps every training loop has:

    for x, y in train_loader:
        loss = loss_fn(model(x), y)      # forward
        optimizer.zero_grad()            # forget the previous step's gradients
        loss.backward()                  # chain rule into every parameter's .grad
        optimizer.step()                 # move the parameters against the gradient
    (scheduler.step(), then evaluate on val_loader, save the best checkpoint)

and records the losses and accuracies in a History that can plot itself.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Callable, Iterable, Sequence

from ..backend import Device, get_array_module
from ..grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["History", "fit", "evaluate", "predict", "accuracy", "tta_views", "EarlyStopping"]


class History:
    """Per-epoch numbers of a training run: ``history["val_acc"]`` is a list.

    >>> h = fit(...); h.plot("curves.png"); h.best("val_acc")
    """

    def __init__(self):
        self.epochs: "list[dict]" = []
        self.interrupted = False
        self.best_epoch = None
        self.stopped_early = False

    def append(self, logs: dict) -> None:
        self.epochs.append(dict(logs))

    def __getitem__(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    def keys(self):
        return list(dict.fromkeys(k for e in self.epochs for k in e))

    def best(self, key: str = "val_loss"):
        values = [v for v in self[key] if v is not None]
        if not values:
            return None
        return min(values) if key.endswith("loss") else max(values)

    def to_dict(self) -> dict:
        return {k: self[k] for k in self.keys()}

    def to_json(self, path=None) -> str:
        text = json.dumps({"epochs": self.epochs, "interrupted": self.interrupted,
                           "best_epoch": self.best_epoch,
                           "stopped_early": self.stopped_early}, indent=1)
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    def plot(self, path=None, title: str = ""):
        """Loss and accuracy curves (train and val) with matplotlib; saved when path given."""
        import matplotlib
        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        epochs = self["epoch"]
        for ax, metric in zip(axes, ("loss", "acc")):
            for split in ("train", "val"):
                values = self[f"{split}_{metric}"]
                if any(v is not None for v in values):
                    ax.plot(epochs, values, marker="o", ms=3, label=split)
            ax.set_xlabel("epoch")
            ax.set_ylabel("accuracy" if metric == "acc" else "loss")
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig


class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs (a fit callback)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best, self.wait = None, 0

    def __call__(self, history: History, logs: dict) -> bool:
        value = logs.get(self.monitor)
        if value is None:
            return False
        sign = 1 if self.monitor.endswith("loss") else -1
        if self.best is None or sign * (value - self.best) < -self.min_delta:
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


def accuracy(output: Tensor, target: Tensor) -> float:
    """Share of correct argmax predictions; soft (N, C) targets count their argmax."""
    pred = output.data.argmax(axis=1)
    t = target.data
    if t.ndim == output.ndim and t.dtype.kind == "f":
        t = t.argmax(axis=1)
    return float((pred == t).mean()) if pred.size else float("nan")


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra: fall back to one line per epoch
        print(desc, file=sys.stderr)
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _to(batch, device):
    return batch.to(device) if isinstance(batch, Tensor) and device is not None else batch


def _check_fit_args(model, loss_fn, optimizer, epochs):
    from ..nn.module import Module
    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable, got {type(loss_fn).__name__}")
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "zero_grad"):
        raise TypeError(f"fit: optimizer must have step() and zero_grad(), got "
                        f"{type(optimizer).__name__}")
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")


def fit(model, loss_fn: Callable, optimizer, train_loader: Iterable, val_loader=None,
        epochs: int = 1, scheduler=None, device=None, callbacks: Sequence[Callable] = (),
        checkpoint_path=None, monitor: str = "val_acc", progress: bool = True,
        scheduler_step: str = "epoch", metric: Callable = accuracy,
        verbose: bool = True) -> History:
    """Train ``model`` for ``epochs`` and return its History.

    Args:
        model, loss_fn, optimizer: an nn.Module, a loss (callable on (output, target)),
            an optimizer with zero_grad()/step().
        train_loader, val_loader: iterables of (x, y) batches (e.g. minidl DataLoaders).
        scheduler: an lr scheduler, stepped once per epoch (or per batch when
            ``scheduler_step="batch"``, as OneCycleLR wants).
        device: where to run ("cpu", "cuda"); the model is moved there.
        callbacks: callables ``cb(history, logs) -> bool``; True stops training
            (EarlyStopping is one).
        checkpoint_path: where to save the best model so far (by ``monitor``), atomically;
            a KeyboardInterrupt leaves the last good checkpoint in place.
    Returns:
        History with epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds.

    >>> history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), 0.1),
    ...               train_loader, val_loader, epochs=5)
    """
    _check_fit_args(model, loss_fn, optimizer, epochs)
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"fit: scheduler_step must be 'epoch' or 'batch', got "
                         f"{scheduler_step!r}")
    device = Device.parse(device) if device is not None else None
    if device is not None:
        model.to(device)
    history = History()
    best = None
    sign = 1 if monitor.endswith("loss") else -1
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            model.train()
            total_loss, total_correct, seen = 0.0, 0.0, 0
            total = len(train_loader) if hasattr(train_loader, "__len__") else None
            bar = _progress(train_loader, total, f"epoch {epoch}/{epochs}",
                            progress and verbose)
            for x, y in bar:
                x, y = _to(x, device), _to(y, device)
                output = model(x)
                output = output[0] if isinstance(output, tuple) else output
                loss = loss_fn(output, y)
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"fit: the loss became {value} at epoch {epoch}; lower the learning "
                        f"rate or check the data (md.detect_anomaly() names the op)")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if scheduler is not None and scheduler_step == "batch":
                    scheduler.step()
                n = len(x)
                total_loss += value * n
                total_correct += metric(output, y) * n if metric else 0.0
                seen += n
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{value:.4f}")
            if scheduler is not None and scheduler_step == "epoch":
                scheduler.step()
            logs = {"epoch": epoch, "train_loss": total_loss / max(seen, 1),
                    "train_acc": total_correct / max(seen, 1) if metric else None,
                    "lr": optimizer.param_groups[0]["lr"]
                    if hasattr(optimizer, "param_groups") else None}
            if val_loader is not None:
                scores = evaluate(model, loss_fn, val_loader, device=device, metric=metric)
                logs["val_loss"], logs["val_acc"] = scores["loss"], scores["acc"]
            logs["seconds"] = time.perf_counter() - start
            history.append(logs)
            if verbose:
                print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in logs.items() if v is not None), flush=True)
            value = logs.get(monitor)
            if value is not None and (best is None or sign * (value - best) < 0):
                best = value
                history.best_epoch = epoch
                if checkpoint_path is not None:
                    from .checkpoint import save
                    save({"model": model.state_dict(), "epoch": epoch, monitor: value},
                         checkpoint_path)
            if any(cb(history, logs) for cb in callbacks):
                history.stopped_early = True
                break
    except KeyboardInterrupt:
        history.interrupted = True   # the checkpoint on disk is the last complete save
        raise
    return history


def tta_views(x: Tensor, flip: bool = True, crops: int = 0, pad: int = 2):
    """Test-time augmentation views of an NCHW batch: the batch, its horizontal flip, and
    ``crops`` shifted crops (the corners and centre of a ``pad``-padded copy)."""
    from ..ops.shape import pad as pad_op
    views = [x]
    if flip:
        views.append(x[..., ::-1])
    if crops:
        h, w = x.shape[-2:]
        padded = pad_op(x, (pad, pad, pad, pad), mode="replicate")
        offsets = [(pad, pad), (0, 0), (0, 2 * pad), (2 * pad, 0), (2 * pad, 2 * pad)]
        for dy, dx in offsets[1:1 + crops] if crops < 5 else offsets[1:]:
            views.append(padded[..., dy:dy + h, dx:dx + w])
    return views


@no_grad()
def _probabilities(models, x, tta):
    from ..ops.activation import softmax
    probs = None
    count = 0
    for model in models:
        views = tta(x) if callable(tta) else tta_views(x, **tta) if isinstance(tta, dict) \
            else [x]
        for v in views:
            out = model(v)
            out = out[0] if isinstance(out, tuple) else out
            p = softmax(out, 1).data
            probs = p if probs is None else probs + p
            count += 1
    return probs / count


def _as_models(model_or_models):
    models = list(model_or_models) if isinstance(model_or_models, (list, tuple)) else \
        [model_or_models]
    if not models:
        raise ValueError("predict: expected at least one model")
    return models


def predict(model_or_models, data, tta=None, device=None, batch_size: int = 256):
    """Class probabilities averaged over an ensemble of models and over TTA views.

    Args:
        model_or_models: a model or a list of models (an ensemble).
        data: a Tensor batch (N, ...) or an iterable of (x, y) or x batches.
        tta: None, a dict of tta_views options (``{"flip": True, "crops": 4}``), or a
            callable returning a list of views of a batch.
    Returns:
        A Tensor (N, num_classes) of probabilities.
    """
    models = _as_models(model_or_models)
    for m in models:
        m.eval()
        if device is not None:
            m.to(device)
    if isinstance(data, Tensor):
        batches = [data[i:i + batch_size] for i in range(0, len(data), batch_size)]
    else:
        batches = [b[0] if isinstance(b, (tuple, list)) else b for b in data]
    chunks = [_probabilities(models, _to(x, device), tta) for x in batches]
    xp = get_array_module(*chunks)
    return Tensor._wrap(xp.concatenate(chunks, axis=0))


@no_grad()
def evaluate(model_or_models, loss_fn, loader, device=None, tta=None,
             metric: Callable = accuracy) -> dict:
    """Mean loss and accuracy over a loader, in eval mode; ensembles and TTA average the
    predicted probabilities (the loss is then the NLL of the averaged probabilities)."""
    models = _as_models(model_or_models)
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    total_loss, total_correct, seen = 0.0, 0.0, 0
    try:
        for x, y in loader:
            x, y = _to(x, device), _to(y, device)
            if len(models) == 1 and tta is None:
                out = models[0](x)
                out = out[0] if isinstance(out, tuple) else out
                loss = loss_fn(out, y).item() if loss_fn is not None else float("nan")
                scores = out
            else:
                probs = _probabilities(models, x, tta)
                xp = get_array_module(probs)
                scores = Tensor._wrap(probs)
                t = y.data if y.data.dtype.kind in "iu" else y.data.argmax(axis=1)
                picked = xp.take_along_axis(probs, t.reshape(-1, 1), axis=1)
                loss = float(-xp.log(xp.maximum(picked, 1e-12)).mean())
            n = len(x)
            total_loss += loss * n
            total_correct += metric(scores, y) * n if metric else 0.0
            seen += n
    finally:
        for m, mode in zip(models, was_training):
            m.train(mode)
    if seen == 0:
        raise ValueError("evaluate: the loader yielded no batch")
    return {"loss": total_loss / seen, "acc": total_correct / seen if metric else None,
            "n": seen}

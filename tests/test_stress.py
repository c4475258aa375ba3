"""Stress: CIFAR ResNet-20 trains for a few hundred steps while bad batches are thrown at it.

A hand-written loop (so that it can count and go on) feeds synthetic shapes with every
sixth batch replaced by a malformed one: wrong ndim, wrong channel count, an empty
batch, int64 or float64 pixels, float or out-of-range labels, a label count that does
not match, NaN pixels, pixels so large the logits overflow. Malformed batches must be
refused by the forward pass or the loss with a ValueError/TypeError; batches with NaN or
overflowing values give a non-finite loss, which the loop detects and skips (restoring
the BatchNorm running statistics the forward pass had already updated, as a careful user
would). Every bad batch must be rejected, no good batch may be, and training must go on:
the weights stay finite and the loss comes down. Marked slow (a few minutes on a CPU).
"""
from __future__ import annotations

import collections
import math
import time

import numpy as np
import pytest

import minidl as md
import minidl.nn.functional as F
from minidl import models, optim
from minidl.data import DataLoader, SyntheticShapes
from minidl.optim import lr_scheduler
from minidl.utils import load, save

pytestmark = pytest.mark.slow

STEPS = 300
SIZE = 16
BATCH = 8


def _bad_batch(kind, x, y, rng):
    """A malformed version of the good batch (x, y)."""
    xa, ya = x.numpy(), y.numpy()
    if kind == "3-D input":
        return md.tensor(xa[:, 0]), y
    if kind == "1 channel":
        return md.tensor(xa[:, :1]), y
    if kind == "empty batch":
        return md.tensor(xa[:0]), md.tensor(ya[:0])
    if kind == "int64 pixels":
        return md.tensor((xa * 255).astype(np.int64)), y
    if kind == "float64 pixels":
        return md.tensor(xa.astype(np.float64)), y
    if kind == "float labels":
        return x, md.tensor(ya.astype(np.float32))
    if kind == "label 3 of 3 classes":
        ya = ya.copy()
        ya[rng.integers(len(ya))] = 3
        return x, md.tensor(ya)
    if kind == "negative label":
        ya = ya.copy()
        ya[0] = -1
        return x, md.tensor(ya)
    if kind == "one label too many":
        return x, md.tensor(np.concatenate([ya, ya[:1]]))
    if kind == "NaN pixels":
        xa = xa.copy()
        xa[rng.integers(len(xa)), :, 3:6, 3:6] = np.nan
        return md.tensor(xa), y
    if kind == "huge pixels":
        return md.tensor(np.full_like(xa, 3e38)), y
    raise AssertionError(kind)


BAD_KINDS = ["3-D input", "1 channel", "empty batch", "int64 pixels", "float64 pixels",
             "float labels", "label 3 of 3 classes", "negative label", "one label too many",
             "NaN pixels", "huge pixels"]


SUMMARY: list = []


@pytest.fixture(scope="session", autouse=True)
def _report(request):
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin(
        "capturemanager")
    if reporter is not None and capture is not None and SUMMARY:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\nstress: " + SUMMARY[0])


def _buffers(model):
    return {k: v.data.copy() for k, v in model.named_buffers()}


def _restore(model, saved):
    for k, v in model.named_buffers():
        v.data[...] = saved[k]


def test_resnet20_keeps_training_through_bad_batches(tmp_path):
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    model = models.cifar_resnet20(num_classes=3)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
    data = SyntheticShapes(512, size=SIZE, seed=0)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True)
    counts = collections.Counter()
    errors = collections.Counter()
    good_losses = []
    start = time.perf_counter()
    step, schedule = 0, []
    while step < STEPS:
        for x, y in loader:
            if step >= STEPS:
                break
            step += 1
            # every sixth batch is bad, the kinds in a shuffled cycle: each comes ~4 times
            if step % 6 == 3:
                if not schedule:
                    schedule = list(rng.permutation(BAD_KINDS))
                kind = schedule.pop()
            else:
                kind = None
            if kind is not None:
                x, y = _bad_batch(kind, x, y, rng)
            saved = _buffers(model)
            try:
                with np.errstate(all="ignore" if kind else "warn"):   # NaN/inf on purpose
                    loss = F.cross_entropy(model(x), y)
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(f"non-finite loss {value}")
                opt.zero_grad()
                loss.backward()
                opt.step()
            except (ValueError, TypeError, FloatingPointError) as exc:
                _restore(model, saved)       # the forward pass had updated BN statistics
                assert kind is not None, f"step {step}: a good batch was refused: {exc}"
                counts[f"rejected: {kind}"] += 1
                errors[type(exc).__name__] += 1
                if not isinstance(exc, FloatingPointError):
                    assert str(exc).split(":")[0] in ("conv2d", "cross_entropy",
                                                      "batch_norm"), exc
                continue
            finally:
                sched.step()
            assert kind is None, f"step {step}: a bad batch ({kind}) was accepted"
            counts["good steps"] += 1
            good_losses.append(value)
    seconds = time.perf_counter() - start
    rejected = sum(v for k, v in counts.items() if k.startswith("rejected"))
    summary = (f"{STEPS} steps in {seconds:.0f} s: {counts['good steps']} good, {rejected} "
               f"bad batches rejected {dict(sorted(counts.items()))}; exceptions "
               f"{dict(errors)}; loss first 30 {np.mean(good_losses[:30]):.3f}, last 30 "
               f"{np.mean(good_losses[-30:]):.3f}")
    SUMMARY.append(summary)
    assert rejected == STEPS // 6
    assert {k for k in counts if k.startswith("rejected")} == {f"rejected: {k}"
                                                               for k in BAD_KINDS}
    for name, p in model.named_parameters():
        assert np.isfinite(p.numpy()).all(), name
    for name, b in model.named_buffers():
        assert np.isfinite(b.numpy()).all(), name
    # training went on: the loss fell, and the model beats chance on clean data
    assert np.mean(good_losses[-30:]) < 0.8 * np.mean(good_losses[:30]), summary
    model.eval()
    with md.no_grad():
        correct = sum(int((model(x).numpy().argmax(1) == y.numpy()).sum())
                      for x, y in DataLoader(data, batch_size=64))
    # Beating chance (1/3) by three standard errors of a 512-image estimate (0.021 each).
    # Where above that this run lands depends on float32 rounding: with the same seed
    # and gradients equal to 5e-7, two summation orders of conv2d's weight gradient gave
    # 0.61 and 0.49; other seeds gave 0.66-0.99.
    chance = 1 / 3
    assert correct / len(data) > chance + 3 * (chance * (1 - chance) / len(data)) ** 0.5, \
        f"accuracy {correct / len(data):.2f}; {summary}"
    # and the whole state still saves and loads
    path = tmp_path / "after_stress.npz"
    save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    fresh = models.cifar_resnet20(num_classes=3)
    fresh.load_state_dict(load(path)["model"])

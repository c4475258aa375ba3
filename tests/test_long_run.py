"""Long runs: memory stays flat, no graph outlives its step, Ctrl-C keeps the checkpoint.

* ``fit`` for many steps: resident memory (VmRSS) after warm-up never grows more than 5%
  (300 steps of a tiny CNN by default; 2,000 steps of LeNet-5 in the slow set).
* A hand-written loop checks after every step, with weak references, that the output,
  the loss, every Function node of the graph and every activation are gone.
* A KeyboardInterrupt inside ``fit`` (mid-epoch, or in the middle of writing a
  checkpoint) leaves the last complete checkpoint on disk, loadable, with no stray file;
  a real SIGINT from outside does the same.
"""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import weakref

import numpy as np
import pytest

import minidl as md
import minidl.nn.functional as F
from minidl import models, nn, optim
from minidl.utils import fit
from minidl.utils.checkpoint import load

NUMBERS: dict = {}


@pytest.fixture(scope="session", autouse=True)
def _report(request):
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin(
        "capturemanager")
    if reporter is not None and capture is not None and NUMBERS:
        with capture.global_and_fixture_disabled():
            for key, value in NUMBERS.items():
                reporter.write_line(f"\nlong run {key}: {value}")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; else ru_maxrss, a peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def tiny_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(8, 3))


def batches(n_batches, batch, shape, classes, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        y = rng.integers(0, classes, batch)
        x = rng.standard_normal((batch,) + shape).astype(np.float32) * 0.5
        x[:, 0, :2, :2] += y.reshape(-1, 1, 1) - 1.0      # something to learn
        out.append((md.tensor(x), md.tensor(y)))
    return out


def _flat_rss_run(model, data, steps, lr):
    """fit for ``steps`` steps, sampling RSS after every epoch; returns the samples."""
    samples = []

    def record(history, logs):
        gc.collect()      # what is left after a collection is what a leak would keep
        samples.append(rss_bytes())
        return False

    epochs = steps // len(data)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    history = fit(model, nn.CrossEntropyLoss(), opt, data, epochs=epochs, callbacks=[record],
                  progress=False, verbose=False)
    assert len(history) == epochs and all(np.isfinite(history["train_loss"]))
    return samples, history


def _check_flat(samples, steps, label):
    warm = max(2, len(samples) // 10)                # the first 10% of the run is warm-up
    base = samples[warm - 1]
    peak = max(samples[warm:])
    NUMBERS[label] = (f"{steps} steps, RSS after warm-up {base / 2**20:.1f} MiB, at the end "
                      f"{samples[-1] / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
                      f"({100 * (peak / base - 1):+.2f}%)")
    assert peak <= 1.05 * base, NUMBERS[label]


def test_rss_stays_flat_over_300_steps():
    md.manual_seed(0)
    data = batches(10, 8, (1, 8, 8), 3)
    samples, history = _flat_rss_run(tiny_cnn(), data, 300, 0.05)
    _check_flat(samples, 300, "tiny CNN")
    assert history["train_loss"][-1] < history["train_loss"][0]


@pytest.mark.slow
def test_rss_stays_flat_over_2000_steps_of_lenet5():
    md.manual_seed(0)
    data = batches(20, 4, (1, 28, 28), 10)
    samples, history = _flat_rss_run(models.lenet5(), data, 2000, 0.02)
    _check_flat(samples, 2000, "LeNet-5")
    assert history["train_loss"][-1] < history["train_loss"][0]


def _graph_nodes(root):
    """Every Function of the graph below ``root`` (what backward will walk)."""
    nodes, stack, seen = [], [root._ctx], set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        nodes.append(fn)
        stack.extend(getattr(x, "_ctx", None) for x in fn.inputs)
    return nodes


@pytest.mark.parametrize("build, shape, classes",
                         [(tiny_cnn, (1, 8, 8), 3),
                          (lambda: models.cifar_resnet20(num_classes=4), (3, 8, 8), 4)],
                         ids=["tiny CNN", "cifar_resnet20"])
def test_no_graph_outlives_its_step(build, shape, classes):
    md.manual_seed(0)
    model = build()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = batches(3, 4, shape, classes)
    activations = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: activations.append(
        weakref.ref(out))) for m in model.modules() if not list(m.children())]
    gc.disable()      # the graph must go by reference counting alone, at once
    try:
        for step in range(12):
            x, y = data[step % len(data)]
            activations.clear()
            out = model(x)
            loss = F.cross_entropy(out, y)
            refs = [weakref.ref(out), weakref.ref(loss)] + \
                [weakref.ref(fn) for fn in _graph_nodes(loss)]
            assert len(refs) > 10
            opt.zero_grad()
            loss.backward()
            opt.step()
            del out, loss
            alive = [r() for r in refs + activations if r() is not None]
            assert not alive, f"step {step}: {len(alive)} graph objects still alive, " \
                              f"e.g. {type(alive[0]).__name__}"
            for p in model.parameters():
                assert p.grad is None or p.grad._ctx is None   # grads hold no graph
    finally:
        gc.enable()
        for h in hooks:
            h.remove()
    NUMBERS.setdefault("graph check", "12 steps each, every node freed by refcount")


# ---- KeyboardInterrupt inside fit ---------------------------------------------------------
def _fit_with_checkpoint(path, epochs, loss_fn=None, callbacks=()):
    md.manual_seed(0)
    model = tiny_cnn()
    opt = optim.SGD(model.parameters(), lr=0.05)
    data = batches(4, 8, (1, 8, 8), 3)
    return model, fit(model, loss_fn or nn.CrossEntropyLoss(), opt, data, epochs=epochs,
                      checkpoint_path=path, monitor="epoch", callbacks=callbacks,
                      progress=False, verbose=False)


def test_keyboard_interrupt_mid_epoch_keeps_the_last_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    calls = {"n": 0}
    ce = nn.CrossEntropyLoss()

    def loss_fn(output, target):       # Ctrl-C at the 2nd of epoch 4's 4 steps
        calls["n"] += 1
        if calls["n"] == 14:
            signal.raise_signal(signal.SIGINT)   # Python turns it into KeyboardInterrupt
        return ce(output, target)

    with pytest.raises(KeyboardInterrupt):
        _fit_with_checkpoint(path, 10, loss_fn=loss_fn)
    ckpt = load(path)
    assert ckpt["epoch"] == 3                  # epochs 1-3 completed, 4 interrupted
    tiny_cnn().load_state_dict(ckpt["model"])
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_keyboard_interrupt_inside_zipfile_open_stays_a_keyboard_interrupt(tmp_path,
                                                                          monkeypatch):
    """A Ctrl-C that lands inside ZipFile.open, once the archive has marked a member open
    but before the member exists: KeyboardInterrupt comes out (not zipfile's "Can't close
    the ZIP file" ValueError), the last checkpoint stays, no temporary file remains, and
    nothing is printed about an archive that could not be closed."""
    import gc
    import zipfile
    path = tmp_path / "ckpt.npz"
    real = zipfile.ZipFile._open_to_write
    opens = {"n": 0}

    def interrupted_open(self, zinfo, force_zip64=False):
        opens["n"] += 1
        if opens["n"] == 30:                  # inside the third or fourth checkpoint
            self._writing = True              # as the real method does, first
            raise KeyboardInterrupt
        return real(self, zinfo, force_zip64)

    monkeypatch.setattr(zipfile.ZipFile, "_open_to_write", interrupted_open)
    with pytest.raises(KeyboardInterrupt):
        _fit_with_checkpoint(path, 10)
    monkeypatch.undo()
    gc.collect()                              # ZipFile.__del__ must not complain either
    ckpt = load(path)
    assert ckpt["epoch"] >= 1
    tiny_cnn().load_state_dict(ckpt["model"])
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_keyboard_interrupt_while_writing_a_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    real = np.lib.format.write_array
    writes = {"n": 0}

    def interrupted_write(fp, array, *args, **kwargs):
        writes["n"] += 1
        if writes["n"] == 40:                 # inside the fourth checkpoint's arrays
            fp.write(b"\0" * 64)
            raise KeyboardInterrupt
        return real(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        _fit_with_checkpoint(path, 10)
    monkeypatch.undo()
    ckpt = load(path)
    per_save = 1 + len(tiny_cnn().state_dict())       # the header, then one per array
    assert ckpt["epoch"] == (40 - 1) // per_save      # the saves before the broken one
    tiny_cnn().load_state_dict(ckpt["model"])
    assert os.listdir(tmp_path) == ["ckpt.npz"], "the interrupted temporary file remains"


_SIGINT_TRAINER = textwrap.dedent("""
    import sys
    import numpy as np
    import minidl as md
    from minidl import nn, optim
    from minidl.utils import fit
    md.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 3))
    rng = np.random.default_rng(0)
    data = [(md.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32)),
             md.tensor(rng.integers(0, 3, 8))) for _ in range(2)]
    print("READY", flush=True)
    try:
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.05), data,
            epochs=10**6, checkpoint_path=sys.argv[1], monitor="epoch", progress=False,
            verbose=False)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix",
                    reason="sends a POSIX SIGINT to a child process")
def test_sigint_from_outside_keeps_the_last_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", _SIGINT_TRAINER, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"READY", proc.stderr.read().decode()
        end = time.monotonic() + 60
        while not path.exists() and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(0.3)                         # a few more epochs, then Ctrl-C
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"INTERRUPTED" in out, err.decode()[-2000:]
    ckpt = load(path)
    assert ckpt["epoch"] >= 1
    assert os.listdir(tmp_path) == ["ckpt.npz"]

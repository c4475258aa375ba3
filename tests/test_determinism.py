"""Determinism: md.manual_seed(s) fixes a whole training run, bit for bit.

The run below draws from every source of randomness a training run has: the weight
initialisation, the data order (a shuffling DataLoader), batched augmentation (flips,
padded crops, noise), dropout and stochastic depth. Its per-step losses and final weights
must be bit-identical when it is repeated in the same process, in two fresh processes
(with different hash seeds), and whatever the user's own NumPy global random calls do;
another seed must give another run (so the comparison can fail).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minidl as md
import minidl.nn.functional as F
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.data import transforms as T

STEPS = 12


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.drop2d = nn.Dropout2d(0.1)
        self.drop_path = nn.DropPath(0.2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 16)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = x + self.drop_path(F.relu(self.conv2(self.drop2d(x))))   # a residual branch
        x = self.pool(x).flatten(1)
        return self.head(self.drop(F.relu(self.fc(x))))


def _data():
    # Fixed data (not random): the run's randomness must all come from manual_seed.
    grid = np.linspace(-1, 1, 48 * 3 * 8 * 8, dtype=np.float32).reshape(48, 3, 8, 8)
    images = np.sin(grid * np.arange(1, 49, dtype=np.float32).reshape(48, 1, 1, 1))
    return TensorDataset(images, np.arange(48) % 4)


def training_run(seed: int, steps: int = STEPS, poke_numpy: bool = False) -> dict:
    """Per-step losses (as exact hex floats) and a digest of the final weights."""
    md.manual_seed(seed)
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    augment = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(8, padding=1),
                         T.GaussianNoise(0.05, p=0.5)])
    loader = DataLoader(_data(), batch_size=8, shuffle=True, batch_transform=augment)
    losses = []
    while len(losses) < steps:
        for x, y in loader:
            if poke_numpy:                      # a user's own randomness in between
                np.random.seed(len(losses))
                np.random.standard_normal(100)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()).hex())
            if len(losses) == steps:
                break
    weights = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    return {"losses": losses, "weights": weights.astype(np.float32).tobytes().hex()[:64],
            "weights_sum": float(weights.astype(np.float64).sum()).hex()}


def test_the_same_seed_gives_bit_identical_runs_in_one_process():
    first = training_run(7)
    second = training_run(7)
    assert first["losses"] == second["losses"]
    assert first["weights"] == second["weights"]
    assert first["weights_sum"] == second["weights_sum"]
    assert len(set(first["losses"])) > STEPS // 2, "the run did not train"


def test_another_seed_gives_another_run():
    a, b = training_run(7), training_run(8)
    assert a["losses"] != b["losses"] and a["weights_sum"] != b["weights_sum"]


def test_the_users_numpy_global_state_does_not_matter():
    np.random.seed(999)
    a = training_run(3)
    b = training_run(3, poke_numpy=True)
    assert a == b


def test_every_source_of_randomness_is_seeded():
    """Each source on its own repeats under the same seed and changes with another: none
    of them draws from an unseeded generator."""
    md.manual_seed(5)
    init = [p.numpy().copy() for p in Net().parameters()]
    md.manual_seed(5)
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(init, Net().parameters()))
    x = md.ones(4, 16)
    md.manual_seed(5)
    d1 = F.dropout(x, 0.5).numpy()
    md.manual_seed(5)
    assert np.array_equal(d1, F.dropout(x, 0.5).numpy())
    md.manual_seed(6)
    assert not np.array_equal(d1, F.dropout(x, 0.5).numpy())
    md.manual_seed(5)
    order1 = [y.numpy().tolist() for _, y in DataLoader(_data(), 8, shuffle=True)]
    md.manual_seed(5)
    order2 = [y.numpy().tolist() for _, y in DataLoader(_data(), 8, shuffle=True)]
    md.manual_seed(6)
    order3 = [y.numpy().tolist() for _, y in DataLoader(_data(), 8, shuffle=True)]
    assert order1 == order2 != order3
    batch = np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    crop = T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip()])
    md.manual_seed(5)
    c1 = crop(batch)
    md.manual_seed(5)
    assert np.array_equal(c1, crop(batch))
    md.manual_seed(6)
    assert not np.array_equal(c1, crop(batch))


_CHILD = textwrap.dedent("""
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("determinism_run", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(json.dumps(module.training_run(int(sys.argv[2]))))
""")


def _in_a_fresh_process(seed, hash_seed):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-c", _CHILD, os.path.abspath(__file__),
                             str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)


def test_two_processes_give_bit_identical_runs():
    procs = [_in_a_fresh_process(11, hash_seed) for hash_seed in (1, 2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    here = training_run(11)
    assert results[0] == results[1] == here


@pytest.mark.slow
def test_a_long_run_stays_bit_identical():
    assert training_run(21, steps=120) == training_run(21, steps=120)

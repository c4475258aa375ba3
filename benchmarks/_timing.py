"""Interleaved timing of minidl against PyTorch in one process (bench_cpu, bench_ops).

The two frameworks share the cores, and each one's idle pool workers would steal them
from the other:

* PyTorch's OpenMP workers spin after each parallel region; interleaved with them,
  minidl's conv2d fwd+bwd took 147 ms against 101 ms alone. OMP_WAIT_POLICY=PASSIVE
  makes them sleep at once (PyTorch's own time moved from 84 to 88 ms, within the
  noise). It must be set before torch is imported: import this module first.
* OpenBLAS's workers spin for up to 2^28 cycles (~0.1 s here) after each call; with
  them spinning into its turns, PyTorch's ResNet-18 convolutions took 1.36 s in all
  instead of 0.91 s. So every timed run starts after SETTLE_S seconds of rest.
"""
from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SETTLE_S = 0.25


def interleaved(fns: dict, repeats: int, warmup: int = 1, sync=None) -> dict:
    """{name: {"median": s, "min": s}} of each callable, run in turns so that all see
    the same load.

    The order alternates every round, so neither side always runs right after the other,
    and with more than one callable every timed run starts after SETTLE_S of rest.
    ``sync`` (e.g. a GPU synchronise) runs after each call, inside the timed span.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):       # allocations, BLAS threads, caches, workspaces
        for fn in fns.values():
            fn()
        sync()
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            if len(fns) > 1:
                time.sleep(SETTLE_S)
            start = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: {"median": statistics.median(t), "min": min(t)} for name, t in times.items()}

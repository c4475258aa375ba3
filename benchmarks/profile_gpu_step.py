"""Where a minidl training step on the GPU spends its time: host (Python) or device.

    python benchmarks/profile_gpu_step.py                 # CIFAR ResNet-20 b128, ResNet-18 b64
    python benchmarks/profile_gpu_step.py --top 40

For each model it prints the wall time of a step (back to back, synchronised at the end)
and the host time of one step started on an idle GPU: the Python that issues the
kernels. CuPy launches asynchronously, so a host time well below the wall time means
the GPU is the bottleneck, and one close to it means Python is. (Back to back, a full
launch queue makes the host wait for the GPU, so only a step that starts idle shows its
own host time.) Then a cProfile of a few steps, sorted by own time.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25, help="cProfile rows to print")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    from minidl.backend import cuda_unavailable_reason
    reason = cuda_unavailable_reason()
    if reason is not None:
        print(f"profile_gpu_step: no GPU: {reason}", file=sys.stderr)
        return 2
    import cupy

    import minidl as md
    import minidl.nn.functional as F
    from minidl import models, optim

    for name, batch, size, classes in (("cifar_resnet20", 128, 32, 10),
                                       ("resnet18", 64, 224, 1000)):
        rng = np.random.default_rng(0)
        md.manual_seed(0)
        model = getattr(models, name)(num_classes=classes).to("cuda")
        model.train()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = md.tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32),
                      device="cuda")
        t = md.tensor(rng.integers(0, classes, batch), device="cuda")

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), t)
            loss.backward()
            opt.step()

        for _ in range(3):
            step()
        cupy.cuda.Device().synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        cupy.cuda.Device().synchronize()
        wall = (time.perf_counter() - start) / args.steps
        host_idle, wall_idle = [], []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            host_idle.append(time.perf_counter() - start)
            cupy.cuda.Device().synchronize()
            wall_idle.append(time.perf_counter() - start)
        print(f"{name} b{batch} {size}x{size}: wall {wall * 1e3:.1f} ms/step back to back; "
              f"one step from idle: host {np.median(host_idle) * 1e3:.1f} ms, wall "
              f"{np.median(wall_idle) * 1e3:.1f} ms", flush=True)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(5):
            step()
        cupy.cuda.Device().synchronize()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

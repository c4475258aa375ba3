"""The CIFAR ResNet-18 training step of bench_cpu.py, for minidl or PyTorch.

Imported by bench_cpu.py for the timed runs. Run as a script it measures the peak
resident memory of a fresh process that runs the step a few times:

    python benchmarks/_rss_step.py --framework minidl [--batch 32] [--steps 3] [--threads 2]

and prints one JSON line: the peak RSS (VmHWM, the kernel's high-water mark of this
process), the RSS after imports and after building the model and the batch. Each
framework runs in its own process, which imports only that framework, so one's memory
never counts against the other.

"CIFAR ResNet-18" is torchvision's ResNet-18 (BasicBlock [2, 2, 2, 2], widths 64 to 512)
with the CIFAR stem: a 3x3 stride-1 convolution and no max pool, for 32x32 inputs and 10
classes. The PyTorch network below is written to torchvision's code (ReLU(inplace=True),
``out += identity``) with the same parameter names as minidl's, so state dicts map key
for key.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

NUM_CLASSES = 10


def minidl_resnet18_cifar():
    """minidl's resnet18 with the CIFAR stem (conv1 3x3 stride 1, no max pool)."""
    from minidl import models, nn
    model = models.resnet18(num_classes=NUM_CLASSES)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def torch_resnet18_cifar():
    """The same network in torch.nn, written as torchvision writes its ResNet."""
    import torch.nn as tnn

    class BasicBlock(tnn.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(inplanes, planes, 1, stride, bias=False),
                    tnn.BatchNorm2d(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += identity
            return self.relu(out)

    class ResNet18(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU(inplace=True)
            widths, inplanes = (64, 128, 256, 512), 64
            for i, planes in enumerate(widths):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", tnn.Sequential(
                    BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
                inplanes = planes
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512, NUM_CLASSES)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18()


def batch(size: int, seed: int = 0):
    """A random CIFAR-shaped batch (float32 images, int64 labels) as NumPy arrays."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((size, 3, 32, 32), dtype=np.float32)
    return images, rng.integers(0, NUM_CLASSES, size)


def minidl_step(model, images, labels, lr: float = 0.01):
    """A closure running one training step of ``model`` on the batch: forward,
    cross-entropy, zero_grad, backward, SGD(momentum 0.9) step; it returns the loss."""
    import minidl as md
    import minidl.nn.functional as F
    from minidl import optim
    x, y = md.tensor(images), md.tensor(labels)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def torch_step(model, images, labels, lr: float = 0.01):
    """The same training step in PyTorch."""
    import torch
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB; NaN where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure(framework: str, batch_size: int, steps: int, threads: int) -> dict:
    """Peak memory of this process while it runs ``steps`` ResNet-18 training steps."""
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
    else:
        import minidl
        minidl.set_num_threads(threads)
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(limits=threads, user_api="blas")
        except ImportError:
            pass        # NumPy's default BLAS threads
    rss_imports = _status_mb("VmRSS")
    images, labels = batch(batch_size)
    if framework == "torch":
        step = torch_step(torch_resnet18_cifar(), images, labels)
    else:
        step = minidl_step(minidl_resnet18_cifar(), images, labels)
    rss_setup = _status_mb("VmRSS")
    for _ in range(steps):
        step()
    # VmHWM is this process's own peak. ru_maxrss is the fallback where /proc is missing,
    # but it carries over from the parent across exec (bench_cpu.py's own peak would
    # show), and it is in kB on Linux, in bytes on macOS.
    peak, source = _status_mb("VmHWM"), "VmHWM"
    if peak != peak:    # NaN: no /proc
        peak, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss"
    return {"record": "rss", "framework": framework, "batch": batch_size, "steps": steps,
            "peak_rss_mb": round(peak, 1), "peak_from": source,
            "rss_after_imports_mb": round(rss_imports, 1),
            "rss_after_setup_mb": round(rss_setup, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["minidl", "torch"], required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch.set_num_threads, or NumPy's BLAS threads for minidl")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.framework, args.batch, args.steps, args.threads)),
          flush=True)


if __name__ == "__main__":
    main()

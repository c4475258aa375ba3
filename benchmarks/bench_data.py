"""Images per second of the classic CIFAR augmentation, per image vs batched.

Pipeline: ToFloat (uint8 -> [0, 1]) -> RandomCrop(32, padding=4) -> RandomHorizontalFlip
-> Normalize, on batches of 256 (CIFAR-10 from --root, else random uint8 images of the
same shape). Three ways:

  per_image   the pipeline called on each CHW image of the batch, then stacked
  batched     the pipeline called once on the NCHW batch (per-sample random draws)
  loader      DataLoader(..., batch_transform=pipeline) end to end: indexing, moving,
              augmenting, wrapping into Tensors

and, for scale, the training throughput of minidl's ResNet-20 (forward, backward, SGD
step) on the same device: the batched pipeline must not be the bottleneck of training.
Prints one JSON line per measurement, then a table.

    python benchmarks/bench_data.py [--device cpu] [--batches 5] [--train-steps 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minidl as md  # noqa: E402
from minidl.backend import to_device  # noqa: E402
from minidl.data import CIFAR10, DataLoader, TensorDataset  # noqa: E402
from minidl.data import transforms as T  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def pipeline():
    return T.Compose([T.ToFloat(), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                      T.Normalize(CIFAR_MEAN, CIFAR_STD)])


def sync(device):
    if device != "cpu":
        import cupy
        cupy.cuda.Device().synchronize()


def timed(fn, repeats, device):
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_images(root, n):
    if root:
        ds = CIFAR10(root, train=True)
        return ds.data[:n], ds.targets[:n], "cifar10"
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, 10, n), "random-uint8")


def train_throughput(device, batch, steps):
    """Images per second of ResNet-20 training steps (None when the model is missing)."""
    try:
        from minidl import optim
        from minidl.models import cifar_resnet20
        import minidl.nn.functional as F
    except ImportError as exc:
        print(f"# ResNet-20 unavailable ({exc}); training throughput not measured",
              file=sys.stderr)
        return None
    model = cifar_resnet20(num_classes=10).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), device=device)
    y = md.tensor(rng.integers(0, 10, batch), device=device)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return batch / timed(step, steps, device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--batches", type=int, default=5, help="timed repeats per case")
    ap.add_argument("--root", default=None, help="folder with cifar-10-batches-py (optional)")
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=2, help="0 skips ResNet-20 training")
    args = ap.parse_args(argv)

    md.manual_seed(0)
    n = args.batch_size
    images, labels, source = load_images(args.root, 4 * n)
    batch_host = images[:n]
    batch = to_device(batch_host, args.device)
    tf = pipeline()
    gen = md.backend.generator(args.device)
    xp = md.get_array_module(batch)

    def per_image():
        return xp.stack([tf(img, generator=gen) for img in batch])

    def batched():
        return tf(batch, generator=gen)

    loader = DataLoader(TensorDataset(images, labels), batch_size=n, shuffle=True, seed=0,
                        drop_last=True, device=args.device, batch_transform=tf)

    def through_loader():
        for xb, yb in loader:
            pass

    results = []

    def report(case, seconds_per_batch, images_per_batch):
        row = {"bench": "data", "case": case, "device": args.device, "source": source,
               "batch": images_per_batch, "ms_per_batch": round(seconds_per_batch * 1e3, 3),
               "images_per_s": round(images_per_batch / seconds_per_batch, 1)}
        results.append(row)
        print(json.dumps(row), flush=True)

    report("per_image", timed(per_image, args.batches, args.device), n)
    report("batched", timed(batched, args.batches, args.device), n)
    epoch = timed(through_loader, max(1, args.batches // 2), args.device)
    report("loader", epoch / len(loader), n)
    train = None
    if args.train_steps > 0:
        train = train_throughput(args.device, args.train_batch, args.train_steps)
        if train is not None:
            row = {"bench": "data", "case": "resnet20_train", "device": args.device,
                   "batch": args.train_batch, "images_per_s": round(train, 1)}
            results.append(row)
            print(json.dumps(row), flush=True)

    print(f"\nCIFAR augmentation (crop pad 4, flip, normalise), batch {n}, {args.device}, "
          f"{source} images")
    print(f"{'case':<16}{'ms/batch':>12}{'images/s':>14}{'vs per_image':>14}")
    base = results[0]["images_per_s"]
    for r in results:
        ms = f"{r['ms_per_batch']:.2f}" if "ms_per_batch" in r else "-"
        print(f"{r['case']:<16}{ms:>12}{r['images_per_s']:>14.1f}"
              f"{r['images_per_s'] / base:>13.1f}x")
    if train is not None:
        ratio = results[1]["images_per_s"] / train
        print(f"\nbatched augmentation is {ratio:.0f}x faster than ResNet-20 training "
              f"({'not' if ratio > 1 else 'IS'} the bottleneck)")


if __name__ == "__main__":
    main()

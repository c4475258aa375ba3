"""What a 1x1 bottleneck saves: the naive vs the 1x1-reduced Inception module, counted.

The course notes' arithmetic: a 5x5 convolution from 192 to 32 channels on a 28x28 map
costs 28*28*32 outputs * 5*5*192 multiplies each = 120.4M multiply-accumulates (MACs).
Shrinking the 192 channels to 16 with a 1x1 convolution first costs 28*28*16*192 = 2.4M,
and the 5x5 then works on 16 channels: 28*28*32*5*5*16 = 10.0M; 12.4M in all, ten times
less, for the same output shape. ``minidl.utils.summary`` counts these per layer; this
script prints its tables for the single 5x5 branch and for a whole Inception module
(GoogLeNet's inception3a: 192 channels in, 28x28) without and with the reductions, then
times a forward pass of each on the chosen device, to show the saving is real. (The naive
module also outputs 416 channels instead of 256, as its pooling branch passes all 192
input channels through: the next layer would pay for that too.)

    python examples/inception_cost.py            # about 15 seconds on a CPU
"""
from __future__ import annotations

import io
import time

import numpy as np

import minidl as md
from minidl import nn
from minidl.models import BasicConv2d, Inception
from minidl.ops.shape import cat
from minidl.utils.summary import summary

from _common_B import (Outputs, config, make_parser, parse, progress, pyplot, save_figure,
                       setup, write_json)

NAME = "inception_cost"
INPUT = (192, 28, 28)          # what inception3a of GoogLeNet receives


class NaiveInception(nn.Module):
    """The Inception module without 1x1 reductions: 1x1, 3x3 and 5x5 convolutions and a
    3x3 max pool straight on the input, concatenated (the pool passes all its channels)."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = BasicConv2d(in_channels, ch3x3, kernel_size=3, padding=1)
        self.branch3 = BasicConv2d(in_channels, ch5x5, kernel_size=5, padding=2)
        self.branch4 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def build_models() -> dict:
    """The four networks compared, by name (plain convolutions with bias for the branch,
    GoogLeNet's conv-BN-ReLU units for the modules)."""
    return {
        "5x5 conv, naive": nn.Conv2d(192, 32, kernel_size=5, padding=2),
        "5x5 conv, 1x1-reduced": nn.Sequential(
            nn.Conv2d(192, 16, kernel_size=1), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=5, padding=2)),
        "Inception 3a, naive": NaiveInception(192, 64, 128, 32),
        "Inception 3a, 1x1-reduced": Inception(192, 64, 96, 128, 16, 32, 32,
                                               branch3_kernel_size=5),
    }


@md.no_grad()
def time_forward(model, batch: int, repeats: int, device) -> float:
    """(median seconds of a forward pass on a random batch after one warm-up pass, the
    output shape of one image)."""
    model.eval()
    x = md.randn(batch, *INPUT, device=device)
    model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model(x)
        float(out.data[(0,) * out.ndim])   # reading a value waits for a GPU to finish
        times.append(time.perf_counter() - start)
    return float(np.median(times)), tuple(out.shape[1:])


def plot(path, names, macs, params, seconds, batch, device):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.8))
    colors = ["C3", "C0", "C3", "C0"]
    labels = [n.replace(", ", "\n") for n in names]
    for ax, values, title, unit in (
            (axes[0], np.array(macs) / 1e6, "multiply-accumulates per image", "M MACs"),
            (axes[1], np.array(params) / 1e3, "parameters", "thousands"),
            (axes[2], np.array(seconds) * 1e3, f"forward time, batch {batch} ({device})",
             "ms")):
        bars = ax.bar(range(len(names)), values, color=colors)
        for b, v in zip(bars, values):
            ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.margins(y=0.15)
    fig.suptitle("naive (red) vs 1x1-reduced (blue): the 5x5 branch and the whole module, "
                 "input 192x28x28", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    parser = make_parser(__doc__.splitlines()[0], epochs=5, quick_epochs=1,
                         epochs_help="timed forward passes per model (nothing is trained)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="images per timed forward pass")
    args = parse(parser, argv, quick=dict(batch_size=1))
    setup(args)
    out = Outputs(NAME, args.out)

    rows = {}
    tables = {}
    for name, model in build_models().items():
        model.to(args.device)
        text = io.StringIO()
        s = summary(model, INPUT, file=text)
        tables[name] = text.getvalue()
        print(f"\n== {name} ==")
        print(tables[name], end="")
        rows[name] = {"macs": s.total_macs, "params": s.total_params,
                      "layers": [{"name": r.name, "kind": r.kind,
                                  "output_shape": list(r.output_shape), "params": r.params,
                                  "macs": r.macs} for r in s.rows if r.macs or r.params]}
    for name in progress(list(rows), desc="timing"):
        model = build_models()[name].to(args.device)
        seconds, shape = time_forward(model, args.batch_size, args.epochs, args.device)
        rows[name]["seconds"], rows[name]["output_shape"] = seconds, list(shape)

    names = list(rows)
    branch_naive, branch_red = rows[names[0]], rows[names[1]]
    module_naive, module_red = rows[names[2]], rows[names[3]]
    results = {
        "config": config(args), "input_shape": list(INPUT), "models": rows,
        "branch_macs_ratio": branch_naive["macs"] / branch_red["macs"],
        "module_macs_ratio": module_naive["macs"] / module_red["macs"],
        "branch_time_ratio": branch_naive["seconds"] / branch_red["seconds"],
        "module_time_ratio": module_naive["seconds"] / module_red["seconds"],
        "course_notes": {"naive_5x5_macs": 28 * 28 * 32 * 5 * 5 * 192,
                         "reduced_5x5_macs": 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16},
    }
    plot(out.figure(), names, [rows[n]["macs"] for n in names],
         [rows[n]["params"] for n in names], [rows[n]["seconds"] for n in names],
         args.batch_size, args.device)
    write_json(out.json, results)

    print("\n{:<28}{:>16}{:>12}{:>16}{:>12}".format("", "MACs", "params", "output",
                                                   f"ms (b={args.batch_size})"))
    for n in names:
        r = rows[n]
        shape = "x".join(map(str, r["output_shape"]))
        print(f"{n:<28}{r['macs']:>16,}{r['params']:>12,}{shape:>16}"
              f"{1e3 * r['seconds']:>12.2f}")
    print(f"5x5 branch: {branch_naive['macs'] / 1e6:.1f}M vs {branch_red['macs'] / 1e6:.1f}M "
          f"MACs ({results['branch_macs_ratio']:.1f}x fewer), measured "
          f"{results['branch_time_ratio']:.1f}x faster")
    print(f"Inception 3a module: {module_naive['macs'] / 1e6:.1f}M vs "
          f"{module_red['macs'] / 1e6:.1f}M MACs ({results['module_macs_ratio']:.1f}x fewer), "
          f"measured {results['module_time_ratio']:.1f}x faster")
    return results


if __name__ == "__main__":
    main()

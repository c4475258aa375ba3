"""Initialisation: how the activations and gradients of a deep ReLU net scale, layer by
layer, under zero, N(0, 1), Xavier, He and LSUV initialisation.

A deep MLP (default: 20 hidden layers of 256 ReLU units, digits as inputs) is given each
initialisation in turn. One batch goes forward and the cross-entropy gradient comes back;
we print and plot, per layer, the standard deviation of the activations and of the
gradients. Then each net trains for a few hundred SGD steps.

What theory says and the run shows:
  zero    every unit computes the same thing, the activations and the hidden gradients
          are exactly 0, and they stay 0: the symmetry is never broken.
  N(0,1)  each layer multiplies the activation scale by about sqrt(fan_in / 2) (~11 for
          256 inputs): activations explode (1e20 after 20 layers), and so does the loss.
  Xavier  variance 1/fan_avg is right for tanh, not ReLU: ReLU halves the variance, so
          the activations shrink by ~sqrt(2) per layer and the gradients vanish.
  He      variance 2/fan_in compensates ReLU: the scale stays the same through depth.
  LSUV    data-driven: each layer is rescaled until its outputs have unit variance on a
          real batch (Mishkin & Matas 2016), also stable.

    python examples/init_study.py                  # about a minute on a CPU

Writes examples/figures/init_study.png and examples/results/init_study.json.
"""
from __future__ import annotations

import math

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.backend import to_device
from minidl.data import DataLoader, Digits, TensorDataset

from _common_A import (Timer, accuracy_on, example_parser, parse, pyplot, save_figure,
                       save_results, smooth, train_steps)

NAME = "init_study"
SCHEMES = ("zero", "normal", "xavier", "he", "lsuv")
LABELS = {"zero": "zero", "normal": "N(0, 1)", "xavier": "Xavier", "he": "He (Kaiming)",
          "lsuv": "LSUV"}


def build_parser():
    parser = example_parser(__doc__.split("\n")[0], epochs=10)
    parser.add_argument("--depth", type=int, default=None,
                        help="hidden layers (default 20; 6 with --quick)")
    parser.add_argument("--width", type=int, default=None,
                        help="units per hidden layer (default 256; 32 with --quick)")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD lr (momentum 0.9)")
    parser.add_argument("--batch-size", type=int, default=64)
    return parser


def deep_mlp(in_features: int, width: int, depth: int, classes: int = 10) -> nn.Sequential:
    layers, features = [], in_features
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, classes))
    return nn.Sequential(*layers)


def linear_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def initialise(model, scheme: str, batch) -> None:
    """Give every Linear layer of ``model`` the named initialisation (biases 0)."""
    if scheme == "lsuv":
        nn.init.lsuv_(model, batch)         # orthogonal, then rescaled on the batch
        return
    for layer in linear_layers(model):
        nn.init.zeros_(layer.bias)
        if scheme == "zero":
            nn.init.zeros_(layer.weight)
        elif scheme == "normal":
            nn.init.normal_(layer.weight, 0.0, 1.0)
        elif scheme == "xavier":
            nn.init.xavier_normal_(layer.weight)
        elif scheme == "he":
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        else:
            raise ValueError(f"init_study: unknown scheme {scheme!r}, expected one of "
                             f"{SCHEMES}")


def layer_statistics(model, x, y) -> dict:
    """Per hidden layer: std of the ReLU outputs, of the loss gradient at the layer's
    output (before ReLU) and of its weight gradient, for one batch."""
    model.zero_grad()
    pre = []
    h = x
    acts = []
    layers = linear_layers(model)
    for i, layer in enumerate(layers):
        z = layer(h)
        if i < len(layers) - 1:
            z.retain_grad()
            pre.append(z)
            h = z.relu()
            acts.append(h)
        else:
            logits = z
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()

    def std(array):
        with np.errstate(all="ignore"):     # N(0, 1) overflows float32: inf is a result
            return float(to_device(array, "cpu").astype(np.float64).std())

    return {"activation_std": [std(a.data) for a in acts],
            "gradient_std": [std(z.grad.data) if z.grad is not None else 0.0 for z in pre],
            "weight_grad_std": [std(layer.weight.grad.data) if layer.weight.grad is not None
                                else 0.0 for layer in layers[:-1]],
            "loss": float(loss.item())}


def identical_units(model) -> bool:
    """True when, in every hidden layer, all units have the same incoming weights."""
    for layer in linear_layers(model)[:-1]:
        w = layer.weight.numpy()
        if not np.array_equal(w, np.broadcast_to(w[:1], w.shape)):
            return False
    return True


def load(args):
    train, test = Digits(train=True), Digits(train=False)
    # Standardised inputs (zero mean, unit variance per pixel over the training set):
    # what the variance arguments of Xavier and He assume.
    xtr = train.data.reshape(len(train), -1)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-3
    prep = [((d.data.reshape(len(d), -1) - mean) / std).astype(np.float32) for d in (train, test)]
    n_train = 320 if args.quick else len(train)
    n_test = 120 if args.quick else len(test)
    return (TensorDataset(prep[0][:n_train], train.targets[:n_train]),
            TensorDataset(prep[1][:n_test], test.targets[:n_test]))


def main(argv=None) -> dict:
    args = parse(build_parser(), argv)
    depth = args.depth or (6 if args.quick else 20)
    width = args.width or (32 if args.quick else 256)
    train, test = load(args)
    probe_x, probe_y = next(iter(DataLoader(train, batch_size=256, device=args.device)))
    print(f"MLP with {depth} hidden layers of {width} ReLU units on digits "
          f"({len(train)} training, {len(test)} held-out); statistics on a batch of "
          f"{len(probe_x)}")
    timer = Timer()
    results = {}
    for scheme in SCHEMES:
        md.manual_seed(args.seed)
        model = deep_mlp(64, width, depth).to(args.device)
        initialise(model, scheme, probe_x)
        with np.errstate(over="ignore", invalid="ignore"):
            stats = layer_statistics(model, probe_x, probe_y)
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                            device=args.device)
        with np.errstate(over="ignore", invalid="ignore"):   # N(0, 1) overflows: expected
            run = train_steps(model, nn.CrossEntropyLoss(), opt, loader, args.epochs,
                              desc=LABELS[scheme], enabled=args.progress)
        stats["train_loss"] = run["loss"]
        stats["diverged"] = run["diverged"]
        stats["test_acc"] = None if run["diverged"] else accuracy_on(
            model, DataLoader(test, 256, device=args.device))
        stats["units_identical_after_training"] = identical_units(model)
        results[scheme] = stats
        a, g = stats["activation_std"], stats["gradient_std"]
        end = "diverged (loss not finite)" if run["diverged"] else \
            f"final loss {np.mean(run['loss'][-10:]):.3f}, held-out {100 * stats['test_acc']:.1f}%"
        print(f"{LABELS[scheme]:12s} activation std layer 1 {a[0]:.3g} -> layer {depth} "
              f"{a[-1]:.3g}; gradient std layer 1 {g[0]:.3g}, layer {depth} {g[-1]:.3g}; "
              f"{end}", flush=True)
    seconds = timer.seconds
    print(f"zero init: all hidden units identical after training: "
          f"{results['zero']['units_identical_after_training']}")
    save_figure(plot(results, depth, width, args), args, f"{NAME}.png")
    out = {"example": NAME, "depth": depth, "width": width, "n_train": len(train),
           "n_test": len(test), "schemes": results, "seconds": seconds}
    save_results(out, args, NAME)
    print(f"total {seconds:.0f} s")
    return out


def plot(results, depth, width, args):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    floor = 1e-12        # zero std cannot be drawn on a log axis: shown at the bottom
    layers = np.arange(1, depth + 1)
    for key, ax, title in (("activation_std", axes[0], "activations (after ReLU)"),
                           ("gradient_std", axes[1], "gradients dL/dz (before ReLU)")):
        for scheme in SCHEMES:
            values = np.asarray(results[scheme][key], dtype=np.float64)
            values = np.where(np.isfinite(values), values, np.nan)
            label = LABELS[scheme] + (" (exactly 0)" if np.all(values == 0) else "")
            ax.plot(layers, np.maximum(values, floor), "o-", ms=3, label=label)
        ax.set_yscale("log")
        ax.set_xticks(layers[::max(1, depth // 10)])
        ax.set(xlabel="hidden layer", ylabel="standard deviation", title=title)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for scheme in SCHEMES:
        loss = np.asarray(results[scheme]["train_loss"], dtype=np.float64)
        k = 1 if args.quick else 10
        acc = results[scheme]["test_acc"]
        label = LABELS[scheme] + (": diverged" if results[scheme]["diverged"] else
                                  f": held-out {100 * acc:.1f}%")
        if loss.size:
            curve = smooth(loss, k) if loss.size >= k else loss
            ax.plot(np.arange(len(curve)) + k, curve, label=label)
        else:
            ax.plot([], [], label=label)
    # N(0, 1) starts at a loss near 1e20 and then overflows: a linear axis clipped near
    # ln(10) (the loss of a uniform guess) keeps the other curves readable.
    ax.set_ylim(0, 1.25 * math.log(10))
    ax.axhline(math.log(10), color="gray", ls=":", lw=1)
    ax.set(xlabel="SGD step", ylabel="training loss (smoothed)",
           title=f"training: SGD lr {args.lr}, momentum 0.9")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"a {depth}-layer ReLU MLP, {width} units per layer")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()

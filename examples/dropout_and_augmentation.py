"""Regularisation on a small training set: dropout, data augmentation and label smoothing
each narrow the gap between training and held-out accuracy.

A small CNN with a wide fully connected head is trained on only 20 digits per class
(200 images, 16x16); the plain model fits them perfectly and generalises much worse.
Then the same model is trained with, one at a time:
  dropout          Dropout(0.5) before the last layer and Dropout2d(0.1) after each conv
                   block: units cannot co-adapt, an implicit ensemble of thinned nets;
  augmentation     a random affine map per image (rotation +-12 degrees, shifts of 10%,
                   scale 0.9-1.1): new plausible digits every epoch;
  label smoothing  targets 0.9 on the right class and 0.1/10 spread over all (eps 0.1):
                   the net is not pushed to ever larger logits;
and with all three together. The gap is training accuracy (eval mode, on the clean
training images) minus held-out accuracy (the 359 held-out digits).

    python examples/dropout_and_augmentation.py        # a few minutes on a CPU

Writes examples/figures/dropout_and_augmentation.png and
examples/results/dropout_and_augmentation.json.
"""
from __future__ import annotations

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, Digits, Subset
from minidl.data import transforms as T
from minidl.utils import evaluate, fit

from _common_A import (Timer, example_parser, parse, pyplot, save_figure, save_results,
                       subset_per_class)

NAME = "dropout_and_augmentation"
CONFIGS = {
    "plain": dict(dropout=False, augment=False, smoothing=0.0),
    "dropout": dict(dropout=True, augment=False, smoothing=0.0),
    "augmentation": dict(dropout=False, augment=True, smoothing=0.0),
    "label smoothing": dict(dropout=False, augment=False, smoothing=0.1),
    "all three": dict(dropout=True, augment=True, smoothing=0.1),
}


def build_parser():
    parser = example_parser(__doc__.split("\n")[0], epochs=80, quick_epochs=2)
    parser.add_argument("--per-class", type=int, default=None,
                        help="training images per class (default 20; 6 with --quick)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=16, help="image side (pixels)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                        metavar="NAME", help=f"which runs (default: all of {list(CONFIGS)})")
    return parser


def small_cnn(dropout: bool, size: int) -> nn.Sequential:
    """conv3x3(16)-ReLU-pool, conv3x3(32)-ReLU-pool, linear 256, linear 10."""
    side = size // 4
    drop2d = (lambda: nn.Dropout2d(0.1)) if dropout else nn.Identity
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), drop2d(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), drop2d(),
        nn.Flatten(),
        nn.Linear(32 * side * side, 256), nn.ReLU(),
        nn.Dropout(0.5) if dropout else nn.Identity(),
        nn.Linear(256, 10))


def augmentation():
    return T.RandomAffine(degrees=12, translate=(0.1, 0.1), scale=(0.9, 1.1))


def run_config(name, cfg, args, train_idx, test):
    md.manual_seed(args.seed)             # every run starts from the same weights
    size = args.size
    train_aug = Subset(Digits(train=True, size=size,
                              transform=augmentation() if cfg["augment"] else None),
                       train_idx)
    train_clean = Subset(Digits(train=True, size=size), train_idx)
    model = small_cnn(cfg["dropout"], size).to(args.device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg["smoothing"])
    opt = optim.Adam(model.parameters(), lr=args.lr)
    # Cosine annealing settles the weights at the end, so the final numbers are not the
    # noise of one last large step.
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    train_loader = DataLoader(train_aug, batch_size=args.batch_size, shuffle=True,
                              seed=args.seed, device=args.device)
    clean_loader = DataLoader(train_clean, batch_size=256, device=args.device)
    test_loader = DataLoader(test, batch_size=256, device=args.device)
    clean_acc = []

    def measure_clean(history, logs):
        # fit's train_acc is measured in training mode on augmented batches; the gap
        # compares eval-mode accuracy on the clean training images instead.
        clean_acc.append(evaluate(model, None, clean_loader, device=args.device)["acc"])
        return False

    history = fit(model, loss_fn, opt, train_loader, test_loader, epochs=args.epochs,
                  scheduler=schedule, device=args.device, callbacks=[measure_clean],
                  progress=args.progress, verbose=False)
    # Held-out loss without smoothing, so all runs are compared on the same scale.
    test_scores = evaluate(model, nn.CrossEntropyLoss(), test_loader, device=args.device)
    return {"train_acc": clean_acc[-1], "test_acc": test_scores["acc"],
            "gap": clean_acc[-1] - test_scores["acc"], "test_loss": test_scores["loss"],
            "train_acc_curve": clean_acc, "test_acc_curve": history["val_acc"],
            "train_loss_curve": history["train_loss"], **cfg}


def main(argv=None) -> dict:
    args = parse(build_parser(), argv)
    per_class = args.per_class or (6 if args.quick else 20)
    full_train = Digits(train=True, size=args.size)
    train_idx = subset_per_class(full_train.targets, per_class, args.seed)
    test = Digits(train=False, size=args.size)
    if args.quick:
        test = Subset(test, np.arange(120))
    print(f"digits {args.size}x{args.size}: {len(train_idx)} training images "
          f"({per_class} per class), {len(test)} held-out; {args.epochs} epochs of Adam "
          f"lr {args.lr}")
    timer = Timer()
    runs = {}
    for name in args.configs:
        runs[name] = run_config(name, CONFIGS[name], args, train_idx, test)
        r = runs[name]
        print(f"{name:16s} train {100 * r['train_acc']:5.1f}%  held-out "
              f"{100 * r['test_acc']:5.1f}%  gap {100 * r['gap']:5.1f} points", flush=True)
    seconds = timer.seconds
    save_figure(plot(runs, args), args, f"{NAME}.png")
    results = {"example": NAME, "n_train": len(train_idx), "n_test": len(test),
               "runs": runs, "seconds": seconds}
    save_results(results, args, NAME)
    print("\n| run | train acc | held-out acc | gap | held-out loss |")
    print("|---|---|---|---|---|")
    for name, r in runs.items():
        print(f"| {name} | {100 * r['train_acc']:.1f}% | {100 * r['test_acc']:.1f}% | "
              f"{100 * r['gap']:.1f} | {r['test_loss']:.3f} |")
    print(f"total {seconds:.0f} s")
    return results


def plot(runs, args):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    epochs = np.arange(1, args.epochs + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, r) in enumerate(runs.items()):
        c = colors[i % len(colors)]
        axes[0].plot(epochs, 100 * np.asarray(r["train_acc_curve"]), color=c, ls="--")
        axes[0].plot(epochs, 100 * np.asarray(r["test_acc_curve"]), color=c, label=name)
        axes[1].plot(epochs, 100 * (np.asarray(r["train_acc_curve"]) -
                                    np.asarray(r["test_acc_curve"])), color=c, label=name)
    axes[0].set(xlabel="epoch", ylabel="accuracy (%)",
                title="held-out (solid) and training (dashed) accuracy")
    axes[1].set(xlabel="epoch", ylabel="train - held-out accuracy (points)",
                title="generalisation gap")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    names = list(runs)
    x = np.arange(len(names))
    train = [100 * runs[n]["train_acc"] for n in names]
    test = [100 * runs[n]["test_acc"] for n in names]
    ax.bar(x - 0.2, train, 0.4, label="training")
    bars = ax.bar(x + 0.2, test, 0.4, label="held-out")
    for b, n in zip(bars, names):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.5,
                f"{100 * runs[n]['gap']:.1f}", ha="center", fontsize=8)
    ax.set_xticks(x, [n.replace(" ", "\n") for n in names], fontsize=8)
    ax.set_ylim(max(0, min(test) - 15), 104)
    ax.set(ylabel="final accuracy (%)", title="final accuracy (numbers: the gap)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()

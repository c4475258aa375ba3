"""Transfer learning: reuse a trunk trained on digits 0-4 to learn digits 5-9 from few labels.

A small CNN is first trained on the digits 0-4 (the "source" task, with plenty of
labels, augmented with random shifts). Its convolutional trunk has learned strokes,
curves and corners that the digits 5-9 are made of too. For the "target" task, 5-9 with
only a few labelled images per class, four strategies are compared, each with a new
5-way head:

- scratch:    random weights everywhere, everything trained;
- head only:  the pretrained trunk frozen (feature extraction), only the head trained;
- top + head: the first convolution frozen, the second and the head fine-tuned;
- fine-tune:  start from the pretrained trunk, train everything.

The course notes' rule of thumb, measured: the less target data you have, the more the
pretrained trunk helps and the more of it you can freeze; with enough data the
strategies meet, fine-tuning everything ahead by a hair, and training from scratch
catches up last. Each setting is repeated on different draws of the labelled images;
every strategy sees the same draws, so the right panel shows the paired gain over
scratch. (On these small digits a random convolutional trunk is already a fair feature
extractor, so the gains are a few points, not tens.)

    python examples/transfer_learning.py           # two to three minutes on a CPU
"""
from __future__ import annotations

import numpy as np

import minidl as md
from minidl import optim
from minidl.data import DataLoader, TensorDataset
from minidl.data import transforms as T
from minidl.nn import functional as F
from minidl.utils import fit

from _common_B import (Outputs, SmallCNN, config, digits, make_parser, parse,
                       per_class_subset, progress, pyplot, save_figure, setup, write_json)

NAME = "transfer_learning"
SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
STRATEGIES = ("scratch", "head only", "top + head", "fine-tune")


def target_model(strategy: str, pretrained: SmallCNN, width: int) -> SmallCNN:
    """A 5-way model for the target task, initialised and frozen as ``strategy`` says."""
    model = SmallCNN(num_classes=len(TARGET), width=width, size=16)
    if strategy == "scratch":
        return model
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("head.")}
    model.load_state_dict(state, strict=False)          # the trunk; the head stays new
    if strategy == "head only":
        model.features.requires_grad_(False)
    elif strategy == "top + head":
        model.features[0].requires_grad_(False)          # the first convolution
    return model


def train_steps(model, images, labels, steps, batch_size, lr, rng, device):
    """``steps`` Adam steps on random batches of the few labelled images."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optim.Adam(trainable, lr=lr)
    model.train()
    n = len(images)
    for _ in range(steps):
        idx = rng.choice(n, size=min(batch_size, n), replace=False)
        loss = F.cross_entropy(model(md.tensor(images[idx], device=device)),
                               md.tensor(labels[idx], device=device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def trunk_change(model, pretrained) -> dict:
    """Largest absolute change of each trunk parameter from its pretrained value: zero
    exactly where the strategy froze it."""
    before = dict(pretrained.features.named_parameters())
    return {name: float(np.abs(p.numpy() - before[name].numpy()).max())
            for name, p in model.features.named_parameters()}


@md.no_grad()
def accuracy(model, images, labels, device) -> float:
    model.eval()
    pred = model(md.tensor(images, device=device)).numpy().argmax(axis=1)
    return float((pred == labels).mean())


def plot(path, sizes, table, args, source_acc):
    """Accuracy per strategy, and each strategy's gain over scratch on the same draws."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    xs = [s if s is not None else args.full_label for s in sizes]
    for k, strategy in enumerate(STRATEGIES):
        rows = [table[str(s)] for s in sizes]
        means = [100 * r[strategy]["mean"] for r in rows]
        stds = [100 * r[strategy]["std"] for r in rows]
        axes[0].errorbar(xs, means, yerr=stds, marker="o", capsize=3, c=f"C{k}",
                         label=strategy)
        if strategy != "scratch":
            gains = [100 * (np.array(r[strategy]["runs"]) - np.array(r["scratch"]["runs"]))
                     for r in rows]
            axes[1].errorbar(xs, [g.mean() for g in gains], yerr=[g.std() for g in gains],
                             marker="o", capsize=3, c=f"C{k}", label=strategy)
    axes[1].axhline(0, c="C0", lw=1.5, label="scratch")
    axes[0].set_ylabel("test accuracy on 5-9 (%)")
    axes[0].set_title(f"trunk pretrained on 0-4 (source test accuracy "
                      f"{100 * source_acc:.1f}%)", fontsize=10)
    axes[1].set_ylabel("gain over scratch, same labelled images (points)")
    axes[1].set_title("paired difference to training from scratch", fontsize=10)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([str(s) if s is not None else "all" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("labelled images per class of the target digits 5-9")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    parser = make_parser(__doc__.splitlines()[0], epochs=15, quick_epochs=3,
                         epochs_help="epochs of pretraining on the digits 0-4")
    parser.add_argument("--labels", default="1,3,10,30,all",
                        help="labelled images per target class to try ('all' = every one)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="draws of the labelled images per setting")
    parser.add_argument("--steps", type=int, default=150,
                        help="optimizer steps of each target run (the same for every size)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv")
    parser.add_argument("--pretrain-shift", type=int, default=2,
                        help="random shift (pixels) augmenting the pretraining images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    args = parse(parser, argv, quick=dict(labels="2", repeats=3, steps=40, width=8))
    try:
        sizes = [None if s.strip() == "all" else int(s) for s in args.labels.split(",")]
    except ValueError:
        parser.error(f"--labels must be numbers or 'all' separated by commas, got "
                     f"{args.labels!r}")
    if any(s is not None and s < 1 for s in sizes):
        parser.error(f"--labels must be positive, got {args.labels!r}")
    setup(args)
    out = Outputs(NAME, args.out)

    x_train, y_train = digits(16, train=True)
    x_test, y_test = digits(16, train=False)
    src_tr, src_te = np.isin(y_train, SOURCE), np.isin(y_test, SOURCE)
    tgt_tr, tgt_te = np.isin(y_train, TARGET), np.isin(y_test, TARGET)
    x_tgt, y_tgt = x_train[tgt_tr], y_train[tgt_tr] - TARGET[0]
    x_tgt_test, y_tgt_test = x_test[tgt_te], y_test[tgt_te] - TARGET[0]
    args.full_label = int(np.bincount(y_tgt).min())

    print(f"pretraining on {int(src_tr.sum())} images of the digits 0-4")
    pretrained = SmallCNN(num_classes=len(SOURCE), width=args.width, size=16)
    shift = T.RandomCrop(16, padding=args.pretrain_shift) if args.pretrain_shift else None
    loader = DataLoader(TensorDataset(x_train[src_tr], y_train[src_tr]),
                        batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=args.device, batch_transform=shift)
    val = DataLoader(TensorDataset(x_test[src_te], y_test[src_te]), batch_size=512,
                     device=args.device)
    history = fit(pretrained, F.cross_entropy, optim.Adam(pretrained.parameters(), lr=args.lr),
                  loader, val, epochs=args.epochs, device=args.device)
    source_acc = history["val_acc"][-1]

    runs = [(s, r, strategy) for s in sizes for r in range(args.repeats)
            for strategy in STRATEGIES]
    scores, weight_change = {}, {}
    for size, repeat, strategy in progress(runs, desc="target runs"):
        # The same labelled images and the same head init for every strategy of a draw.
        rng = np.random.default_rng(1000 * args.seed + 10 * repeat + (size or 0))
        idx = per_class_subset(y_tgt, range(len(TARGET)), size, rng)
        md.manual_seed(args.seed + repeat)
        model = target_model(strategy, pretrained, args.width).to(args.device)
        train_steps(model, x_tgt[idx], y_tgt[idx], args.steps, args.batch_size, args.lr,
                    np.random.default_rng(repeat), args.device)
        acc = accuracy(model, x_tgt_test, y_tgt_test, args.device)
        scores.setdefault(str(size), {}).setdefault(strategy, []).append(acc)
        if strategy != "scratch":   # what training moved, for the last draw of each
            weight_change[strategy] = trunk_change(model, pretrained)

    table = {}
    for s, row in scores.items():
        table[s] = {}
        for k, v in row.items():
            # paired with scratch: the same labelled images and the same draw of batches
            gain = np.array(v) - np.array(row["scratch"])
            table[s][k] = {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": v,
                           "gain_over_scratch": float(gain.mean()),
                           "gain_over_scratch_std": float(gain.std())}
    plot(out.figure(), sizes, table, args, source_acc)
    results = {"config": config(args), "source_test_acc": source_acc,
               "source_history": history.to_dict(),
               "target_train_pool": int(len(y_tgt)), "target_test_images": int(len(y_tgt_test)),
               "labels_per_class": [s if s is not None else "all" for s in sizes],
               "target_test_acc": table,
               "best_strategy": {s: max(row, key=lambda k: row[k]["mean"])
                                 for s, row in table.items()},
               "trunk_weight_change": weight_change}
    write_json(out.json, results)

    print(f"\nsource task (0-4) test accuracy: {100 * source_acc:.1f}%")
    print(f"target task (5-9) test accuracy, mean of {args.repeats} draws "
          f"({len(y_tgt_test)} test images):")
    print(f"{'labels/class':<14}" + "".join(f"{s:>13}" for s in STRATEGIES))
    for s in sizes:
        row = table[str(s)]
        best = results["best_strategy"][str(s)]
        label = str(s) if s is not None else f"all (~{len(y_tgt) // len(TARGET)})"
        print(f"{label:<14}" + "".join(
            f"{100 * row[k]['mean']:>11.1f}%{'*' if k == best else ' '}" for k in STRATEGIES))
    print("(* best per row)")
    print("gain over scratch on the same labelled images (points, mean +- std):")
    for s in sizes:
        row = table[str(s)]
        label = str(s) if s is not None else "all"
        cells = [f"{100 * row[k]['gain_over_scratch']:+.1f} +- "
                 f"{100 * row[k]['gain_over_scratch_std']:.1f}" for k in STRATEGIES[1:]]
        print(f"{label:<14}{'':>13}" + "".join(f"{c:>13}" for c in cells))
    return results


if __name__ == "__main__":
    main()

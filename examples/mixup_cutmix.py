"""MixUp and CutMix: train on blends of two images, with labels blended in the same share.

MixUp (Zhang et al. 2018) draws lam ~ Beta(alpha, alpha) and trains on
x = lam x_a + (1 - lam) x_b with the soft label lam y_a + (1 - lam) y_b. CutMix (Yun et
al. 2019) pastes a box of x_b into x_a and weighs the labels by the pixel share of each.
The loss is the cross-entropy against the soft label, which is exactly
lam CE(logits, y_a) + (1 - lam) CE(logits, y_b) (the script checks it on a real batch).
Neither image nor label is ever "clean", so the network cannot simply memorise a small
training set: the gap between training and test accuracy narrows. The price shows in the
confidence: the plain model is over-confident on the clean test digits (its mean top
probability is above its accuracy), the mixed-trained ones under-confident (below it), so
the calibration error (ECE) does not improve even where the NLL does.

The script trains the same small CNN on a small subset of the embedded digits (16x16),
plain, with MixUp and with CutMix, on several subsets (``--repeats``), and compares them.

    python examples/mixup_cutmix.py               # about a minute on a CPU
"""
from __future__ import annotations

import numpy as np

import minidl as md
from minidl import optim
from minidl.data import DataLoader, TensorDataset
from minidl.data import transforms as T
from minidl.nn import functional as F
from minidl.utils import fit

from _common_B import (Outputs, SmallCNN, config, digits, expected_calibration_error,
                       make_parser, nll, parse, pyplot, save_figure, setup, softmax_np,
                       write_json)

NAME = "mixup_cutmix"
METHODS = ("plain", "mixup", "cutmix")


class MixingLoader:
    """Wraps a loader of (x, labels) batches and yields (mixed x, soft labels)."""

    def __init__(self, loader, mix) -> None:
        self.loader, self.mix = loader, mix

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield self.mix(x, y)


def make_mix(method: str, args):
    if method == "mixup":
        return T.MixUp(alpha=args.mixup_alpha, num_classes=10)
    if method == "cutmix":
        return T.CutMix(alpha=args.cutmix_alpha, num_classes=10)
    return None


def mixing_weight(mix, params, shape) -> float:
    """The share of the first image in a mixed batch: lam for MixUp, the exact pixel share
    outside the pasted box for CutMix."""
    if isinstance(mix, T.CutMix):
        _, _, bh, bw = params["box"]
        return 1.0 - bh * bw / float(shape[2] * shape[3])
    return float(params["lam"])


def soft_label_identity(model, mix, x: np.ndarray, y: np.ndarray, device) -> dict:
    """Cross-entropy against the mixed soft labels vs lam CE(y_a) + (1 - lam) CE(y_b)."""
    params = mix.sample_params(x.shape, np.random.default_rng(0))
    mixed, soft = mix.apply(x, y, params)
    lam = mixing_weight(mix, params, x.shape)
    y_b = y[np.asarray(params["perm"])]
    with md.no_grad():
        logits = model(md.tensor(mixed, device=device))
        soft_ce = F.cross_entropy(logits, md.tensor(soft, device=device)).item()
        hard_ce = lam * F.cross_entropy(logits, md.tensor(y, device=device)).item() + \
            (1 - lam) * F.cross_entropy(logits, md.tensor(y_b, device=device)).item()
    return {"lam": lam, "soft_label_ce": soft_ce, "lam_weighted_hard_ce": hard_ce}


@md.no_grad()
def probabilities(model, images, device, batch=512) -> np.ndarray:
    model.eval()
    logits = [model(md.tensor(images[i:i + batch], device=device)).numpy()
              for i in range(0, len(images), batch)]
    return softmax_np(np.concatenate(logits).astype(np.float64))


def evaluate_run(model, x_train, y_train, x_test, y_test, device) -> dict:
    p_train = probabilities(model, x_train, device)
    p_test = probabilities(model, x_test, device)
    train_acc = float((p_train.argmax(1) == y_train).mean())
    test_acc = float((p_test.argmax(1) == y_test).mean())
    return {"train_acc": train_acc, "test_acc": test_acc, "gap": train_acc - test_acc,
            "train_nll": nll(p_train, y_train), "test_nll": nll(p_test, y_test),
            "test_ece": expected_calibration_error(p_test, y_test),
            "test_confidence": float(p_test.max(1).mean())}


def plot_samples(path, x, y, args):
    """Two digits, their MixUp and CutMix blends, and the soft labels."""
    plt = pyplot()
    rng = np.random.default_rng(args.seed)
    pick = [0, int(np.flatnonzero(y != y[0])[0])]      # two digits of different classes
    x, y = x[pick], y[pick]
    fig, axes = plt.subplots(2, 5, figsize=(9, 4))
    for row, mix in enumerate((T.MixUp(alpha=args.mixup_alpha, num_classes=10),
                               T.CutMix(alpha=args.cutmix_alpha, num_classes=10))):
        pair = x
        for _ in range(100):        # redraw until the blend is visible (30-80% of x_a)
            params = mix.sample_params(pair.shape, rng)
            if 0.3 <= mixing_weight(mix, params, pair.shape) <= 0.8:
                break
        params["perm"] = np.array([1, 0])            # pair the two shown digits
        mixed, soft = mix.apply(pair, y, params)
        panels = [(pair[0, 0], f"x_a: {y[0]}"), (pair[1, 0], f"x_b: {y[1]}"),
                  (mixed[0, 0], f"{mix.name}")]
        for j, (img, title) in enumerate(panels):
            axes[row, j].imshow(img, cmap="gray", vmin=0, vmax=1)
            axes[row, j].set_title(title, fontsize=9)
            axes[row, j].axis("off")
        axes[row, 3].axis("off")
        ax = axes[row, 3]
        ax.text(0.0, 0.5, f"soft label:\n{y[0]}: {soft[0, y[0]]:.2f}\n{y[1]}: "
                          f"{soft[0, y[1]]:.2f}", fontsize=10, va="center")
        axes[row, 4].bar(range(10), soft[0], color="C1")
        axes[row, 4].set_xticks(range(10))
        axes[row, 4].set_ylim(0, 1)
        axes[row, 4].set_title("target for the loss", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_runs(path, histories, finals, spread):
    """Test curves of every run (thin) and the mean train/test accuracy per method."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for c, m in enumerate(METHODS):
        for r, h in enumerate(histories[m]):
            label = m if r == 0 else None
            axes[0].plot(h["epoch"], [100 * a for a in h["val_acc"]], c=f"C{c}", lw=1,
                         alpha=0.8, label=label)
            axes[1].plot(h["epoch"], h["val_loss"], c=f"C{c}", lw=1, alpha=0.8, label=label)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_ylim(50, 100)
    axes[1].set_ylabel("test cross-entropy (NLL)")
    axes[1].set_ylim(0, 1.0)
    for ax in axes[:2]:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    width = 0.38
    pos = np.arange(len(METHODS))
    axes[2].bar(pos - width / 2, [100 * finals[m]["train_acc"] for m in METHODS], width,
                yerr=[100 * spread[m]["train_acc"] for m in METHODS], capsize=3,
                label="train (clean images)")
    axes[2].bar(pos + width / 2, [100 * finals[m]["test_acc"] for m in METHODS], width,
                yerr=[100 * spread[m]["test_acc"] for m in METHODS], capsize=3,
                label="test")
    for p, m in zip(pos, METHODS):
        axes[2].annotate(f"gap {100 * finals[m]['gap']:.1f}",
                         (p, 100 * finals[m]["train_acc"] + 1), ha="center", va="bottom",
                         fontsize=8)
    axes[2].set_xticks(pos)
    axes[2].set_xticklabels(METHODS)
    lo = min(100 * finals[m]["test_acc"] for m in METHODS)
    axes[2].set_ylim(max(0, lo - 10), 108)
    axes[2].set_ylabel("accuracy (%), mean of runs")
    axes[2].legend(loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    parser = make_parser(__doc__.splitlines()[0], epochs=60, quick_epochs=2)
    parser.add_argument("--train-size", type=int, default=150,
                        help="training images (a small set, so the plain model overfits)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per method, each on its own training subset and init")
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv")
    parser.add_argument("--mixup-alpha", type=float, default=0.4)
    parser.add_argument("--cutmix-alpha", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    args = parse(parser, argv, quick=dict(train_size=256, width=8, repeats=1))
    setup(args)
    out = Outputs(NAME, args.out)

    x_all, y_all = digits(16, train=True)
    x_test, y_test = digits(16, train=False)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=512,
                             device=args.device)

    histories, runs, identity = {m: [] for m in METHODS}, {m: [] for m in METHODS}, {}
    for r in range(args.repeats):
        seed = args.seed + r
        keep = np.random.default_rng(seed).permutation(len(x_all))[:args.train_size]
        x_train, y_train = x_all[keep], y_all[keep]
        for method in METHODS:
            md.manual_seed(seed)     # the same initial weights and data order for all three
            model = SmallCNN(num_classes=10, width=args.width, size=16)
            loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                                shuffle=True, seed=seed, device=args.device)
            mix = make_mix(method, args)
            train_loader = MixingLoader(loader, mix) if mix is not None else loader
            print(f"== {method}, run {r + 1}/{args.repeats} ==")
            history = fit(model, F.cross_entropy, optim.Adam(model.parameters(), lr=args.lr),
                          train_loader, test_loader, epochs=args.epochs, device=args.device)
            histories[method].append(history.to_dict())
            runs[method].append(evaluate_run(model, x_train, y_train, x_test, y_test,
                                             args.device))
            if mix is not None and r == 0:
                identity[method] = soft_label_identity(model, mix, x_test[:64],
                                                       y_test[:64], args.device)
    finals = {m: {k: float(np.mean([run[k] for run in runs[m]])) for k in runs[m][0]}
              for m in METHODS}
    spread = {m: {k: float(np.std([run[k] for run in runs[m]])) for k in runs[m][0]}
              for m in METHODS}

    plot_samples(out.figure("_samples"), x_all, y_all, args)
    plot_runs(out.figure(), histories, finals, spread)
    results = {"config": config(args), "train_images": args.train_size,
               "test_images": int(len(x_test)), "final": finals, "final_std": spread,
               "runs": runs, "soft_label_identity": identity, "histories": histories}
    write_json(out.json, results)

    print(f"\nmean of {args.repeats} runs ({args.train_size} training images each, "
          f"{len(x_test)} test images):")
    print(f"{'':<8}{'train acc':>10}{'test acc':>10}{'gap':>8}{'test NLL':>10}"
          f"{'confidence':>12}{'ECE':>8}")
    for m in METHODS:
        f = finals[m]
        print(f"{m:<8}{100 * f['train_acc']:>9.1f}%{100 * f['test_acc']:>9.1f}%"
              f"{100 * f['gap']:>7.1f}%{f['test_nll']:>10.3f}"
              f"{100 * f['test_confidence']:>11.1f}%{f['test_ece']:>8.3f}")
    for m, v in identity.items():
        print(f"{m}: CE(soft labels) = {v['soft_label_ce']:.6f}, lam CE(y_a) + (1 - lam) "
              f"CE(y_b) = {v['lam_weighted_hard_ce']:.6f} (lam = {v['lam']:.3f})")
    return results


if __name__ == "__main__":
    main()

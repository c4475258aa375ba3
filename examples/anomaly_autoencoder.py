"""Anomaly detection with a convolutional autoencoder: rebuild what you know, flag the rest.

The autoencoder (``models.conv_autoencoder``) squeezes each 8x8 digit through a small code
(8 channels of 2x2 = 32 numbers for 64 pixels) and rebuilds it. It is trained only on the
"normal" digit classes (0-4 by default), so it learns to rebuild those shapes and nothing
else: on a digit of another class the reconstruction error is large. That error is the
anomaly score; the ROC AUC over the held-out digits measures how well it separates the
unseen classes from the normal ones (0.5 is chance, 1.0 perfect). The code must be small
enough that the network cannot simply copy any input: that bottleneck is the whole trick.

    python examples/anomaly_autoencoder.py                 # about 20 seconds on a CPU
    python examples/anomaly_autoencoder.py --normal 0      # one normal class
"""
from __future__ import annotations

import numpy as np

import minidl as md
from minidl import models, optim
from minidl.data import DataLoader, TensorDataset
from minidl.nn import functional as F
from minidl.utils import fit

from _common_B import (Outputs, config, digits, make_parser, pyplot, roc_auc, roc_curve,
                       save_figure, setup, write_json)

NAME = "anomaly_autoencoder"


def parse_args(argv=None):
    parser = make_parser(__doc__.splitlines()[0], epochs=30, quick_epochs=5)
    parser.add_argument("--normal", default="0,1,2,3,4",
                        help="comma-separated digit classes the autoencoder is trained on")
    parser.add_argument("--size", type=int, default=8,
                        help="image side (8 is the data's own resolution; a multiple of 4)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv")
    parser.add_argument("--latent", type=int, default=8, help="channels of the code")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    args = parser.parse_args(argv)
    try:
        args.normal = sorted({int(c) for c in args.normal.split(",") if c.strip()})
    except ValueError:
        parser.error(f"--normal must be digits separated by commas, got {args.normal!r}")
    if not args.normal or any(not 0 <= c <= 9 for c in args.normal) or len(args.normal) == 10:
        parser.error(f"--normal must name between 1 and 9 of the classes 0-9, got "
                     f"{args.normal}")
    if args.size % 4:
        parser.error(f"--size must be a multiple of 4 (two stride-2 stages), got {args.size}")
    return args


@md.no_grad()
def scores_and_reconstructions(model, images, device, batch_size=256):
    """Per-sample mean squared reconstruction error (N,) and the reconstructions."""
    model.eval()
    scores, recons = [], []
    for i in range(0, len(images), batch_size):
        x = md.tensor(images[i:i + batch_size], device=device)
        x_hat = model(x)
        diff = x_hat - x
        scores.append((diff * diff).mean(dim=(1, 2, 3)).numpy())
        recons.append(x_hat.numpy())
    return np.concatenate(scores), np.concatenate(recons)


def plot_scores(path, fpr, tpr, auc, scores, anomalous, labels, per_class_auc, normal):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    ax = axes[0]
    ax.plot(fpr, tpr, lw=2, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set_xlabel("false positive rate (normal flagged)")
    ax.set_ylabel("true positive rate (anomaly flagged)")
    ax.set_title("ROC of the reconstruction error")
    ax.legend(loc="lower right")
    ax = axes[1]
    bins = np.linspace(0, np.percentile(scores, 99.5), 40)
    ax.hist(scores[~anomalous], bins=bins, alpha=0.6, density=True,
            label=f"normal {','.join(map(str, normal))}")
    ax.hist(scores[anomalous], bins=bins, alpha=0.6, density=True, label="other digits")
    ax.set_xlabel("reconstruction MSE (anomaly score)")
    ax.set_ylabel("density")
    ax.set_title("score distributions (test set)")
    ax.legend()
    ax = axes[2]
    classes = sorted(per_class_auc)
    ax.bar([str(c) for c in classes], [per_class_auc[c] for c in classes], color="C1")
    ax.axhline(0.5, ls="--", c="grey", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("anomalous digit")
    ax.set_ylabel("AUC vs the normal digits")
    ax.set_title("which unseen digits stand out")
    fig.tight_layout()
    save_figure(fig, path)


def plot_maps(path, images, recons, labels, scores, normal):
    """One column per digit 0-9: input, reconstruction, squared-error map."""
    plt = pyplot()
    picks = [int(np.flatnonzero(labels == d)[0]) for d in range(10) if (labels == d).any()]
    fig, axes = plt.subplots(3, len(picks), figsize=(1.3 * len(picks), 4.3))
    vmax = max(float(((recons[picks] - images[picks]) ** 2).max()), 1e-6)
    for j, i in enumerate(picks):
        err = ((recons[i] - images[i]) ** 2)[0]
        kind = "normal" if labels[i] in normal else "anomaly"
        axes[0, j].imshow(images[i, 0], cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(f"{labels[i]} ({kind})", fontsize=8,
                             color="C0" if kind == "normal" else "C3")
        axes[1, j].imshow(recons[i, 0], cmap="gray", vmin=0, vmax=1)
        axes[2, j].imshow(err, cmap="inferno", vmin=0, vmax=vmax)
        axes[2, j].set_xlabel(f"{scores[i]:.3f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, text in enumerate(("input", "rebuilt", "error")):
        axes[row, 0].set_ylabel(text)
    fig.suptitle("reconstruction error maps (score = mean squared error below each map)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup(args)
    out = Outputs(NAME, args.out)

    x_train, y_train = digits(args.size, train=True)
    x_test, y_test = digits(args.size, train=False)
    normal_train = np.isin(y_train, args.normal)
    normal_test = np.isin(y_test, args.normal)
    x_fit = x_train[normal_train]
    x_val = x_test[normal_test]
    print(f"training on {len(x_fit)} images of the normal digits {args.normal}; testing on "
          f"{len(x_test)} ({int((~normal_test).sum())} anomalies)")

    model = models.conv_autoencoder(in_channels=1, base_width=args.width,
                                    latent_channels=args.latent).to(args.device)
    train_loader = DataLoader(TensorDataset(x_fit, x_fit), batch_size=args.batch_size,
                              shuffle=True, seed=args.seed, device=args.device)
    val_loader = DataLoader(TensorDataset(x_val, x_val), batch_size=256, device=args.device)
    history = fit(model, F.mse_loss, optim.Adam(model.parameters(), lr=args.lr),
                  train_loader, val_loader, epochs=args.epochs, device=args.device,
                  metric=None, monitor="val_loss")

    scores, recons = scores_and_reconstructions(model, x_test, args.device)
    anomalous = ~normal_test
    auc = roc_auc(scores, anomalous)
    fpr, tpr = roc_curve(scores, anomalous)
    per_class_auc = {int(c): roc_auc(scores[normal_test | (y_test == c)],
                                     (y_test == c)[normal_test | (y_test == c)])
                     for c in range(10) if c not in args.normal}
    # An operating point: the threshold that keeps 95% of the normal test digits.
    threshold = float(np.percentile(scores[normal_test], 95))
    flagged = float((scores[anomalous] > threshold).mean())
    mean_score = {int(c): float(scores[y_test == c].mean()) for c in range(10)}

    plot_scores(out.figure(), fpr, tpr, auc, scores, anomalous, y_test, per_class_auc,
                args.normal)
    plot_maps(out.figure("_maps"), x_test, recons, y_test, scores, args.normal)

    results = {
        "config": config(args),
        "train_images": int(len(x_fit)), "test_images": int(len(x_test)),
        "test_anomalies": int(anomalous.sum()),
        "history": history.to_dict(),
        "roc_auc": auc,
        "per_class_auc": per_class_auc,
        "mean_score_per_digit": mean_score,
        "threshold_95pct_normal": threshold,
        "anomalies_flagged_at_threshold": flagged,
        "mean_score_normal": float(scores[normal_test].mean()),
        "mean_score_anomalous": float(scores[anomalous].mean()),
    }
    write_json(out.json, results)
    print(f"ROC AUC (normal {args.normal} vs the other digits): {auc:.3f}")
    print("AUC per anomalous digit: " +
          ", ".join(f"{c}: {a:.3f}" for c, a in per_class_auc.items()))
    print(f"mean score: normal {results['mean_score_normal']:.4f}, anomalous "
          f"{results['mean_score_anomalous']:.4f}; at the threshold that passes 95% of "
          f"normal digits, {100 * flagged:.1f}% of the anomalies are flagged")
    return results


if __name__ == "__main__":
    main()

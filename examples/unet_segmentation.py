"""Semantic segmentation with a small U-Net on SyntheticShapes: a class for every pixel.

Each SyntheticShapes image holds one circle, square or triangle on a noisy background;
its mask marks every pixel 0 (background) or 1 + the shape's class. The U-Net
(``models.unet``, depth 2) encodes the image down to 1/4 of its size, decodes it back,
and concatenates the encoder's maps of each level into the decoder (the skip
connections that bring back where the edges are), ending in 4 logits per pixel. It
trains with the per-pixel cross-entropy. The score is the intersection over union (IoU)
of each class's predicted and true pixels on held-out images, and its mean (mIoU).
Telling the shapes apart is the hard part: finding the foreground comes first.

    python examples/unet_segmentation.py          # about a minute on a CPU
"""
from __future__ import annotations

import numpy as np

import minidl as md
from minidl import models, optim
from minidl.data import DataLoader, SyntheticShapes
from minidl.nn import functional as F
from minidl.utils import fit

from _common_B import (Outputs, config, make_parser, parse, pyplot, save_figure, setup,
                       write_json)

NAME = "unet_segmentation"
CLASSES = ("background",) + SyntheticShapes.classes


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """cm[t, p] = number of pixels of true class t predicted as p."""
    idx = target.reshape(-1).astype(np.int64) * num_classes + pred.reshape(-1)
    return np.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_scores(cm: np.ndarray) -> dict:
    """Per-class IoU = TP / (TP + FP + FN), their mean, the pixel accuracy, and the IoU of
    'any shape' vs background (foreground found, whatever its class)."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    per_class = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    fg_tp = cm[1:, 1:].sum()
    fg_union = cm[1:, :].sum() + cm[:, 1:].sum() - fg_tp
    return {"iou": per_class.tolist(), "miou": float(np.nanmean(per_class)),
            "pixel_acc": float(tp.sum() / cm.sum()),
            "foreground_iou": float(fg_tp / max(fg_union, 1))}


@md.no_grad()
def predict_masks(model, loader) -> np.ndarray:
    model.eval()
    return np.concatenate([model(x).numpy().argmax(axis=1) for x, _ in loader])


def plot_predictions(path, images, masks, preds, scores):
    plt = pyplot()
    from matplotlib.colors import ListedColormap
    cmap = ListedColormap(["black", "tab:red", "tab:green", "tab:blue"])
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.45 * n, 4.7))
    for j in range(n):
        axes[0, j].imshow(np.clip(images[j].transpose(1, 2, 0), 0, 1))
        axes[1, j].imshow(masks[j], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
        axes[2, j].imshow(preds[j], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
        inter = ((preds[j] == masks[j]) & (masks[j] > 0)).sum()
        union = ((preds[j] > 0) | (masks[j] > 0)).sum()
        axes[2, j].set_xlabel(f"IoU {inter / max(union, 1):.2f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, text in enumerate(("image", "true mask", "predicted")):
        axes[row, 0].set_ylabel(text)
    iou = ", ".join(f"{c} {v:.2f}" for c, v in zip(CLASSES, scores["iou"]))
    fig.suptitle(f"U-Net on held-out shapes (red circle, green square, blue triangle)\n"
                 f"test IoU: {iou}; mIoU {scores['miou']:.3f}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_curves(path, history, miou_per_epoch):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = history["epoch"]
    axes[0].plot(epochs, history["train_loss"], marker="o", ms=3, label="train")
    axes[0].plot(epochs, history["val_loss"], marker="o", ms=3, label="test")
    axes[0].set_ylabel("per-pixel cross-entropy")
    axes[0].set_yscale("log")
    axes[1].plot(epochs, miou_per_epoch, marker="o", ms=3, c="C2", label="test mIoU")
    axes[1].plot(epochs, history["val_acc"], marker="o", ms=3, c="C4",
                 label="test pixel accuracy")
    axes[1].set_ylim(0, 1.02)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    parser = make_parser(__doc__.splitlines()[0], epochs=8, quick_epochs=2)
    parser.add_argument("--train-size", type=int, default=800, help="training images")
    parser.add_argument("--test-size", type=int, default=200, help="held-out images")
    parser.add_argument("--image-size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--width", type=int, default=8, help="channels of the first level")
    parser.add_argument("--depth", type=int, default=2, help="number of 2x2 poolings")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2,
                        help="Adam learning rate (cosine-annealed to 0)")
    args = parse(parser, argv, quick=dict(train_size=128, test_size=64, width=4,
                                          batch_size=16))
    setup(args)
    out = Outputs(NAME, args.out)

    # Different seeds: the test shapes are new draws, not copies of training images.
    train = SyntheticShapes(args.train_size, size=args.image_size, seed=args.seed,
                            target="mask")
    test = SyntheticShapes(args.test_size, size=args.image_size, seed=args.seed + 10_000,
                           target="mask")
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                              seed=args.seed, device=args.device)
    test_loader = DataLoader(test, batch_size=100, device=args.device)

    model = models.unet(in_channels=3, num_classes=len(CLASSES), depth=args.depth,
                        base_width=args.width)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    miou_per_epoch = []

    def track_miou(history, logs):
        preds = predict_masks(model, test_loader)
        miou_per_epoch.append(iou_scores(confusion(preds, test.masks, len(CLASSES)))["miou"])
        print(f"  test mIoU {miou_per_epoch[-1]:.3f}")
        return False

    history = fit(model, F.cross_entropy, optimizer, train_loader, test_loader,
                  epochs=args.epochs, scheduler=scheduler, device=args.device,
                  callbacks=[track_miou])

    preds = predict_masks(model, test_loader)
    scores = iou_scores(confusion(preds, test.masks, len(CLASSES)))
    # The trivial model that calls every pixel background, for scale.
    trivial = iou_scores(confusion(np.zeros_like(test.masks), test.masks, len(CLASSES)))

    show = np.arange(min(8, len(test)))
    plot_predictions(out.figure(), test.data[show], test.masks[show], preds[show], scores)
    plot_curves(out.figure("_curves"), history, miou_per_epoch)
    results = {
        "config": config(args),
        "params": sum(p.numel() for p in model.parameters()),
        "history": history.to_dict(), "test_miou_per_epoch": miou_per_epoch,
        "classes": list(CLASSES), "test": scores, "all_background_baseline": trivial,
    }
    write_json(out.json, results)
    print("test IoU per class: " + ", ".join(f"{c} {v:.3f}"
                                             for c, v in zip(CLASSES, scores["iou"])))
    print(f"test mIoU {scores['miou']:.3f} (all-background baseline {trivial['miou']:.3f}); "
          f"foreground IoU {scores['foreground_iou']:.3f}; pixel accuracy "
          f"{scores['pixel_acc']:.3f} ({results['params']:,} parameters)")
    return results


if __name__ == "__main__":
    main()

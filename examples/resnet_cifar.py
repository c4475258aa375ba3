"""A CIFAR ResNet (ResNet-20 by default, or any minidl model) with the standard CIFAR
augmentation: random 32x32 crops of the 4-pixel-padded image and horizontal flips.

With ``--data-dir`` pointing at the CIFAR-10 "python version" (the folder that holds
cifar-10-batches-py), it trains on CIFAR-10 with He et al.'s recipe (SGD, momentum 0.9,
weight decay 5e-4, batch 128, lr 0.1 annealed by a cosine). Nothing is downloaded;
without data it trains on SyntheticShapes (coloured circles, squares and triangles,
32x32), so the script runs anywhere in a few minutes.

    python examples/resnet_cifar.py                                  # synthetic shapes
    python examples/resnet_cifar.py --data-dir ~/data --epochs 30 --device cuda
    python examples/resnet_cifar.py --data-dir ~/data --model preact_resnet20

Writes examples/figures/resnet_cifar.png (curves and held-out predictions) and
examples/results/resnet_cifar.json.
"""
from __future__ import annotations

import inspect

import numpy as np

import minidl as md
from minidl import models, nn, optim
from minidl.data import CIFAR10, DataLoader, Subset, SyntheticShapes
from minidl.data import transforms as T
from minidl.utils import evaluate, fit

from _common_A import Timer, example_parser, parse, pyplot, save_figure, save_results

NAME = "resnet_cifar"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def build_parser():
    parser = example_parser(__doc__.split("\n")[0], epochs=4)
    parser.add_argument("--model", default="cifar_resnet20",
                        help="a builder in minidl.models (default cifar_resnet20)")
    parser.add_argument("--width", type=int, default=None,
                        help="base width passed to the builder when it takes one (ResNet-20: "
                             "16; 8 with --quick)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with cifar-10-batches-py; without it SyntheticShapes")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="use only this many training images (default: all; synthetic: "
                             "1024)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 128 on CIFAR-10, 64 on the synthetic set")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak SGD lr (default 0.1 on CIFAR-10, 0.05 synthetic)")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--no-augment", action="store_true", help="train without crops/flips")
    return parser


def load_data(args):
    """(train, test, class names, mean, std, name)."""
    if args.data_dir:
        train, test = CIFAR10(args.data_dir, train=True), CIFAR10(args.data_dir, train=False)
        classes, mean, std, name = CIFAR10.classes, CIFAR_MEAN, CIFAR_STD, "CIFAR-10"
        limit = args.train_limit
    else:
        n_train = 128 if args.quick else (args.train_limit or 1024)
        train = SyntheticShapes(n_train, size=32, seed=args.seed)
        test = SyntheticShapes(64 if args.quick else 512, size=32, seed=args.seed + 1000)
        xs = train.data.reshape(len(train), 3, -1)
        mean = tuple(float(v) for v in xs.mean(axis=(0, 2)))
        std = tuple(float(v) for v in xs.std(axis=(0, 2)))
        classes, name, limit = SyntheticShapes.classes, "SyntheticShapes (32x32)", None
    if args.quick:
        limit = min(limit or 128, 128)
        test = Subset(test, np.arange(min(64, len(test))))
    if limit is not None and limit < len(train):
        order = np.random.default_rng(args.seed).permutation(len(train))[:limit]
        train = Subset(train, np.sort(order))
    return train, test, classes, mean, std, name


def build_model(args, num_classes: int):
    if not hasattr(models, args.model) or not callable(getattr(models, args.model)):
        names = [n for n in models.__all__ if n[0].islower()]
        raise SystemExit(f"resnet_cifar: --model must be a builder in minidl.models, got "
                         f"{args.model!r}; choose from {', '.join(names)}")
    builder = getattr(models, args.model)
    kwargs = {"num_classes": num_classes}
    params = inspect.signature(builder).parameters
    width = args.width or (8 if args.quick else None)
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if width is not None and ("width" in params or takes_kwargs):
        kwargs["width"] = width
    return builder(**kwargs)


def plot(history, images, labels, preds, classes, mean, std, title):
    plt = pyplot()
    fig = plt.figure(figsize=(10, 6.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
    epochs = history["epoch"]
    for ax, (metric, label) in zip(top.subplots(1, 2),
                                   [("loss", "cross-entropy"), ("acc", "accuracy")]):
        ax.plot(epochs, history[f"train_{metric}"], "o-", ms=3, label="train (augmented)")
        ax.plot(epochs, history[f"val_{metric}"], "o-", ms=3, label="held-out")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs)
        if metric == "loss":
            ax.set_yscale("log")     # early held-out losses of a BN net can be large
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    top.suptitle(title)
    m, s = np.asarray(mean).reshape(3, 1, 1), np.asarray(std).reshape(3, 1, 1)
    for i, ax in enumerate(bottom.subplots(2, 8).ravel()):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(np.clip(images[i] * s + m, 0, 1).transpose(1, 2, 0))
        ok = preds[i] == labels[i]
        ax.set_title(classes[preds[i]], fontsize=8, color="black" if ok else "red")
    bottom.suptitle("held-out images with the predicted class (red: wrong)", fontsize=9)
    return fig


def main(argv=None) -> dict:
    args = parse(build_parser(), argv)
    on_cifar = bool(args.data_dir)
    batch_size = args.batch_size or (128 if on_cifar else 64)
    lr = args.lr or (0.1 if on_cifar else 0.05)
    train, test, classes, mean, std, data_name = load_data(args)
    normalize = T.Normalize(mean, std)
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), normalize])
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, seed=args.seed,
                              device=args.device,
                              batch_transform=normalize if args.no_augment else augment)
    test_loader = DataLoader(test, batch_size=256, device=args.device,
                             batch_transform=normalize)
    model = build_model(args, len(classes))
    n_params = sum(p.data.size for p in model.parameters())
    print(f"{args.model} ({n_params:,} parameters) on {data_name}: {len(train)} training, "
          f"{len(test)} held-out images; batch {batch_size}, SGD lr {lr} (cosine), "
          f"{args.epochs} epochs, device {args.device}")
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9,
                          weight_decay=args.weight_decay)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    timer = Timer()
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train_loader, test_loader,
                  epochs=args.epochs, scheduler=scheduler, device=args.device,
                  progress=args.progress)
    seconds = timer.seconds
    scores = evaluate(model, nn.CrossEntropyLoss(), test_loader, device=args.device)

    images, labels = next(iter(test_loader))
    model.eval()
    with md.no_grad():
        preds = model(images[:16]).numpy().argmax(axis=1)
    title = (f"{args.model} on {data_name}: held-out accuracy {100 * scores['acc']:.1f}% "
             f"after {args.epochs} epochs ({seconds:.0f} s)")
    fig = plot(history, images[:16].numpy(), labels[:16].numpy(), preds, classes, mean, std,
               title)
    save_figure(fig, args, f"{NAME}.png")
    results = {"example": NAME, "model": args.model, "data": data_name,
               "n_train": len(train), "n_test": scores["n"], "parameters": n_params,
               "batch_size": batch_size, "lr": lr, "test_accuracy": scores["acc"],
               "test_loss": scores["loss"], "train_seconds": seconds,
               "history": history.to_dict()}
    save_results(results, args, NAME)
    print(f"held-out accuracy {100 * scores['acc']:.2f}% (loss {scores['loss']:.4f}) after "
          f"{args.epochs} epochs in {seconds:.1f} s")
    return results


if __name__ == "__main__":
    main()

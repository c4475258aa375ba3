"""Ensembles and test-time augmentation: average several predictions of each test image.

Two cheap ways to buy accuracy after training:

- an ensemble: train the same small CNN several times from different random starts (and
  data orders); their mistakes differ in part, so the average of their predicted
  probabilities is right more often (and its NLL is never above the members' mean NLL);
- multi-crop test-time augmentation (TTA), as AlexNet's ten-crop test: the members are
  trained on random 12x12 crops of the 16x16 digits (augmentation), so a single test
  crop (the centre one) shows only part of the digit; averaging the predictions of five
  crops (the centre and four shifted by a pixel diagonally) sees more of it: it is right
  more often, if a little less confident (on these digits its NLL goes slightly up).
  Digits are not flipped: a mirrored 2 is not a 2.

Both go through ``minidl.utils.predict(models, x, tta=views)``, which averages softmax
probabilities over the models and the views. The script trains the members on the
embedded digits, then scores every member alone and ensembles of 1..K members, on the
centre crop and on five crops.

    python examples/ensembles_and_tta.py           # about a minute on a CPU
"""
from __future__ import annotations

import itertools

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.data import transforms as T
from minidl.utils import fit, predict

from _common_B import (Outputs, SmallCNN, config, digits, make_parser, nll, parse, pyplot,
                       save_figure, setup, write_json)

NAME = "ensembles_and_tta"


def five_crops(crop: int, shift: int):
    """A TTA view function for ``predict``: the centre ``crop`` x ``crop`` window of a
    batch and 4 windows shifted diagonally by ``shift`` pixels (AlexNet's multi-crop test,
    without its flips)."""
    def views(x):
        top = (x.shape[-2] - crop) // 2
        left = (x.shape[-1] - crop) // 2
        return [x[..., top + dy:top + dy + crop, left + dx:left + dx + crop]
                for dy, dx in ((0, 0), (-shift, -shift), (-shift, shift), (shift, -shift),
                               (shift, shift))]
    return views


def score(probs: np.ndarray, labels: np.ndarray) -> dict:
    return {"acc": float((probs.argmax(axis=1) == labels).mean()), "nll": nll(probs, labels)}


def subset_scores(probs: np.ndarray, n: int, labels: np.ndarray) -> dict:
    """Accuracy and NLL of the average of n members' probabilities, averaged over all
    subsets of n of the K members (probs: (K, N, classes))."""
    rows = [score(probs[list(c)].mean(axis=0), labels)
            for c in itertools.combinations(range(len(probs)), n)]
    return {"acc": float(np.mean([r["acc"] for r in rows])),
            "nll": float(np.mean([r["nll"] for r in rows])), "subsets": len(rows)}


def plot(path, sizes, plain, tta, members, members_tta):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "err", "test error (%)"), (axes[1], "nll", "test NLL")):
        get = (lambda s: 100 * (1 - s["acc"])) if key == "err" else (lambda s: s["nll"])
        ax.plot(sizes, [get(s) for s in plain], marker="o", label="ensemble")
        ax.plot(sizes, [get(s) for s in tta], marker="s", label="ensemble + TTA (5 crops)")
        ax.scatter([1] * len(members), [get(s) for s in members], c="C0", alpha=0.4, s=18,
                   label="single members")
        ax.scatter([1] * len(members_tta), [get(s) for s in members_tta], c="C1", alpha=0.4,
                   s=18, marker="s", label="single members + TTA")
        ax.set_xlabel("models averaged (mean over all subsets of that size)")
        ax.set_ylabel(label)
        ax.set_xticks(sizes)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("averaging predictions: more models (x axis) and more views (squares)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    parser = make_parser(__doc__.splitlines()[0], epochs=20, quick_epochs=3)
    parser.add_argument("--members", type=int, default=5, help="models in the ensemble")
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images (default: all 1438)")
    parser.add_argument("--crop", type=int, default=12,
                        help="side of the random training crops cut from the 16x16 digits")
    parser.add_argument("--tta-shift", type=int, default=1,
                        help="offset of the 4 extra test crops from the centre one")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    args = parse(parser, argv, quick=dict(members=3, width=8, train_size=400))
    if args.members < 2:
        parser.error(f"--members must be at least 2, got {args.members}")
    setup(args)
    out = Outputs(NAME, args.out)

    x_train, y_train = digits(16, train=True)
    x_test, y_test = digits(16, train=False)
    if args.train_size is not None:
        keep = np.random.default_rng(args.seed).permutation(len(x_train))[:args.train_size]
        x_train, y_train = x_train[keep], y_train[keep]
    if not 4 <= args.crop <= 16 or args.crop % 4:
        parser.error(f"--crop must be 4, 8, 12 or 16 (the CNN pools twice), got {args.crop}")
    if 2 * args.tta_shift > 16 - args.crop:
        parser.error(f"--tta-shift {args.tta_shift} moves a {args.crop}-pixel crop out of "
                     f"the 16x16 image")
    # Train on random crops (augmentation); test on the centre crop, or on five crops.
    random_crop = T.RandomCrop(args.crop)
    tta = five_crops(args.crop, args.tta_shift)

    def center_view(x):                   # a single view: no TTA
        return tta(x)[:1]

    x_eval = md.tensor(x_test, device=args.device)

    models, histories = [], []
    for k in range(args.members):
        # Each member: its own initial weights, data order and augmentation draws.
        md.manual_seed(args.seed + k)
        model = SmallCNN(num_classes=10, width=args.width, size=args.crop)
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                            shuffle=True, seed=args.seed + k, device=args.device,
                            batch_transform=random_crop)
        print(f"member {k + 1}/{args.members}")
        optimizer = optim.Adam(model.parameters(), lr=args.lr)
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
        history = fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=args.epochs,
                      scheduler=scheduler, device=args.device)
        models.append(model)
        histories.append(history.to_dict())

    probs = np.stack([predict(m, x_eval, tta=center_view).numpy() for m in models])
    probs_tta = np.stack([predict(m, x_eval, tta=tta).numpy() for m in models])
    members = [score(p, y_test) for p in probs]
    members_tta = [score(p, y_test) for p in probs_tta]
    sizes = list(range(1, args.members + 1))
    # An ensemble of n: the mean over every subset of n members (one subset is noisy).
    ensemble = [subset_scores(probs, n, y_test) for n in sizes]
    ensemble_tta = [subset_scores(probs_tta, n, y_test) for n in sizes]
    # The whole ensemble once more through predict(list of models): the same average.
    full = predict(models, x_eval, tta=tta).numpy()
    full_gap = float(np.abs(full - probs_tta.mean(axis=0)).max())

    def mean(rows, key):
        return float(np.mean([r[key] for r in rows]))

    summary = {
        "member_mean": {"acc": mean(members, "acc"), "nll": mean(members, "nll")},
        "member_mean_tta": {"acc": mean(members_tta, "acc"), "nll": mean(members_tta, "nll")},
        "ensemble": ensemble[-1], "ensemble_tta": ensemble_tta[-1],
    }
    plot(out.figure(), sizes, ensemble, ensemble_tta, members, members_tta)
    results = {"config": config(args), "train_images": int(len(x_train)),
               "test_images": int(len(x_test)), "members": members,
               "members_tta": members_tta, "ensemble_by_size": ensemble,
               "ensemble_tta_by_size": ensemble_tta, "summary": summary,
               "predict_vs_mean_max_abs_diff": full_gap, "histories": histories}
    write_json(out.json, results)

    n = len(y_test)
    print(f"\n{'test set (' + str(n) + ' digits)':<34}{'accuracy':>10}{'errors':>8}{'NLL':>8}")
    rows = [("one model (mean of members)", summary["member_mean"]),
            ("one model + TTA (mean)", summary["member_mean_tta"]),
            (f"ensemble of {args.members}", summary["ensemble"]),
            (f"ensemble of {args.members} + TTA", summary["ensemble_tta"])]
    for name, s in rows:
        print(f"{name:<34}{100 * s['acc']:>9.2f}%{round(n * (1 - s['acc'])):>8}"
              f"{s['nll']:>8.4f}")
    return results


if __name__ == "__main__":
    main()

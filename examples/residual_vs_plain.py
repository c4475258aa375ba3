"""The degradation problem (He et al. 2015): deeper plain nets train worse; residual
nets of the same depth do not.

A CIFAR-style network (a 3x3 stem, three stages of n blocks of two 3x3 convolutions with
BatchNorm, 16/32/64 channels scaled by --width/16, global average pool, linear head;
depth 6n+2) is trained with and without its shortcut connections, at several depths, on
the embedded 8x8 digits. Both kinds have exactly the same layers and parameters; the
plain block just returns relu(F(x)) instead of relu(F(x) + x).

As in the paper, every convolution is followed by BatchNorm, which keeps the forward
signals well scaled; still the deeper plain nets reach a *higher training error* than
the shallow one in the same number of steps: the extra layers make the net harder to
optimise (it is not overfitting, which would lower the training error). With shortcuts
every block starts close to the identity, and depth stops hurting this much.

    python examples/residual_vs_plain.py           # depths 8, 20, 32; 2-3 minutes on a CPU
    python examples/residual_vs_plain.py --depths 8 20 44 56 --epochs 8   # stronger, slower

Writes examples/figures/residual_vs_plain.png and examples/results/residual_vs_plain.json.
"""
from __future__ import annotations

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, Digits, Subset
from minidl.models.resnet import BasicBlock, CifarResNet

from _common_A import (Timer, accuracy_on, example_parser, parse, pyplot, save_figure,
                       save_results, smooth, subset_per_class, train_steps)

NAME = "residual_vs_plain"


class PlainBlock(BasicBlock):
    """BasicBlock without its shortcut: relu(bn2(conv2(relu(bn1(conv1(x)))))).

    Same layers and parameters as BasicBlock (the CIFAR shortcuts have none), so the
    only difference between a plain and a residual net is the ``+ x``.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__(inplanes, planes, stride, downsample=None)

    def forward(self, x):
        return self.relu(self.residual(x))


def make_net(depth: int, residual: bool, width: int) -> CifarResNet:
    return CifarResNet(depth, num_classes=10, in_channels=1, width=width,
                       block=BasicBlock if residual else PlainBlock)


def build_parser():
    parser = example_parser(__doc__.split("\n")[0], epochs=5, quick_epochs=3)
    parser.add_argument("--depths", type=int, nargs="+", default=None,
                        help="network depths, each 6n+2 (default: 8 20 32; 20 with --quick)")
    parser.add_argument("--width", type=int, default=None,
                        help="channels of the first stage (16 in the paper; default 8, 4 with "
                             "--quick)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="SGD lr (momentum 0.9), cosine-annealed over the run")
    parser.add_argument("--train-size", type=int, default=720,
                        help="training images (a class-balanced subset of the 1438)")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def epoch_means(values, epochs: int):
    values = np.asarray(values, dtype=np.float64)
    per = len(values) // epochs if epochs else 0
    return [float(values[i * per:(i + 1) * per].mean()) for i in range(epochs)] if per else []


def main(argv=None) -> dict:
    args = parse(build_parser(), argv)
    if args.depths is None:
        args.depths = [20] if args.quick else [8, 20, 32]
    if args.width is None:
        args.width = 4 if args.quick else 8
    for d in args.depths:
        if d < 8 or (d - 2) % 6:
            raise SystemExit(f"residual_vs_plain: --depths must be 6n+2 (8, 14, 20, ...), "
                             f"got {d}")
    train_full, test = Digits(train=True), Digits(train=False)
    size = 256 if args.quick else args.train_size
    train = Subset(train_full, subset_per_class(train_full.targets, -(-size // 10),
                                                args.seed)[:size])
    if args.quick:
        test = Subset(test, np.arange(100))
    print(f"digits 8x8: {len(train)} training, {len(test)} held-out images; depths "
          f"{args.depths}, width {args.width}, SGD lr {args.lr}, {args.epochs} epochs")
    runs = {}
    timer = Timer()
    for depth in args.depths:
        for residual in (False, True):
            name = f"{'resnet' if residual else 'plain'}-{depth}"
            md.manual_seed(args.seed)          # the same initial weights for both kinds
            model = make_net(depth, residual, args.width).to(args.device)
            opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
            loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                                seed=args.seed, device=args.device)
            schedule = optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs * len(loader))
            run_timer = Timer()
            rec = train_steps(model, nn.CrossEntropyLoss(), opt, loader, args.epochs,
                              desc=name, enabled=args.progress, scheduler=schedule)
            rec["seconds"] = run_timer.seconds
            rec["depth"], rec["residual"] = depth, residual
            rec["parameters"] = int(sum(p.data.size for p in model.parameters()))
            # Training error as He et al. plot it: measured on the training batches as
            # they are trained on (train mode), averaged over each epoch.
            rec["epoch_train_error"] = [1 - a for a in epoch_means(rec["acc"], args.epochs)]
            rec["final_train_error"] = rec["epoch_train_error"][-1]
            rec["train_error_eval_mode"] = 1 - accuracy_on(
                model, DataLoader(train, 256, device=args.device))
            rec["test_error"] = 1 - accuracy_on(model, DataLoader(test, 256,
                                                                  device=args.device))
            runs[name] = rec
            print(f"{name:11s} ({rec['parameters']:,} parameters): training error (last "
                  f"epoch) {100 * rec['final_train_error']:.1f}%, held-out error "
                  f"{100 * rec['test_error']:.1f}%  ({rec['seconds']:.0f} s)", flush=True)
    seconds = timer.seconds
    save_figure(plot(args, runs, len(train)), args, f"{NAME}.png")
    results = {"example": NAME, "n_train": len(train), "n_test": len(test),
               "runs": runs, "seconds": seconds}
    save_results(results, args, NAME)
    print(f"training error over the last epoch ({args.epochs} epochs of "
          f"{len(train)} images):")
    for depth in args.depths:
        p, r = runs[f"plain-{depth}"], runs[f"resnet-{depth}"]
        print(f"  depth {depth:3d}: plain {100 * p['final_train_error']:5.1f}%   residual "
              f"{100 * r['final_train_error']:5.1f}%")
    print(f"total {seconds:.0f} s")
    return results


def plot(args, runs, n_train):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = 0.0
    for ax, residual in zip(axes[:2], (False, True)):
        for i, depth in enumerate(args.depths):
            rec = runs[f"{'resnet' if residual else 'plain'}-{depth}"]
            err = 1 - np.asarray(rec["acc"])
            k = max(1, min(len(err) // 8, 15))
            x = np.arange(1, len(err) + 1) * args.batch_size / n_train
            curve = 100 * smooth(err, k)
            top = max(top, float(curve.max()))
            ax.plot(x[k - 1:], curve, color=colors[i % len(colors)],
                    label=f"{depth} layers: {100 * rec['final_train_error']:.1f}%")
        ax.set(xlabel="epoch", ylabel="training error (%)",
               title=("residual" if residual else "plain") + " nets")
        ax.legend(title="depth: last-epoch training error", fontsize=8, title_fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.set_ylim(0, min(100, top * 1.05 + 1))
    ax = axes[2]
    for residual, marker in ((False, "s--"), (True, "o-")):
        errs = [100 * runs[f"{'resnet' if residual else 'plain'}-{d}"]["final_train_error"]
                for d in args.depths]
        ax.plot(args.depths, errs, marker, label="residual" if residual else "plain")
    ax.set(xlabel="depth (layers)", ylabel="training error, last epoch (%)",
           title=f"after {args.epochs} epochs")
    ax.set_xticks(args.depths)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()

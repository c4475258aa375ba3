"""BatchNorm: the same VGG-style net with and without it, and where BatchNorm bites back.

Three experiments on the embedded 8x8 digits:

1. Trainability. One VGG-style net (six 3x3 convolutions with ReLU, three 2x2 max pools,
   one linear layer; PyTorch's default initialisation) trained with SGD + momentum at a
   learning rate where the plain net struggles, once as is and once with a BatchNorm2d
   after every convolution. The plain net sits on its plateau (loss ~2.30 = ln 10) while
   the BN net trains: BN re-standardises every layer's input, so the signal neither
   shrinks nor explodes with depth and a large step size is safe.
2. Batch size. The BN net trained with batches of 2, 32 and 128 for the same number of
   epochs (SGD, cosine-annealed lr): BN's statistics come from the batch, so batches of
   2 make them noise (a noisier, higher training loss); batches of 128 give few steps,
   and the running averages that eval mode uses lag behind the weights.
3. Train vs eval mode. In training mode BN normalises with the batch's statistics, so a
   sample's prediction depends on its batch-mates; eval mode uses the running averages
   and is deterministic. Evaluating in training mode (forgetting ``model.eval()``) with
   small batches costs accuracy.

    python examples/batchnorm_effect.py            # about 1-2 minutes on a CPU

Writes examples/figures/batchnorm_effect.png and examples/results/batchnorm_effect.json.
"""
from __future__ import annotations

import contextlib

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, Digits, Subset
from minidl.models.vgg import make_layers

from _common_A import (Timer, accuracy_on, example_parser, parse, pyplot, save_figure,
                       save_results, smooth, subset_per_class, train_steps)

NAME = "batchnorm_effect"
CONFIG = [16, 16, "M", 32, 32, "M", 64, 64, "M"]


def build_parser():
    parser = example_parser(__doc__.split("\n")[0], epochs=4, quick_epochs=2)
    parser.add_argument("--lr", type=float, default=0.05,
                        help="SGD learning rate of experiment 1 (momentum 0.9)")
    parser.add_argument("--bs-lr", type=float, default=0.02,
                        help="SGD learning rate of experiment 2 (the same for every batch size, "
                             "cosine-annealed to 0 over the run)")
    parser.add_argument("--bs-epochs", type=int, default=None,
                        help="epochs of each run of experiment 2 (default 2; 1 with --quick)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 32, 128])
    parser.add_argument("--size", type=int, default=8,
                        help="image side in pixels, a multiple of 8 (the digits are 8x8)")
    return parser


def vgg_style(batch_norm: bool, size: int) -> nn.Module:
    """Conv-(BN)-ReLU x6 with three 2x2 max pools, then one linear layer; default init."""
    side = size // 8
    return nn.Sequential(make_layers(CONFIG, batch_norm=batch_norm, in_channels=1),
                         nn.Flatten(), nn.Linear(CONFIG[-2] * side * side, 10))


def load_data(args):
    size = None if args.size == 8 else args.size
    train, test = Digits(train=True, size=size), Digits(train=False, size=size)
    if args.quick:
        train = Subset(train, subset_per_class(train.targets, 32, args.seed))
        test = Subset(test, np.arange(64))
    return train, test


def experiment_trainability(args, train, test) -> dict:
    """Plain vs BN at the same learning rate: per-step training losses."""
    runs = {}
    for bn in (False, True):
        md.manual_seed(args.seed)          # the same draws for both nets' convolutions
        model = vgg_style(bn, args.size).to(args.device)
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        loader = DataLoader(train, batch_size=32, shuffle=True, seed=args.seed,
                            device=args.device)
        label = "with BN" if bn else "plain"
        record = train_steps(model, nn.CrossEntropyLoss(), opt, loader, args.epochs,
                             desc=f"1/3 {label}", enabled=args.progress)
        record["test_acc"] = accuracy_on(model, DataLoader(test, 256, device=args.device))
        record["final_loss"] = float(np.mean(record["loss"][-10:]))
        runs[label] = record
        print(f"[1] {label:8s} lr {args.lr}: training loss over the last 10 steps "
              f"{record['final_loss']:.3f}, held-out accuracy {100 * record['test_acc']:.1f}%"
              + (" (diverged)" if record["diverged"] else ""))
    return runs


def experiment_batch_size(args, train, test) -> "tuple[dict, dict]":
    """The BN net trained with several batch sizes for the same number of epochs; returns
    the records and the trained models."""
    runs, models = {}, {}
    if args.quick:      # a smoke run: batches of 2 over 400 images would take too long
        train = Subset(train, np.arange(64))
    for bs in args.batch_sizes:
        md.manual_seed(args.seed)
        model = vgg_style(True, args.size).to(args.device)
        opt = optim.SGD(model.parameters(), lr=args.bs_lr, momentum=0.9)
        loader = DataLoader(train, batch_size=bs, shuffle=True, seed=args.seed,
                            device=args.device)
        schedule = optim.lr_scheduler.CosineAnnealingLR(opt, args.bs_epochs * len(loader))
        timer = Timer()
        record = train_steps(model, nn.CrossEntropyLoss(), opt, loader, args.bs_epochs,
                             desc=f"2/3 batch {bs}", enabled=args.progress,
                             scheduler=schedule)
        record["seconds"] = timer.seconds
        record["batch_size"] = bs
        record["steps_per_epoch"] = len(loader)
        record["test_acc_eval_mode"] = accuracy_on(model, DataLoader(test, 256,
                                                                     device=args.device))
        record["test_acc_train_mode"] = train_mode_accuracy(model, test, bs, args.device)
        runs[str(bs)] = record
        models[bs] = model
        print(f"[2] batch {bs:4d}: {len(loader) * args.bs_epochs} steps, held-out accuracy "
              f"{100 * record['test_acc_eval_mode']:.1f}% in eval mode, "
              f"{100 * record['test_acc_train_mode']:.1f}% in train mode (batches of {bs})")
    return runs, models


@contextlib.contextmanager
def buffers_kept(model):
    """Restore the running averages afterwards: a train-mode forward pass updates them."""
    saved = [(b, b.data.copy()) for b in model.buffers()]
    was_training = model.training
    try:
        yield model
    finally:
        for b, value in saved:
            b.data[...] = value
        model.train(was_training)


@md.no_grad()
def train_mode_accuracy(model, dataset, batch_size: int, device) -> float:
    """Accuracy with BN in training mode: each batch normalised by its own statistics."""
    correct = 0
    with buffers_kept(model):
        model.train()
        for x, y in DataLoader(dataset, batch_size=batch_size, device=device):
            correct += int((model(x).data.argmax(axis=1) == y.data).sum())
    return correct / len(dataset)


@md.no_grad()
def batch_dependence(model, dataset, device, seed: int) -> dict:
    """How much one sample's logits move when its 7 batch-mates change, per mode."""
    rng = np.random.default_rng(seed)
    x0, _ = dataset[0]
    others = [dataset[int(i)][0] for i in rng.choice(np.arange(1, len(dataset)), 14,
                                                     replace=False)]
    batches = [np.stack([x0] + others[:7]), np.stack([x0] + others[7:])]
    change = {}
    with buffers_kept(model):
        for mode in ("train", "eval"):
            model.train(mode == "train")
            first = [model(md.tensor(b, device=device)).numpy()[0] for b in batches]
            change[mode] = float(np.abs(first[0] - first[1]).max())
    return change


def experiment_train_vs_eval(args, model, test) -> dict:
    sizes = [1, 2, 8, 32, len(test)]
    result = {"eval_mode": accuracy_on(model, DataLoader(test, 256, device=args.device)),
              "train_mode": {str(b): train_mode_accuracy(model, test, b, args.device)
                             for b in sizes},
              "logit_change": batch_dependence(model, test, args.device, args.seed)}
    modes = ", ".join(f"batch {b}: {100 * a:.1f}%" for b, a in result["train_mode"].items())
    print(f"[3] held-out accuracy: eval mode {100 * result['eval_mode']:.1f}%; train mode "
          f"{modes}")
    print(f"[3] largest change of one sample's logits when its batch-mates change: "
          f"{result['logit_change']['train']:.3f} in train mode, "
          f"{result['logit_change']['eval']:.3g} in eval mode")
    return result


def plot(args, runs1, runs2, res3):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    k = 5 if not args.quick else 1
    for label, rec in runs1.items():
        loss = np.asarray(rec["loss"])
        steps = np.arange(1, len(loss) + 1)
        line, = ax.plot(steps, loss, alpha=0.25)
        ax.plot(steps[k - 1:], smooth(loss, k), color=line.get_color(),
                label=f"{label}: held-out {100 * rec['test_acc']:.1f}%")
    ax.axhline(np.log(10), color="gray", ls=":", lw=1)
    ax.set(xlabel="step (batch of 32)", ylabel="training loss",
           title=f"same net, SGD lr {args.lr} (momentum 0.9)")
    ax.legend()
    ax.grid(alpha=0.3)

    ax = axes[1]
    for bs, rec in runs2.items():
        loss = np.asarray(rec["loss"])
        kk = max(1, min(len(loss) // 10, 25))
        epochs = np.arange(1, len(loss) + 1) / rec["steps_per_epoch"]
        ax.plot(epochs[kk - 1:], smooth(loss, kk),
                label=f"batch {bs}: held-out {100 * rec['test_acc_eval_mode']:.1f}% "
                      f"(train mode {100 * rec['test_acc_train_mode']:.1f}%)")
    ax.set(xlabel="epoch", ylabel="training loss (smoothed)",
           title=f"BN net, batch size, SGD lr {args.bs_lr}")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[2]
    names = ["eval"] + [f"train\nbatch {b}" for b in res3["train_mode"]]
    values = [res3["eval_mode"]] + list(res3["train_mode"].values())
    bars = ax.bar(range(len(values)), [100 * v for v in values],
                  color=["tab:green"] + ["tab:orange"] * (len(values) - 1))
    for b, v in zip(bars, values):
        ax.text(b.get_x() + b.get_width() / 2, 100 * v + 0.5, f"{100 * v:.1f}", ha="center",
                fontsize=8)
    ax.set_xticks(range(len(values)), names, fontsize=8)
    ax.set_ylim(max(0, 100 * min(values) - 15), 102)
    ax.set(ylabel="held-out accuracy (%)",
           title=f"BN net (batch {res3['trained_with_batch']}) in eval vs train mode")
    fig.tight_layout()
    return fig


def main(argv=None) -> dict:
    args = parse(build_parser(), argv)
    if args.size % 8 or args.size < 8:
        raise SystemExit(f"batchnorm_effect: --size must be a multiple of 8, got {args.size}")
    if args.bs_epochs is None:
        args.bs_epochs = 1 if args.quick else 2
    train, test = load_data(args)
    print(f"digits {args.size}x{args.size}: {len(train)} training, {len(test)} held-out images")
    timer = Timer()
    runs1 = experiment_trainability(args, train, test)
    runs2, models = experiment_batch_size(args, train, test)
    # Experiment 3 looks at the BN net of experiment 2 trained with the middle batch size.
    bs = sorted(args.batch_sizes)[len(args.batch_sizes) // 2]
    res3 = experiment_train_vs_eval(args, models[bs], test)
    res3["trained_with_batch"] = bs
    seconds = timer.seconds
    save_figure(plot(args, runs1, runs2, res3), args, f"{NAME}.png")
    results = {"example": NAME, "n_train": len(train), "n_test": len(test),
               "trainability": runs1, "batch_size": runs2, "train_vs_eval": res3,
               "seconds": seconds}
    save_results(results, args, NAME)
    plain, bn = runs1["plain"], runs1["with BN"]
    print(f"summary: at lr {args.lr} the plain net ends at loss {plain['final_loss']:.3f} "
          f"(held-out {100 * plain['test_acc']:.1f}%), the BN net at {bn['final_loss']:.3f} "
          f"(held-out {100 * bn['test_acc']:.1f}%); {seconds:.0f} s")
    return results


if __name__ == "__main__":
    main()

"""A gallery of every augmentation in minidl.data.transforms, on a photo and on digits.

Each cell shows one transform: on top, a photograph (scikit-learn's sample image of a
Chinese temple, downscaled); below, three handwritten digits (scikit-learn's digits,
resized to 28x28) transformed in ONE batched call, so each digit gets its own random
parameters. MixUp and CutMix mix the photo with the second sample photo (a flower) and
the digits with each other; their titles give the label weights.

    python examples/augmentation_gallery.py [--out examples/figures] [--seed 0]
                                            [--device cpu|cuda]

Needs the optional extras: pip install minidl[examples] (matplotlib, scikit-learn, pillow).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minidl as md  # noqa: E402
from minidl.backend import to_device  # noqa: E402
from minidl.data import Digits  # noqa: E402
from minidl.data import transforms as T  # noqa: E402

PHOTO_H, PHOTO_W, DIGIT = 96, 144, 48          # display sizes in pixels


def load_photo(name):
    """A sample photo as float32 CHW in [0, 1], shrunk by averaging 4x4 pixel blocks
    (a plain bilinear resize would alias), then cut to PHOTO_H x PHOTO_W."""
    from sklearn.datasets import load_sample_image
    img = load_sample_image(name).astype(np.float32) / 255          # (427, 640, 3)
    h, w = img.shape[0] // 4 * 4, img.shape[1] // 4 * 4
    small = img[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))
    return T.CenterCrop((PHOTO_H, PHOTO_W))(np.ascontiguousarray(small.transpose(2, 0, 1)))


def load_digits():
    """Three digits (3, 3, 28, 28): grey, repeated to RGB so colour transforms apply."""
    ds = Digits(train=True, size=28)
    picks = [int(np.flatnonzero(ds.targets == d)[0]) for d in (2, 5, 7)]
    return np.repeat(ds.data[picks], 3, axis=1), ds.targets[picks]


def gallery(photo_size, digit_size, pca):
    """(title, transform for the photo, transform for the digits), in display order."""
    ph, pw = photo_size
    dh, dw = digit_size
    both = [
        ("original", None),
        ("HorizontalFlip", T.RandomHorizontalFlip(p=1.0)),
        ("VerticalFlip", T.RandomVerticalFlip(p=1.0)),
        ("Rotation ±30°", T.RandomRotation(30)),
        ("Affine", T.RandomAffine(10, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10)),
        ("Perspective", T.RandomPerspective(0.5, p=1.0)),
        ("Brightness", T.ColorJitter(brightness=0.6)),
        ("Contrast", T.ColorJitter(contrast=0.8)),
        ("Saturation", T.ColorJitter(saturation=0.9)),
        ("Hue", T.ColorJitter(hue=0.3)),
        ("Grayscale", T.Grayscale(3)),
        ("AutoContrast", T.AutoContrast()),
        ("Equalize", T.Equalize()),
        ("Solarize 0.5", T.Solarize(0.5)),
        ("PCALighting (x4)", pca),
        ("Sharpen x4", T.Sharpen(4.0)),
        ("GaussianNoise 0.1", T.GaussianNoise(0.1)),
        ("RandomErasing", T.RandomErasing(p=1.0, value="random")),
        ("Normalize (rescaled)", T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))),
    ]
    rows = [(title, t, t) for title, t in both]
    sized = [
        ("RandomCrop pad", T.RandomCrop((ph, pw), padding=ph // 6),
         T.RandomCrop((dh, dw), padding=4)),
        ("CenterCrop 60%", T.CenterCrop((ph * 3 // 5, pw * 3 // 5)),
         T.CenterCrop((dh * 3 // 5, dw * 3 // 5))),
        ("RandomResizedCrop", T.RandomResizedCrop((ph, pw), scale=(0.15, 0.5)),
         T.RandomResizedCrop((dh, dw), scale=(0.3, 0.7))),
        ("Resize 50%", T.Resize((ph // 2, pw // 2)), T.Resize((dh // 2, dw // 2))),
        ("GaussianBlur", T.GaussianBlur(9, (2.0, 3.0)), T.GaussianBlur(5, (1.0, 1.5))),
        ("Cutout", T.Cutout(ph // 2), T.Cutout(dh // 2)),
        ("crop+flip+jitter", T.Compose([T.RandomCrop((ph, pw), padding=ph // 8),
                                        T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4,
                                                                                0.4, 0.1)]),
         T.Compose([T.RandomCrop((dh, dw), padding=3), T.RandomHorizontalFlip(),
                    T.ColorJitter(0.4, 0.4)])),
    ]
    return rows[:3] + sized[:4] + rows[3:6] + sized[4:6] + rows[6:] + sized[6:]


def to_display(img, normalized=False):
    """CHW host array -> HWC in [0, 1] (a normalised image is rescaled, not clipped)."""
    img = to_device(img, "cpu")
    if normalized:
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-8)
    return np.clip(img, 0, 1).transpose(1, 2, 0)


def cell(photo, digits, normalized=False):
    """One tile: the photo on top, the three digits (enlarged, nearest) below it."""
    canvas = np.ones((PHOTO_H + 4 + DIGIT, PHOTO_W, 3), np.float32)
    photo = T.CenterCrop((PHOTO_H, PHOTO_W))(photo)        # pads a smaller result
    canvas[:PHOTO_H] = to_display(photo, normalized)
    digits = T.CenterCrop((28, 28))(digits)                # pads a smaller result
    big = T.Resize((DIGIT, DIGIT), interpolation="nearest")(digits)
    for k in range(3):
        canvas[PHOTO_H + 4:, k * DIGIT:(k + 1) * DIGIT] = to_display(big[k], normalized)
    return canvas


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join("examples", "figures"),
                    help="folder for augmentation_gallery.png (default examples/figures)")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="where the transforms run (the figure is drawn on the CPU)")
    args = ap.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("augmentation_gallery needs matplotlib: pip install minidl[examples]")

    md.manual_seed(args.seed)
    photo, flower = load_photo("china.jpg"), load_photo("flower.jpg")
    digits, digit_labels = load_digits()
    photo_d, flower_d, digits_d = (to_device(a, args.device) for a in (photo, flower, digits))
    gen = md.backend.generator(args.device)
    # Lighting noise along the photo's own colour axes, exaggerated to be visible.
    pca = T.PCALighting.from_data(photo, alphastd=1.0)
    pca.eigval = pca.eigval * 4

    tiles = []
    for title, photo_t, digit_t in gallery((PHOTO_H, PHOTO_W), (28, 28), pca):
        if photo_t is None:
            out_p, out_d = photo_d, digits_d
        else:
            out_p, out_d = photo_t(photo_d, generator=gen), digit_t(digits_d, generator=gen)
        tiles.append((title, cell(out_p, out_d, normalized=title.startswith("Normalize"))))

    pair = np.stack([photo_d, flower_d])
    for name, mix in (("MixUp", T.MixUp), ("CutMix", T.CutMix)):
        mixer = mix(alpha=1.0, num_classes=2)              # classes: temple, flower
        params = mixer.sample_params(pair.shape, gen)
        params["perm"] = np.array([1, 0])                  # mix the photo with the flower
        mixed, soft = mixer.apply(pair, np.array([0, 1]), params)
        mixed_d, _ = mix(alpha=1.0, num_classes=10)(digits_d, digit_labels, generator=gen)
        w = to_device(soft, "cpu")[0]
        tiles.append((f"{name} {w[0]:.2f}/{w[1]:.2f}", cell(mixed[0], mixed_d)))

    cols = 6
    rows = -(-len(tiles) // cols)
    h, w = tiles[0][1].shape[:2]
    dpi = 100
    fig, axes = plt.subplots(rows, cols, figsize=(cols * w * 1.08 / dpi,
                                                  rows * (h + 22) * 1.05 / dpi), dpi=dpi)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, tile) in zip(axes.ravel(), tiles):
        ax.imshow(tile, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    fig.suptitle("minidl.data.transforms: photo, and 3 digits in one batched call",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "augmentation_gallery.png")
    save_small_png(fig, path, dpi)
    print(f"wrote {path} ({len(tiles)} panels, {os.path.getsize(path) // 1024} KB)")


def save_small_png(fig, path, dpi):
    """Save with a 256-colour palette when Pillow is there: a third of the bytes, and
    the photo still reads well."""
    import io
    try:
        from PIL import Image
    except ImportError:
        fig.savefig(path, dpi=dpi)
        return
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(256).save(path, optimize=True)


if __name__ == "__main__":
    main()

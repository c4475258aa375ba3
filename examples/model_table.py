"""Print a Markdown table of the model zoo: parameters and multiply-accumulates (MACs).

Each model is built, measured by ``minidl.utils.summary`` (one forward pass at batch 1:
224x224 for ImageNet models, 32x32 for CIFAR ones, 28x28 for LeNet-5) and dropped before
the next one. The VGGs take a few seconds each on a CPU.

    python examples/model_table.py                 # the whole zoo
    python examples/model_table.py --only resnet   # the rows whose name contains 'resnet'
"""
import argparse
import sys

from minidl import models
from minidl.utils.summary import model_table

IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)
ZOO = [
    ("lenet5", models.lenet5, (1, 28, 28)),
    ("alexnet", models.alexnet, IMAGENET),
    ("vgg11", models.vgg11, IMAGENET),
    ("vgg11_bn", models.vgg11_bn, IMAGENET),
    ("vgg13", models.vgg13, IMAGENET),
    ("vgg16", models.vgg16, IMAGENET),
    ("vgg16_bn", models.vgg16_bn, IMAGENET),
    ("vgg19", models.vgg19, IMAGENET),
    ("googlenet (no aux)", lambda: models.googlenet(aux_logits=False), IMAGENET),
    ("resnet18", models.resnet18, IMAGENET),
    ("resnet34", models.resnet34, IMAGENET),
    ("resnet50", models.resnet50, IMAGENET),
    ("resnet101", models.resnet101, IMAGENET),
    ("resnet152", models.resnet152, IMAGENET),
    ("preact_resnet18", models.preact_resnet18, IMAGENET),
    ("se_resnet18", models.se_resnet18, IMAGENET),
    ("se_resnet50", models.se_resnet50, IMAGENET),
    ("densenet121", models.densenet121, IMAGENET),
    ("densenet169", models.densenet169, IMAGENET),
    ("squeezenet1_0", models.squeezenet1_0, IMAGENET),
    ("squeezenet1_1", models.squeezenet1_1, IMAGENET),
    ("cifar_resnet20", models.cifar_resnet20, CIFAR),
    ("cifar_resnet56", models.cifar_resnet56, CIFAR),
    ("cifar_resnet110", models.cifar_resnet110, CIFAR),
    ("preact_resnet110 (CIFAR)", models.preact_resnet110, CIFAR),
    ("densenet_bc_cifar (k=12, depth 100)", models.densenet_bc_cifar, CIFAR),
    ("unet (depth 4, width 64, 1 -> 2 channels)", models.unet, (1, 256, 256)),
    ("conv_autoencoder", models.conv_autoencoder, (1, 28, 28)),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="keep the models whose name contains this")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where the measuring forward pass runs (default cpu)")
    args = parser.parse_args(argv)
    specs = [(name, (lambda b=build: b().to(args.device)), shape)
             for name, build, shape in ZOO if args.only in name]
    print(model_table(specs, progress=sys.stderr))


if __name__ == "__main__":
    main()

"""The classic image architectures, one file per family, written to be read.

Each file opens with the idea of its architecture and builds the network from that
family's block: lenet (LeNet-5), alexnet, vgg (the VGG block from a configuration list),
googlenet (the Inception module), resnet (BasicBlock, Bottleneck, CIFAR ResNets),
preact_resnet (BN-ReLU-conv blocks), densenet (dense blocks and transitions), senet
(SEBlock, SE-ResNets), squeezenet (Fire modules), unet (encoder-decoder with skips) and
autoencoder (for anomaly detection).

Every builder takes ``num_classes`` and ``in_channels`` where that makes sense; layer
names and parameter counts follow torchvision, so ``minidl.utils.load_torch_state_dict``
loads its weights.

>>> from minidl import models
>>> model = models.resnet18(num_classes=10)
>>> model(md.randn(2, 3, 32, 32)).shape
(2, 10)
"""
from .alexnet import AlexNet, alexnet
from .autoencoder import ConvAutoencoder, conv_autoencoder
from .densenet import DenseBlock, DenseLayer, DenseNet, Transition, densenet121, \
    densenet169, densenet_bc_cifar
from .googlenet import BasicConv2d, GoogLeNet, GoogLeNetOutputs, Inception, InceptionAux, \
    googlenet
from .lenet import LeNet5, lenet5
from .preact_resnet import PreActBlock, PreActBottleneck, PreActCifarResNet, PreActResNet, \
    preact_resnet18, preact_resnet20, preact_resnet34, preact_resnet56, preact_resnet110, \
    preact_resnet164
from .resnet import BasicBlock, Bottleneck, CifarResNet, ResNet, cifar_resnet20, \
    cifar_resnet32, cifar_resnet44, cifar_resnet56, cifar_resnet110, resnet18, resnet34, \
    resnet50, resnet101, resnet152
from .senet import SEBasicBlock, SEBlock, SEBottleneck, se_resnet18, se_resnet50
from .squeezenet import Fire, SqueezeNet, squeezenet1_0, squeezenet1_1
from .unet import UNet, unet
from .vgg import VGG, make_layers, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, \
    vgg19_bn

__all__ = [
    "AlexNet", "alexnet", "ConvAutoencoder", "conv_autoencoder", "DenseBlock", "DenseLayer",
    "DenseNet", "Transition", "densenet121", "densenet169", "densenet_bc_cifar",
    "BasicConv2d", "GoogLeNet", "GoogLeNetOutputs", "Inception", "InceptionAux", "googlenet",
    "LeNet5", "lenet5", "PreActBlock", "PreActBottleneck", "PreActCifarResNet",
    "PreActResNet", "preact_resnet18", "preact_resnet20", "preact_resnet34",
    "preact_resnet56", "preact_resnet110", "preact_resnet164", "BasicBlock", "Bottleneck",
    "CifarResNet", "ResNet", "cifar_resnet20", "cifar_resnet32", "cifar_resnet44",
    "cifar_resnet56", "cifar_resnet110", "resnet18", "resnet34", "resnet50", "resnet101",
    "resnet152", "SEBasicBlock", "SEBlock", "SEBottleneck", "se_resnet18", "se_resnet50",
    "Fire", "SqueezeNet", "squeezenet1_0", "squeezenet1_1", "UNet", "unet", "VGG",
    "make_layers", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn",
]

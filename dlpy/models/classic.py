"""The ImageNet classics, adapted to 28x28 and 32x32 images: AlexNet, VGG-11/13/16/19, GoogLeNet.

On small images each keeps its paper's layers and widths and gives up the early downsampling that
224 pixels need: AlexNet's 11x11 stride-4 conv becomes a 3x3 stride-1 one, GoogLeNet's stem loses
its strides and pools, and VGG skips a max-pool where the map is already down to one pixel.
"""

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from dlpy.errors import DlpyError
from dlpy.models.cnn import CNN
from dlpy.models.convs import NORMS
from dlpy.models.layers import Activation
from dlpy.registry import MODELS
from dlpy.schema import Dropout, Positive, Size

# Simonyan & Zisserman (2015), table 1, configurations A, B, D and E: the widths of the convs in
# the five stages, a 2x2 max-pool after each.
VGG_STAGES = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def vgg_layers(depth: int, width: int, image_size: int) -> list[int | str]:
    """The `cnn` layer list of VGG-`depth`, `width` channels in its first stage (64 in the paper).

    A 28x28 image is 1x1 after four pools (28, 14, 7, 3, 1): the fifth stage then runs without
    its pool, where the paper's would leave nothing.
    """
    layers: list[int | str] = []
    size = image_size
    for stage in VGG_STAGES[depth]:
        layers += [channels * width // 64 or 1 for channels in stage]
        if size >= 2:
            layers.append("M")
            size //= 2
    return layers


@MODELS.register("vgg")
def vgg(
    in_channels: Size,
    image_size: Size,
    num_classes: Size,
    depth: Literal[11, 13, 16, 19] = 16,
    width: Size = 64,
    norm: Literal[NORMS] = "batch",
    activation: Activation = "relu",
    fc: Sequence[Size] = (4096, 4096),
    dropout: Dropout = 0.5,
) -> CNN:
    """VGG-11/13/16/19 (Simonyan & Zisserman, 2015): 3x3 convs in 5 stages, 2x2 max-pools, FCs."""
    if depth not in VGG_STAGES:
        raise DlpyError(f"model.depth of VGG must be one of 11, 13, 16, 19, got {depth}")
    layers = vgg_layers(depth, width, image_size)
    # depth counts the weighted layers: the convs and the fc layers, the classifier among them.
    return CNN(
        in_channels,
        image_size,
        num_classes,
        layers=layers,
        norm=norm,
        activation=activation,
        fc=fc,
        dropout=dropout,
    )


def conv_relu(cin: int, cout: int, kernel_size: int, groups: int = 1) -> list[nn.Module]:
    """A same-padded conv with bias, then ReLU: AlexNet has no norm between them."""
    return [nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, groups=groups), nn.ReLU()]


@MODELS.register("alexnet")
class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al., 2012): 5 convs with LRN and overlapping pools, 2 FC + dropout."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Size,
        channels: Sequence[Size] = (96, 256, 384, 384, 256),
        fc: Sequence[Size] = (4096, 4096),
        dropout: Dropout = 0.5,
        lrn: bool = True,
        groups: Literal[1, 2] = 1,
        stem: Literal["small", "imagenet"] = "small",
    ) -> None:
        super().__init__()
        if len(channels) != 5:
            raise DlpyError(f"model.channels must list AlexNet's 5 conv widths, got {channels}")
        c1, c2, c3, c4, c5 = channels
        # Sec. 3.3: b = a / (k + alpha * sum of a^2 over n = 5 maps)^beta, k = 2, alpha = 1e-4,
        # beta = 0.75; torch divides alpha by n, hence 5e-4.
        norm = [nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)] if lrn else []
        # Sec. 3.4: 3x3 pools with stride 2 overlap, which cut the error by 0.3-0.4%.
        pool = nn.MaxPool2d(3, 2)
        if stem == "imagenet":  # 224 -> 55 (torchvision pads 2 where the paper cropped 227)
            first = [nn.Conv2d(in_channels, c1, 11, 4, 2), nn.ReLU()]
        else:  # 32 -> 32: an 11x11 stride-4 conv would leave a 32x32 image 7 pixels wide
            first = conv_relu(in_channels, c1, 3)
        # Sec. 3.2 and fig. 2: `groups=2` is the paper's two GPUs: conv2, conv4 and conv5 see only
        # the maps on their own GPU, conv3 and the fc layers see both.
        self.features = nn.Sequential(
            *first,
            *norm,
            pool,
            *conv_relu(c1, c2, 5, groups=groups),
            *norm,
            pool,
            *conv_relu(c2, c3, 3),
            *conv_relu(c3, c4, 3, groups=groups),
            *conv_relu(c4, c5, 3, groups=groups),
            pool,
        )
        size = image_size if stem == "small" else (image_size - 7) // 4 + 1
        for _ in range(3):
            size = (size - 3) // 2 + 1
        if size < 1:
            raise DlpyError(f"model=alexnet shrinks a {image_size}x{image_size} image to nothing")
        sizes = [c5 * size * size, *fc]
        dense: list[nn.Module] = [nn.Flatten()]
        for size_in, size_out in zip(sizes, sizes[1:], strict=False):
            dense += [nn.Dropout(dropout), nn.Linear(size_in, size_out), nn.ReLU()]
        self.classifier = nn.Sequential(*dense, nn.Linear(sizes[-1], num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


# Szegedy et al. (2015), table 1: each Inception module's 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5
# and pool projection widths; a 3x3 stride-2 max-pool after 3b and after 4e.
GOOGLENET = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def conv_unit(cin: int, cout: int, kernel_size: int, batchnorm: bool) -> nn.Sequential:
    """A conv and ReLU, with batchnorm between them where asked (Ioffe & Szegedy, 2015, added it
    to Inception; GoogLeNet itself had none)."""
    conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=not batchnorm)
    return nn.Sequential(conv, *([nn.BatchNorm2d(cout)] if batchnorm else []), nn.ReLU())


class Inception(nn.Module):
    """GoogLeNet's module (Szegedy et al., 2015, fig. 2b): 1x1, 1x1-3x3, 1x1-5x5 and
    max-pool-1x1 branches side by side, maps concatenated; the 1x1s reduce the channels first."""

    def __init__(self, cin: int, widths: tuple[int, ...], batchnorm: bool) -> None:
        super().__init__()
        c1, r3, c3, r5, c5, proj = widths
        self.branch1 = conv_unit(cin, c1, 1, batchnorm)
        self.branch3 = nn.Sequential(
            conv_unit(cin, r3, 1, batchnorm), conv_unit(r3, c3, 3, batchnorm)
        )
        self.branch5 = nn.Sequential(
            conv_unit(cin, r5, 1, batchnorm), conv_unit(r5, c5, 5, batchnorm)
        )
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_unit(cin, proj, 1, batchnorm))
        self.out_channels = c1 + c3 + c5 + proj

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], 1)


@MODELS.register("googlenet")
class GoogLeNet(nn.Module):
    """GoogLeNet (Szegedy et al., 2015): 9 Inception modules in 3 stages, average pool, dropout."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Size,
        width: Positive = 1.0,
        batchnorm: bool = True,
        dropout: Dropout = 0.4,
    ) -> None:
        super().__init__()

        def scaled(channels: int) -> int:
            return max(1, round(channels * width))

        # The stem of table 1 (7x7/2 conv, pool, 1x1 and 3x3 convs, pool) without its strides and
        # pools, which take 224 pixels to 28 and would take 32 to 2.
        cin = scaled(192)
        layers: list[nn.Module] = [
            conv_unit(in_channels, scaled(64), 3, batchnorm),
            conv_unit(scaled(64), scaled(64), 1, batchnorm),
            conv_unit(scaled(64), cin, 3, batchnorm),
        ]
        for name, widths in GOOGLENET.items():
            if name in ("4a", "5a"):
                layers.append(nn.MaxPool2d(3, 2, 1))  # 32 -> 16 -> 8; 28 -> 14 -> 7
            module = Inception(cin, tuple(scaled(c) for c in widths), batchnorm)
            layers.append(module)
            cin = module.out_channels
        self.features = nn.Sequential(*layers)
        # No auxiliary classifiers: the paper found their effect minor, about 0.5%.
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

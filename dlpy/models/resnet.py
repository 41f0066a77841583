"""ResNets for small images: CIFAR-style v1 and v2 (as in Atienza's ResNet-20/56/110 table) and ResNet-18."""

import torch.nn.functional as F
from torch import nn

from dlpy.errors import DlpyError
from dlpy.registry import MODELS


def conv_bn(cin, cout, kernel_size=3, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


class BasicBlock(nn.Module):
    """v1 (He et al., 2015): conv-bn-relu, conv-bn, add the shortcut, relu."""

    def __init__(self, cin, cout, stride, first=False):
        super().__init__()
        self.conv1, self.conv2 = conv_bn(cin, cout, stride=stride), conv_bn(cout, cout)
        self.shortcut = (
            conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class PreActBottleneck(nn.Module):
    """v2 (He et al., 2016, identity mappings): bn-relu before each of 1x1, 3x3, 1x1 convs."""

    def __init__(self, cin, cout, stride, first=False):
        super().__init__()
        mid = cout // 4
        # The stem already ends in bn-relu, so the network's very first block skips its own.
        self.preact = nn.Identity() if first else nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
        self.conv1 = nn.Conv2d(cin, mid, 1, stride, bias=False)
        self.conv2 = nn.Sequential(
            nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        )
        self.conv3 = nn.Sequential(
            nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, cout, 1, bias=False)
        )
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride, bias=False)
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        return self.conv3(self.conv2(self.conv1(self.preact(x)))) + self.shortcut(x)


@MODELS.register("resnet")
class ResNet(nn.Module):
    """CIFAR-style ResNet: v1 of depth 6n+2 (ResNet-20/56/110) or pre-activation v2 of depth 9n+2."""

    def __init__(
        self, in_channels: int, image_size: int, num_classes: int, depth=20, version=1, width=16
    ):
        super().__init__()
        per_block = {1: 6, 2: 9}.get(version)
        if per_block is None:
            raise DlpyError(f"model.version must be 1 or 2, got {version}")
        if (depth - 2) % per_block:
            raise DlpyError(
                f"model.depth for ResNet v{version} must be {per_block}n+2 (20, 56, 110, ...), got {depth}"
            )
        n, block = (depth - 2) // per_block, BasicBlock if version == 1 else PreActBottleneck
        # v1 stages are width, 2w, 4w channels wide; v2 bottleneck stages output 4w, 8w, 16w.
        widths = (
            [width, 2 * width, 4 * width] if version == 1 else [4 * width, 8 * width, 16 * width]
        )
        self.stem = nn.Sequential(conv_bn(in_channels, width), nn.ReLU())
        blocks, cin = [], width
        for stage, cout in enumerate(widths):
            for i in range(n):
                blocks.append(
                    block(cin, cout, stride=2 if stage and not i else 1, first=not stage and not i)
                )
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            *([] if version == 1 else [nn.BatchNorm2d(cin), nn.ReLU()]),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(cin, num_classes),
        )

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


@MODELS.register("resnet18")
def resnet18(in_channels: int, image_size: int, num_classes: int):
    """torchvision's ResNet-18 for small images: 3x3 stride-1 stem, no max-pool."""
    from torchvision.models import (
        resnet18 as torchvision_resnet18,
    )  # a second to import: only when used

    net = torchvision_resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return net

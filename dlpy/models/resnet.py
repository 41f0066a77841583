"""ResNets: CIFAR-style v1 and v2, and the ImageNet ResNet-18/34/50/101/152 with a small-image stem.

v1 is He et al.'s CIFAR-10 net (Deep Residual Learning, 2016, sec. 4.2), v2 the pre-activation
bottleneck (He et al., Identity Mappings in Deep Residual Networks, 2016); the depths follow
Atienza's ResNet-20/56/110 table (Advanced Deep Learning with Keras, ch. 2). The ImageNet nets are
the same blocks in the four stages of He et al.'s table 1.
"""

from collections.abc import Sequence
from typing import Annotated, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from dlpy.errors import DlpyError
from dlpy.registry import MODELS
from dlpy.schema import Range, Size


def conv_bn(cin: int, cout: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """A conv without bias (the batchnorm's shift replaces it), then batchnorm."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


def projection(cin: int, cout: int, stride: int, batchnorm: bool) -> nn.Module:
    """The shortcut: identity, or a strided 1x1 conv where the block changes the shape."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    if batchnorm:
        return conv_bn(cin, cout, 1, stride)
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """v1 (He et al., 2016): conv-bn-relu, conv-bn, add the shortcut, relu."""

    def __init__(self, cin: int, cout: int, stride: int, first: bool = False) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, cout, stride=stride)
        self.conv2 = conv_bn(cout, cout)
        self.shortcut = projection(cin, cout, stride, batchnorm=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class Bottleneck(nn.Module):
    """v1 bottleneck (He et al., 2016, fig. 5 right): 1x1 down to a quarter, 3x3, 1x1 back up."""

    def __init__(self, cin: int, cout: int, stride: int, first: bool = False) -> None:
        super().__init__()
        mid = cout // 4
        self.conv1 = conv_bn(cin, mid, 1)
        # The stride sits on the 3x3, as in torchvision's ResNet-50 (the paper's first 1x1 would
        # skip three pixels in four); the parameters are the same.
        self.conv2 = conv_bn(mid, mid, 3, stride)
        self.conv3 = conv_bn(mid, cout, 1)
        self.shortcut = projection(cin, cout, stride, batchnorm=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class PreActBottleneck(nn.Module):
    """v2 (He et al., 2016, identity mappings): bn-relu before each of 1x1, 3x3, 1x1 convs."""

    def __init__(self, cin: int, cout: int, stride: int, first: bool = False) -> None:
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
        self.shortcut = projection(cin, cout, stride, batchnorm=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.conv2(self.conv1(self.preact(x)))) + self.shortcut(x)


Block = type[BasicBlock | Bottleneck | PreActBottleneck]


def stages(
    block: Block, cin: int, widths: Sequence[int], blocks: Sequence[int]
) -> tuple[nn.Sequential, int]:
    """The residual blocks, stage by stage (`blocks[s]` of `widths[s]` channels), and their
    output's channels.

    Each stage after the first halves the map in its first block.
    """
    layers = []
    for stage, (cout, count) in enumerate(zip(widths, blocks, strict=True)):
        for i in range(count):
            stride = 2 if stage and not i else 1
            layers.append(block(cin, cout, stride=stride, first=not stage and not i))
            cin = cout
    return nn.Sequential(*layers), cin


@MODELS.register("resnet")
class ResNet(nn.Module):
    """CIFAR-style ResNet: v1 of depth 6n+2 (ResNet-20/56/110), or pre-activation v2 of 9n+2."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Size,
        depth: Annotated[int, Range(ge=8)] = 20,
        version: Literal[1, 2] = 1,
        width: Size = 16,
    ) -> None:
        super().__init__()
        # Weighted layers: the stem conv, 2 (v1) or 3 (v2) convs per block in 3 stages, the fc.
        per_block = {1: 6, 2: 9}.get(version)
        if per_block is None:
            raise DlpyError(f"model.version must be 1 or 2, got {version}")
        if (depth - 2) % per_block:
            raise DlpyError(
                f"model.depth for ResNet v{version} must be {per_block}n+2 "
                f"(20, 56, 110, ...), got {depth}"
            )
        blocks_per_stage = (depth - 2) // per_block
        block = BasicBlock if version == 1 else PreActBottleneck
        # v1 stages are width, 2w, 4w channels wide; v2 bottleneck stages output 4w, 8w, 16w.
        if version == 1:
            widths = [width, 2 * width, 4 * width]
        else:
            widths = [4 * width, 8 * width, 16 * width]
        self.stem = nn.Sequential(conv_bn(in_channels, width), nn.ReLU())
        blocks, cin = stages(block, width, widths, [blocks_per_stage] * 3)
        self.blocks = blocks
        # v2 adds the activations its last block leaves out (pre-activation) before pooling.
        self.head = nn.Sequential(
            *([] if version == 1 else [nn.BatchNorm2d(cin), nn.ReLU()]),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(cin, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))


# He et al. (2016), table 1: the block and the blocks per stage of each ImageNet depth.
IMAGENET_LAYOUTS: dict[int, tuple[Block, list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


@MODELS.register("imagenet_resnet")
class ImageNetResNet(nn.Module):
    """He et al.'s ImageNet ResNet-18/34 (basic blocks) or 50/101/152 (bottlenecks), in 4 stages."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Size,
        depth: Literal[18, 34, 50, 101, 152] = 50,
        width: Size = 64,
        stem: Literal["small", "imagenet"] = "small",
    ) -> None:
        super().__init__()
        if depth not in IMAGENET_LAYOUTS:
            known = ", ".join(map(str, IMAGENET_LAYOUTS))
            raise DlpyError(
                f"model.depth of an ImageNet ResNet must be one of {known}, got {depth}"
            )
        block, blocks = IMAGENET_LAYOUTS[depth]
        # Stages of w, 2w, 4w, 8w channels; a bottleneck's output is 4 times its 3x3's width.
        expansion = 1 if block is BasicBlock else 4
        widths = [expansion * width * 2**stage for stage in range(4)]
        if stem == "imagenet":  # 224 -> 56: a 7x7 stride-2 conv, then a 3x3 stride-2 max-pool
            self.stem = nn.Sequential(
                conv_bn(in_channels, width, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
            )
        else:  # 28 or 32 pixels would be 1x1 by the last stage: a 3x3 stride-1 conv, no pool
            self.stem = nn.Sequential(conv_bn(in_channels, width), nn.ReLU())
        self.blocks, cin = stages(block, width, widths, blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))

"""DenseNet-BC (Huang et al., Densely Connected Convolutional Networks, CVPR 2017) for small images.

Each layer of a dense block sees the concatenated maps of every layer before it and adds `growth`
new ones; BC is its Bottleneck (a 1x1 conv of 4k channels before each 3x3, sec. 3) and its
Compression (a transition keeps a fraction of the channels). The layout is the paper's CIFAR one
that Atienza follows (Advanced Deep Learning with Keras, ch. 2): a 3x3 stem of 2k channels, three
dense blocks at 32, 16 and 8 pixels (28, 14 and 7 for Fashion-MNIST), global average pooling.
"""

from typing import Annotated

import torch
from torch import Tensor, nn

from dlpy.errors import DlpyError
from dlpy.registry import MODELS
from dlpy.schema import Dropout, Range, Size


def bn_relu_conv(cin: int, cout: int, kernel_size: int) -> list[nn.Module]:
    """The paper's composite function H: batchnorm, ReLU, then a conv without bias."""
    conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False)
    return [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), conv]


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k); its k maps join the input's (sec. 3, Bottleneck)."""

    def __init__(self, cin: int, growth: int, dropout: float) -> None:
        super().__init__()
        drop = [nn.Dropout(dropout)] if dropout else []
        self.bottleneck = nn.Sequential(*bn_relu_conv(cin, 4 * growth, 1), *drop)
        self.conv = nn.Sequential(*bn_relu_conv(4 * growth, growth, 3), *drop)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(self.bottleneck(x))], 1)


def transition(cin: int, cout: int, dropout: float) -> nn.Sequential:
    """BN-ReLU-Conv1x1 down to `cout` channels, then a 2x2 average pool halving the map."""
    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*bn_relu_conv(cin, cout, 1), *drop, nn.AvgPool2d(2))


@MODELS.register("densenet_bc")
class DenseNetBC(nn.Module):
    """DenseNet-BC (Huang et al., 2017): depth 6n+4, growth rate k, compression; 3 dense blocks."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Size,
        depth: Annotated[int, Range(ge=10)] = 100,
        growth: Size = 12,
        compression: Annotated[float, Range(gt=0, le=1)] = 0.5,
        dropout: Dropout = 0.0,
    ) -> None:
        super().__init__()
        # Weighted layers: the stem conv, 2 convs per dense layer in 3 blocks, 2 transitions, the
        # fc: 6n + 4 (DenseNet-BC-100 has n = 16 layers per block).
        if (depth - 4) % 6:
            raise DlpyError(f"model.depth for DenseNet-BC must be 6n+4 (40, 100, 250), got {depth}")
        per_block = (depth - 4) // 6
        channels = 2 * growth  # sec. 4: the first conv of DenseNet-BC has 2k output channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(per_block):
                layers.append(DenseLayer(channels, growth, dropout))
                channels += growth
            if block < 2:
                kept = max(
                    1, int(compression * channels)
                )  # theta * m, floored as in the paper's code
                layers.append(transition(channels, kept, dropout))
                channels = kept
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

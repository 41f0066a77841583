"""A convnet from a VGG-style layer list (Simonyan & Zisserman, 2015), then dense layers.

The presets make LeNet-5 (LeCun et al., 1998) of it, VGG13, Chollet's MNIST convnet
(Deep Learning with Python, 5.1) and a separable convnet (Chollet 7.3.1). Its convs can be
standard, separable or depthwise, dilated, and followed by any of the norms of dlpy/models/convs.py.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from dlpy.errors import DlpyError
from dlpy.models.convs import CONVS, NORMS, check_conv_options, make_conv, make_norm
from dlpy.models.layers import Activation, dense_layers, make_activation
from dlpy.registry import MODELS
from dlpy.schema import Count, Dropout, Size


@dataclass(frozen=True)
class ConvBlock:
    """What every conv of the stack shares: its kind and size, the norm and activation after it."""

    kernel_size: int = 3
    padding: int = 1
    dilation: int = 1
    conv: str = "standard"
    norm: str = "none"
    norm_groups: int = 0
    activation: str = "relu"

    def layers(self, cin: int, cout: int) -> list[nn.Module]:
        # A conv followed by a norm needs no bias: the norm's shift replaces it.
        bias = self.norm == "none"
        conv = make_conv(self.conv, cin, cout, self.kernel_size, self.padding, self.dilation, bias)
        norm = make_norm(self.norm, cout, self.norm_groups)
        return [conv, *([norm] if norm else []), make_activation(self.activation)]

    def out_size(self, size: int) -> int:
        """The side of a size x size map after the conv (torch.nn.Conv2d's formula, stride 1)."""
        return size + 2 * self.padding - self.dilation * (self.kernel_size - 1)


def conv_stack(
    in_channels: int,
    image_size: int,
    layers: Sequence[int | str],
    block: ConvBlock,
    conv_dropout: float,
) -> tuple[nn.Sequential, int]:
    """The convs and max-pools of a layer list, and how many features their output flattens to."""
    features = []
    channels = in_channels
    size = image_size
    for layer in layers:
        if layer == "M":
            features.append(nn.MaxPool2d(2))
            size //= 2
            if conv_dropout:
                features.append(nn.Dropout(conv_dropout))
        elif isinstance(layer, int):
            features.extend(block.layers(channels, layer))
            channels = layer
            size = block.out_size(size)
        else:
            raise DlpyError(
                f"model.layers: {layer!r} is neither a channel count nor 'M' (max-pool)"
            )
    if size < 1:
        raise DlpyError(f"model.layers shrink a {image_size}x{image_size} image to nothing")
    return nn.Sequential(*features), channels * size * size


def norm_of(norm: str, batchnorm: bool) -> str:
    """`model.norm`, from `model.batchnorm: true` where a config still says so (the old key)."""
    if not batchnorm:
        return norm
    if norm not in ("none", "batch"):
        raise DlpyError(
            f"model.batchnorm=true contradicts model.norm={norm!r}: give model.norm alone"
        )
    return "batch"


@MODELS.register("cnn")
class CNN(nn.Module):
    """Convs from a VGG-style layer list ([32, M, 64, M]: M is a 2x2 max-pool), then FC layers."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Size,
        layers: Sequence[Size | Literal["M"]] = (32, "M", 64, "M"),
        kernel_size: Size = 3,
        padding: Count = 1,
        dilation: Size = 1,
        conv: Literal[CONVS] = "standard",
        norm: Literal[NORMS] = "none",
        norm_groups: Count = 0,
        batchnorm: bool = False,
        activation: Activation = "relu",
        conv_dropout: Dropout = 0.0,
        fc: Sequence[Size] = (128,),
        dropout: Dropout = 0.0,
    ) -> None:
        super().__init__()
        check_conv_options(conv, norm, dilation, norm_groups)
        norm = norm_of(norm, batchnorm)
        block = ConvBlock(kernel_size, padding, dilation, conv, norm, norm_groups, activation)
        features, flat = conv_stack(in_channels, image_size, layers, block, conv_dropout)
        self.features = features
        sizes = [flat, *fc]
        self.classifier = nn.Sequential(
            nn.Flatten(),
            *dense_layers(sizes, activation, dropout),
            nn.Linear(sizes[-1], num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))

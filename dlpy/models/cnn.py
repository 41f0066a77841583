"""A convnet from a VGG-style layer list (Simonyan & Zisserman, 2015), then dense layers.

The presets make LeNet-5 (LeCun et al., 1998) of it, VGG13, and Chollet's MNIST convnet
(Deep Learning with Python, 5.1).
"""

from collections.abc import Sequence

from torch import Tensor, nn

from dlpy.errors import DlpyError
from dlpy.models.layers import dense_layers, make_activation
from dlpy.registry import MODELS


def conv_stack(
    in_channels: int,
    image_size: int,
    layers: Sequence[int | str],
    kernel_size: int,
    padding: int,
    batchnorm: bool,
    activation: str,
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
            # A conv followed by batchnorm needs no bias: the batchnorm's shift replaces it.
            features.append(
                nn.Conv2d(channels, layer, kernel_size, padding=padding, bias=not batchnorm)
            )
            if batchnorm:
                features.append(nn.BatchNorm2d(layer))
            features.append(make_activation(activation))
            channels = layer
            size = size + 2 * padding - kernel_size + 1
        else:
            raise DlpyError(
                f"model.layers: {layer!r} is neither a channel count nor 'M' (max-pool)"
            )
    if size < 1:
        raise DlpyError(f"model.layers shrink a {image_size}x{image_size} image to nothing")
    return nn.Sequential(*features), channels * size * size


@MODELS.register("cnn")
class CNN(nn.Module):
    """Convs from a VGG-style layer list ([32, M, 64, M]: M is a 2x2 max-pool), then FC layers."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        layers: Sequence[int | str] = (32, "M", 64, "M"),
        kernel_size: int = 3,
        padding: int = 1,
        batchnorm: bool = False,
        activation: str = "relu",
        conv_dropout: float = 0.0,
        fc: Sequence[int] = (128,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features, flat = conv_stack(
            in_channels,
            image_size,
            layers,
            kernel_size,
            padding,
            batchnorm,
            activation,
            conv_dropout,
        )
        self.features = features
        sizes = [flat, *fc]
        self.classifier = nn.Sequential(
            nn.Flatten(),
            *dense_layers(sizes, activation, dropout),
            nn.Linear(sizes[-1], num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))

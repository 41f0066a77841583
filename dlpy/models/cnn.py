from torch import nn

from dlpy.errors import DlpyError
from dlpy.models.layers import make_activation
from dlpy.registry import MODELS


@MODELS.register("cnn")
class CNN(nn.Module):
    """Conv stack from a VGG-style layer list ([32, M, 64, M]: M is a 2x2 max-pool), then FC layers."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        layers=(32, "M", 64, "M"),
        kernel_size=3,
        padding=1,
        batchnorm=False,
        activation="relu",
        conv_dropout=0.0,
        fc=(128,),
        dropout=0.0,
    ):
        super().__init__()
        features, channels, size = [], in_channels, image_size
        for layer in layers:
            if layer == "M":
                features.append(nn.MaxPool2d(2))
                size //= 2
            elif isinstance(layer, int):
                features.append(
                    nn.Conv2d(channels, layer, kernel_size, padding=padding, bias=not batchnorm)
                )
                features += [nn.BatchNorm2d(layer)] if batchnorm else []
                features.append(make_activation(activation))
                channels, size = layer, size + 2 * padding - kernel_size + 1
            else:
                raise DlpyError(
                    f"model.layers: {layer!r} is neither a channel count nor 'M' (max-pool)"
                )
            if conv_dropout and layer == "M":
                features.append(nn.Dropout(conv_dropout))
        if size < 1:
            raise DlpyError(f"model.layers shrink a {image_size}x{image_size} image to nothing")
        self.features = nn.Sequential(*features)
        head, width = [nn.Flatten()], channels * size * size
        for hidden in fc:
            head += [nn.Linear(width, hidden), make_activation(activation), nn.Dropout(dropout)]
            width = hidden
        self.classifier = nn.Sequential(*head, nn.Linear(width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))

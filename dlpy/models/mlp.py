from torch import nn

from dlpy.models import activation as make_activation
from dlpy.registry import MODELS


@MODELS.register("mlp")
class MLP(nn.Sequential):
    """Multi-layer perceptron on flattened inputs: hidden sizes, activation, dropout."""

    def __init__(self, in_channels, image_size, num_classes, hidden=(256, 256), activation="relu", dropout=0.0):
        layers, width = [nn.Flatten()], in_channels * image_size * image_size
        for size in hidden:
            layers += [nn.Linear(width, size), make_activation(activation), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)



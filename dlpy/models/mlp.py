from torch import nn

from dlpy.errors import DlpyError
from dlpy.models.layers import make_activation
from dlpy.registry import MODELS


@MODELS.register("mlp")
class MLP(nn.Sequential):
    """Multi-layer perceptron on flattened inputs (images, multi-hot rows, table rows): hidden sizes, activation, dropout."""

    def __init__(
        self,
        in_channels=None,
        image_size=None,
        num_classes=10,
        hidden=(256, 256),
        activation="relu",
        dropout=0.0,
        num_features=None,
    ):
        width = num_features or (
            in_channels * image_size * image_size if in_channels and image_size else None
        )
        if not width:
            raise DlpyError(
                "model.num_features: the MLP needs its input width (dataset.num_features, "
                "or dataset.channels and dataset.image_size)"
            )
        layers = [nn.Flatten()]
        for size in hidden:
            layers += [nn.Linear(width, size), make_activation(activation), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)

"""The multi-layer perceptron (Atienza ch. 1): dense hidden layers, then a linear head."""

from collections.abc import Sequence

from torch import nn

from dlpy.errors import DlpyError
from dlpy.models.layers import Activation, dense_layers
from dlpy.registry import MODELS
from dlpy.schema import Dropout, Size


@MODELS.register("mlp")
class MLP(nn.Sequential):
    """Multi-layer perceptron on flattened inputs (images, multi-hot rows, table rows, series
    windows of `sequence_length` steps of `num_features`)."""

    def __init__(
        self,
        in_channels: Size | None = None,
        image_size: Size | None = None,
        num_classes: Size = 10,
        hidden: Sequence[Size] = (256, 256),
        activation: Activation = "relu",
        dropout: Dropout = 0.0,
        num_features: Size | None = None,
        sequence_length: Size | None = None,
    ) -> None:
        width = num_features or (
            in_channels * image_size * image_size if in_channels and image_size else None
        )
        if width and sequence_length:
            # a series' window (N, steps, features) flattened: Chollet's dense baseline (DLwP
            # ch. 10) reads all steps x features at once
            width *= sequence_length
        if not width:
            raise DlpyError(
                "model.num_features: the MLP needs its input width (dataset.num_features, "
                "or dataset.channels and dataset.image_size)"
            )
        sizes = [width, *hidden]
        super().__init__(
            nn.Flatten(),
            *dense_layers(sizes, activation, dropout),
            nn.Linear(sizes[-1], num_classes),
        )

"""Networks of several inputs or outputs, Chollet's "Deep Learning with Python" 7.1 in PyTorch.

`multi_head` is the `cnn` builder's conv stack and dense layers shared by several named heads
(7.1.3, multi-output models), optionally with more inputs joined to the image's features (7.1.2,
multi-input models: `layers.concatenate([encoded_text, encoded_question])`). `siamese` runs two
images through one encoder, a single set of weights (7.1.5, layer weight sharing), and says
whether they match.
"""

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from dlpy.errors import DlpyError
from dlpy.models.cnn import ConvBlock, conv_stack
from dlpy.models.convs import CONVS, NORMS, check_conv_options
from dlpy.models.layers import Activation, dense_layers
from dlpy.registry import MODELS
from dlpy.schema import Count, Dropout, Size

Conv = Literal[CONVS]
Norm = Literal[NORMS]


def trunk(
    in_channels: int,
    image_size: int,
    layers: Sequence[int | str],
    block: ConvBlock,
    conv_dropout: float,
) -> tuple[nn.Sequential, int]:
    """The `cnn` builder's conv stack (dlpy/models/cnn.py), flattened: (layers, features)."""
    check_conv_options(block.conv, block.norm, block.dilation, block.norm_groups)
    features, flat = conv_stack(in_channels, image_size, layers, block, conv_dropout)
    return nn.Sequential(*features, nn.Flatten()), flat


def check_names(key: str, names: dict, what: str) -> None:
    """Head and input names become metric keys (val/<name>/acc): plain words, at least one head."""
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise DlpyError(f"{key}: {what} name {name!r} must be a word (letters, digits, _)")


@MODELS.register("multi_head")
class MultiHead(nn.Module):
    """A shared CNN trunk under named heads (Chollet 7.1.3); extra inputs join it (7.1.2)."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        heads: dict[str, Size],
        inputs: dict[str, Size] | None = None,
        layers: list[int | str] = (32, "M", 64, "M"),
        kernel_size: Size = 3,
        padding: Count = 1,
        dilation: Size = 1,
        conv: Conv = "standard",
        norm: Norm = "none",
        norm_groups: Count = 0,
        activation: Activation = "relu",
        conv_dropout: Dropout = 0.0,
        fc: list[Size] = (128,),
        dropout: Dropout = 0.0,
    ) -> None:
        super().__init__()
        inputs = {} if inputs is None else inputs
        for key, given in (("model.heads", heads), ("model.inputs", inputs)):
            if not isinstance(given, dict):
                raise DlpyError(f"{key} must be a mapping of names to sizes, got {given!r}")
        if not heads:
            raise DlpyError("model.heads is empty: name at least one head and its class count")
        check_names("model.heads", heads, "a head")
        check_names("model.inputs", inputs, "an input")
        for key, sizes in (("model.heads", heads), ("model.inputs", inputs)):
            for name, size in sizes.items():
                if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                    raise DlpyError(f"{key}.{name} must be an integer >= 1, got {size!r}")
        block = ConvBlock(kernel_size, padding, dilation, conv, norm, norm_groups, activation)
        self.features, flat = trunk(in_channels, image_size, layers, block, conv_dropout)
        self.input_sizes = dict(inputs)  # name -> width of each extra input, in this order
        # The extra inputs are concatenated to the image's features before the shared dense
        # layers, as Chollet's question-answering model concatenates its two encodings.
        sizes = [flat + sum(inputs.values()), *fc]
        self.shared = nn.Sequential(*dense_layers(sizes, activation, dropout))
        self.heads = nn.ModuleDict({name: nn.Linear(sizes[-1], n) for name, n in heads.items()})

    def forward(self, x: Tensor, inputs: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Each head's logits, by name, from the image and the extra inputs (N, width) by name."""
        features = self.features(x)
        if self.input_sizes:
            inputs = inputs or {}
            missing = sorted(set(self.input_sizes) - set(inputs))
            if missing:
                raise ValueError(f"multi_head: the inputs {missing} were not given")
            features = torch.cat([features, *(inputs[n] for n in self.input_sizes)], dim=1)
        shared = self.shared(features)
        return {name: head(shared) for name, head in self.heads.items()}


@MODELS.register("siamese")
class Siamese(nn.Module):
    """Two images through one shared CNN encoder (Chollet 7.1.5): the logit that they match."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        embedding: Size = 128,
        layers: list[int | str] = (32, "M", 64, "M"),
        kernel_size: Size = 3,
        padding: Count = 1,
        dilation: Size = 1,
        conv: Conv = "standard",
        norm: Norm = "none",
        norm_groups: Count = 0,
        activation: Activation = "relu",
        conv_dropout: Dropout = 0.0,
        fc: list[Size] = (),
        dropout: Dropout = 0.0,
        head: list[Size] = (64,),
    ) -> None:
        super().__init__()
        block = ConvBlock(kernel_size, padding, dilation, conv, norm, norm_groups, activation)
        features, flat = trunk(in_channels, image_size, layers, block, conv_dropout)
        sizes = [flat, *fc]
        self.encoder = nn.Sequential(
            features, *dense_layers(sizes, activation, dropout), nn.Linear(sizes[-1], embedding)
        )
        # The pair's features, |a - b| and a * b, are the same whichever image comes first, so
        # the match of (x1, x2) is that of (x2, x1); |a - b| is Koch et al.'s (2015) L1 distance.
        compared = [2 * embedding, *head]
        self.head = nn.Sequential(*dense_layers(compared, activation), nn.Linear(compared[-1], 1))

    def encode(self, x: Tensor) -> Tensor:
        """The shared encoder: images (N, C, H, W) -> embeddings (N, embedding)."""
        return self.encoder(x)

    def compare(self, a: Tensor, b: Tensor) -> Tensor:
        """Two batches of embeddings -> the logit (N,) that each pair shows the same class."""
        return self.head(torch.cat([(a - b).abs(), a * b], dim=1)).squeeze(1)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        # One call of the encoder on both branches: one set of weights, whose gradient sums both
        # branches', and one batch norm statistic for both (two calls would normalise them apart).
        a, b = self.encode(torch.cat([x1, x2])).tensor_split(2)
        return self.compare(a, b)

"""Pieces the networks share: the activation a config names, and a stack of dense layers."""

from collections.abc import Sequence
from typing import Literal

from torch import nn

from dlpy.errors import check_choice

# The activations `model.activation` can name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "selu": nn.SELU,  # Klambauer et al. (2017), self-normalising networks
    "softplus": nn.Softplus,
}
Activation = Literal[tuple(ACTIVATIONS)]  # the schema's choices for an `activation` option


def make_activation(name: str) -> nn.Module:
    """A new activation layer: `model.activation` names it."""
    check_choice("model.activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def dense_layers(sizes: Sequence[int], activation: str, dropout: float = 0.0) -> list[nn.Module]:
    """Linear, activation and dropout between neighbouring sizes: [784, 256, 128] gives two."""
    layers = []
    for size_in, size_out in zip(sizes, sizes[1:], strict=False):
        layers.append(nn.Linear(size_in, size_out))
        layers.append(make_activation(activation))
        layers.append(nn.Dropout(dropout))
    return layers

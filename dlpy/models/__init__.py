"""Networks: small pure nn.Modules. Importing this package registers every built-in model.

Each module below registers its builders in dlpy.registry.MODELS when it is imported.
"""

from dlpy.models import (
    autoencoder,
    classic,
    cnn,
    conditional_gan,
    densenet,
    gan,
    layers,
    mlp,
    multi,
    policy,
    pretrained,
    resnet,
    rnn,
)
from dlpy.models.layers import ACTIVATIONS

# dlpy.visualize reads ACTIVATIONS from here, to tell activation layers apart.
__all__ = [
    "ACTIVATIONS",
    "autoencoder",
    "classic",
    "cnn",
    "conditional_gan",
    "densenet",
    "gan",
    "layers",
    "mlp",
    "multi",
    "policy",
    "pretrained",
    "resnet",
    "rnn",
]

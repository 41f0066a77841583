"""Networks: small pure nn.Modules. Importing this package registers every built-in model."""

from torch import nn

from dlpy.errors import DlpyError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name):
    if name not in ACTIVATIONS:
        raise DlpyError(f"model.activation: unknown {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


from dlpy.models import autoencoder, cnn, gan, mlp, policy, resnet, rnn  # noqa: E402,F401  (registers the builders)

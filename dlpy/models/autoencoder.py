"""Autoencoders and variational autoencoders: dense (the TensorFlow course's) and convolutional.

Decoders return logits; the task turns them into pixels (sigmoid) or losses (BCE with logits,
which is stable where log(sigmoid) is not).
"""

import torch
import torch.nn.functional as F
from torch import nn

from dlpy.models.layers import make_activation
from dlpy.registry import MODELS


def dense(sizes, activation, dropout=0.0):
    layers = []
    for cin, cout in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(cin, cout), make_activation(activation), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class ConvEncoder(nn.Sequential):
    """Two stride-2 convs (size/4), flattened: 28x28 -> 64x7x7, 32x32 -> 64x8x8."""

    def __init__(self, in_channels, image_size, activation):
        super().__init__(
            nn.Conv2d(in_channels, 32, 3, 2, 1),
            make_activation(activation),
            nn.Conv2d(32, 64, 3, 2, 1),
            make_activation(activation),
            nn.Flatten(),
        )
        self.out_features = 64 * (-(-image_size // 4)) ** 2


class ConvDecoder(nn.Sequential):
    """The mirror of ConvEncoder: linear to 64x(size/4)^2, two stride-2 transposed convs, logits."""

    def __init__(self, in_features, out_channels, image_size, activation):
        side = -(-image_size // 4)
        super().__init__(
            nn.Linear(in_features, 64 * side * side),
            make_activation(activation),
            nn.Unflatten(1, (64, side, side)),
            nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1),
            make_activation(activation),
            nn.ConvTranspose2d(32, out_channels, 3, 2, 1, output_padding=1),
        )
        self.image_size = image_size

    def forward(self, z):
        return super().forward(z)[..., : self.image_size, : self.image_size]


@MODELS.register("autoencoder")
class Autoencoder(nn.Module):
    """Autoencoder: dense 784-256-128-latent with a mirrored decoder, or convolutional (conv: true)."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        hidden=(256, 128),
        latent=20,
        activation="relu",
        dropout=0.0,
        conv=False,
    ):
        super().__init__()
        self.shape = (in_channels, image_size, image_size)
        pixels = in_channels * image_size * image_size
        if conv:
            enc = ConvEncoder(in_channels, image_size, activation)
            self.encoder = nn.Sequential(
                nn.Dropout(dropout), enc, nn.Linear(enc.out_features, latent)
            )
            self.decoder = ConvDecoder(latent, in_channels, image_size, activation)
        else:
            # the dropout variant drops input pixels and hidden units alike
            self.encoder = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(dropout),
                dense([pixels, *hidden], activation, dropout),
                nn.Linear(hidden[-1], latent),
            )
            self.decoder = nn.Sequential(
                dense([latent, *reversed(hidden)], activation),
                nn.Linear(hidden[0], pixels),
                nn.Unflatten(1, self.shape),
            )

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))


@MODELS.register("vae")
class VAE(nn.Module):
    """Variational autoencoder (Kingma & Welling): dense 784-512-latent or conv; conditional on labels."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        hidden=(512,),
        latent=20,
        activation="relu",
        conv=False,
        conditional=False,
    ):
        super().__init__()
        self.shape, self.latent, self.conv = (in_channels, image_size, image_size), latent, conv
        self.labels = (
            num_classes if conditional else 0
        )  # a CVAE sees the one-hot label in both halves
        if conv:  # the label enters the encoder as constant input planes
            self.body = ConvEncoder(in_channels + self.labels, image_size, activation)
            features = self.body.out_features
            self.decoder = ConvDecoder(latent + self.labels, in_channels, image_size, activation)
        else:
            pixels = in_channels * image_size * image_size
            self.body = dense([pixels + self.labels, *hidden], activation)
            features = hidden[-1]
            self.decoder = nn.Sequential(
                dense([latent + self.labels, *reversed(hidden)], activation),
                nn.Linear(hidden[0], pixels),
                nn.Unflatten(1, self.shape),
            )
        self.mu, self.logvar = nn.Linear(features, latent), nn.Linear(features, latent)

    def with_label(self, x, y):
        if not self.labels:
            return x
        onehot = F.one_hot(y, self.labels).to(x.dtype)
        if x.ndim == 4:
            return torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return torch.cat([x, onehot], 1)

    def encode(self, x, y=None):
        h = self.body(self.with_label(x if self.conv else x.flatten(1), y))
        return self.mu(h), self.logvar(h)

    def reparameterize(self, mu, logvar):
        # z = mu + sigma * eps keeps the sample differentiable in mu and sigma (Kingma & Welling, 2.4)
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z, y=None):
        return self.decoder(self.with_label(z, y))

    def forward(self, x, y=None):
        mu, logvar = self.encode(x, y)
        return self.decode(self.reparameterize(mu, logvar), y), mu, logvar

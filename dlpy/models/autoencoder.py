"""Autoencoders and variational autoencoders: dense (the TensorFlow course's) and convolutional.

The VAE is Kingma & Welling's (Auto-Encoding Variational Bayes, 2014); given the label it is
a conditional VAE (Sohn et al., 2015). Decoders return logits; the task turns them into pixels
(sigmoid) or losses (BCE with logits, which is stable where log(sigmoid) is not).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlpy.models.layers import Activation, dense_layers, make_activation
from dlpy.registry import MODELS
from dlpy.schema import Dropout, Size


def quarter(image_size: int) -> int:
    """The side of the map after two stride-2 convs: ceil(size / 4)."""
    return -(-image_size // 4)


class ConvEncoder(nn.Sequential):
    """Two stride-2 convs (size/4), flattened: 28x28 -> 64x7x7, 32x32 -> 64x8x8."""

    def __init__(self, in_channels: int, image_size: int, activation: str) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 32, 3, 2, 1),
            make_activation(activation),
            nn.Conv2d(32, 64, 3, 2, 1),
            make_activation(activation),
            nn.Flatten(),
        )
        self.out_features = 64 * quarter(image_size) ** 2


class ConvDecoder(nn.Sequential):
    """The mirror of ConvEncoder: linear to 64x(size/4)^2, two stride-2 transposed convs, logits."""

    def __init__(
        self, in_features: int, out_channels: int, image_size: int, activation: str
    ) -> None:
        side = quarter(image_size)
        super().__init__(
            nn.Linear(in_features, 64 * side * side),
            make_activation(activation),
            nn.Unflatten(1, (64, side, side)),
            nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1),
            make_activation(activation),
            nn.ConvTranspose2d(32, out_channels, 3, 2, 1, output_padding=1),
        )
        self.image_size = image_size

    def forward(self, z: Tensor) -> Tensor:
        # Two doublings of ceil(size / 4) overshoot a size not a multiple of 4: crop to the image.
        return super().forward(z)[..., : self.image_size, : self.image_size]


def dense_decoder(
    latent: int, hidden: Sequence[int], shape: tuple[int, int, int], activation: str
) -> nn.Sequential:
    """The dense encoder's mirror: latent, the hidden sizes reversed, then the image's pixels."""
    pixels = shape[0] * shape[1] * shape[2]
    return nn.Sequential(
        nn.Sequential(*dense_layers([latent, *reversed(hidden)], activation)),
        nn.Linear(hidden[0], pixels),
        nn.Unflatten(1, shape),
    )


@MODELS.register("autoencoder")
class Autoencoder(nn.Module):
    """Autoencoder: dense 784-256-128-latent, mirrored decoder, or convolutional (conv: true)."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        hidden: Sequence[Size] = (256, 128),
        latent: Size = 20,
        activation: Activation = "relu",
        dropout: Dropout = 0.0,
        conv: bool = False,
    ) -> None:
        super().__init__()
        self.shape = (in_channels, image_size, image_size)
        if conv:
            body = ConvEncoder(in_channels, image_size, activation)
            self.encoder = nn.Sequential(
                nn.Dropout(dropout), body, nn.Linear(body.out_features, latent)
            )
            self.decoder = ConvDecoder(latent, in_channels, image_size, activation)
        else:
            # The dropout variant drops input pixels and hidden units alike.
            pixels = in_channels * image_size * image_size
            self.encoder = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(dropout),
                nn.Sequential(*dense_layers([pixels, *hidden], activation, dropout)),
                nn.Linear(hidden[-1], latent),
            )
            self.decoder = dense_decoder(latent, hidden, self.shape, activation)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


@MODELS.register("vae")
class VAE(nn.Module):
    """Variational autoencoder (Kingma & Welling): dense 784-512-latent or conv; conditional."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Size,
        hidden: Sequence[Size] = (512,),
        latent: Size = 20,
        activation: Activation = "relu",
        conv: bool = False,
        conditional: bool = False,
    ) -> None:
        super().__init__()
        self.shape = (in_channels, image_size, image_size)
        self.latent = latent
        self.conv = conv
        # A conditional VAE sees the one-hot label in both halves (Sohn et al., 2015).
        self.labels = num_classes if conditional else 0
        if conv:  # the label enters the encoder as constant input planes
            self.body = ConvEncoder(in_channels + self.labels, image_size, activation)
            features = self.body.out_features
            self.decoder = ConvDecoder(latent + self.labels, in_channels, image_size, activation)
        else:
            pixels = in_channels * image_size * image_size
            self.body = nn.Sequential(*dense_layers([pixels + self.labels, *hidden], activation))
            features = hidden[-1]
            self.decoder = dense_decoder(latent + self.labels, hidden, self.shape, activation)
        # The encoder gives the posterior q(z|x) = N(mu, exp(logvar)).
        self.mu = nn.Linear(features, latent)
        self.logvar = nn.Linear(features, latent)

    def with_label(self, x: Tensor, y: Tensor | None) -> Tensor:
        """`x` with the one-hot label appended: as features, or as constant planes of an image."""
        if not self.labels:
            return x
        onehot = F.one_hot(y, self.labels).to(x.dtype)
        if x.ndim == 4:
            planes = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])
            return torch.cat([x, planes], 1)
        return torch.cat([x, onehot], 1)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.body(self.with_label(x if self.conv else x.flatten(1), y))
        return self.mu(h), self.logvar(h)

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        # z = mu + sigma * eps keeps the sample differentiable in mu and sigma
        # (the reparameterization trick: Kingma & Welling, 2014, sec. 2.4).
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(self.with_label(z, y))

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x, y)
        return self.decode(self.reparameterize(mu, logvar), y), mu, logvar


@MODELS.register("aae")
class AdversarialAutoencoder(Autoencoder):
    """Adversarial autoencoder (Makhzani et al., 2015): an autoencoder, a discriminator on codes."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        hidden: Sequence[Size] = (1000, 1000),
        latent: Size = 8,
        activation: Activation = "relu",
        dropout: Dropout = 0.0,
        conv: bool = False,
        discriminator_hidden: Sequence[Size] = (1000, 1000),
    ) -> None:
        super().__init__(in_channels, image_size, hidden, latent, activation, dropout, conv)
        self.latent = latent
        # Codes -> one logit: is this a draw from the prior, or the code of an image?
        sizes = [latent, *discriminator_hidden]
        self.discriminator = nn.Sequential(
            nn.Sequential(*dense_layers(sizes, activation)),
            nn.Linear(sizes[-1], 1),
            nn.Flatten(0),
        )

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """The encoder's and the decoder's: what the reconstruction phase trains."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

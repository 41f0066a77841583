"""GAN generators and discriminators: DCGAN's convolutional pair (Radford et al., 2016) for 28, 32
and 64 pixel images, and the fully connected pair of the first GAN (Goodfellow et al., 2014).

The DCGAN generator starts from a 7x7 (28 px) or 4x4 (32, 64 px) map and doubles it with stride-2
transposed convs; the discriminator mirrors it with stride-2 convs. Every discriminator outputs
logits or raw scores: the task picks the loss (BCE for DCGAN, least squares for LSGAN, the
Wasserstein critic for WGAN and WGAN-GP).
"""

import math
from collections.abc import Sequence

from torch import Tensor, nn

from dlpy.errors import DlpyError
from dlpy.registry import MODELS
from dlpy.schema import Dropout, Size


def doublings(image_size: int) -> tuple[int, int]:
    """The starting map's side (4 or 7 px), and how many stride-2 steps double it to the image."""
    for start in (4, 7):
        steps = (image_size // start).bit_length() - 1
        if steps >= 1 and start << steps == image_size:
            return start, steps
    raise DlpyError(
        f"dataset.image_size {image_size} is not 4 or 7 times a power of 2 (28, 32, 64, ...)"
    )


class Generator(nn.Sequential):
    """Noise -> image in [-1, 1]: project and reshape, then transposed convs halving the channels.

    Radford et al.'s guidelines: batchnorm and ReLU in every layer but the output, which is tanh.
    """

    def __init__(self, latent: int, channels: int, image_size: int, width: int) -> None:
        start, steps = doublings(image_size)
        ch = width * 2 ** (steps - 1)
        layers = [
            nn.Linear(latent, ch * start * start, bias=False),
            nn.Unflatten(1, (ch, start, start)),
            nn.BatchNorm2d(ch),
            nn.ReLU(),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        super().__init__(*layers, nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh())
        self.latent = latent


class Discriminator(nn.Sequential):
    """Strided convs with LeakyReLU(0.2) (Radford et al.), doubling the channels; one score each.

    Batchnorm follows all but the first conv, unless this is a WGAN-GP critic: its gradient
    penalty is taken per sample, which batchnorm's mixing of the batch would spoil (Gulrajani
    et al., 2017, sec. 4).
    """

    def __init__(self, channels: int, image_size: int, width: int, batchnorm: bool) -> None:
        start, steps = doublings(image_size)
        layers = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(steps - 1):
            layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(ch * 2))
            layers.append(nn.LeakyReLU(0.2))
            ch *= 2
        super().__init__(*layers, nn.Flatten(), nn.Linear(ch * start * start, 1), nn.Flatten(0))


@MODELS.register("dcgan")
class GAN(nn.Module):
    """DCGAN: transposed convs with batchnorm and tanh; strided convs to a score (critic: no BN)."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        latent: Size = 100,
        width: Size = 64,
        critic: bool = False,
    ) -> None:
        super().__init__()
        self.latent = latent
        self.generator = Generator(latent, in_channels, image_size, width)
        self.discriminator = Discriminator(in_channels, image_size, width, batchnorm=not critic)

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)


class DenseGenerator(nn.Sequential):
    """Noise -> image in [-1, 1] through dense layers: LeakyReLU(0.2) (after batchnorm, where
    set) between them, tanh on the pixels, reshaped to the image."""

    def __init__(
        self, latent: int, shape: tuple[int, int, int], hidden: Sequence[int], batchnorm: bool
    ) -> None:
        sizes = [latent, *hidden]
        layers = []
        for size_in, size_out in zip(sizes, sizes[1:], strict=False):
            layers.append(nn.Linear(size_in, size_out, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(size_out))
            layers.append(nn.LeakyReLU(0.2))
        pixels = math.prod(shape)
        super().__init__(*layers, nn.Linear(sizes[-1], pixels), nn.Tanh(), nn.Unflatten(1, shape))


class DenseDiscriminator(nn.Sequential):
    """Flattened image -> one score: dense layers with LeakyReLU(0.2), and dropout where set
    (Goodfellow et al. trained their discriminator with dropout)."""

    def __init__(self, pixels: int, hidden: Sequence[int], dropout: float) -> None:
        sizes = [pixels, *hidden]
        layers = [nn.Flatten()]
        for size_in, size_out in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(size_in, size_out), nn.LeakyReLU(0.2)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        super().__init__(*layers, nn.Linear(sizes[-1], 1), nn.Flatten(0))


@MODELS.register("fc_gan")
class DenseGAN(nn.Module):
    """Fully connected GAN (Goodfellow et al., 2014): a dense generator and discriminator."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        latent: Size = 100,
        generator_hidden: Sequence[Size] = (256, 512, 1024),
        discriminator_hidden: Sequence[Size] = (512, 256),
        batchnorm: bool = True,
        dropout: Dropout = 0.0,
    ) -> None:
        super().__init__()
        shape = (in_channels, image_size, image_size)
        self.latent = latent
        self.generator = DenseGenerator(latent, shape, generator_hidden, batchnorm)
        self.discriminator = DenseDiscriminator(math.prod(shape), discriminator_hidden, dropout)

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)

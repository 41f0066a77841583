"""DCGAN generator and discriminator (Radford et al., 2016) for 28, 32 and 64 pixel images.

The generator starts from a 7x7 (28 px) or 4x4 (32, 64 px) map and doubles it with stride-2
transposed convs; the discriminator mirrors it with stride-2 convs. Both output logits or raw
scores: the task picks the loss (BCE for DCGAN, the Wasserstein critic for WGAN-GP).
"""

from torch import nn

from dlpy.errors import DlpyError
from dlpy.registry import MODELS


def doublings(image_size):
    """How many stride-2 steps lead from the starting map (4 or 7 px) to the image."""
    for start in (4, 7):
        steps = (image_size // start).bit_length() - 1
        if steps >= 1 and start << steps == image_size:
            return start, steps
    raise DlpyError(
        f"dataset.image_size {image_size} is not 4 or 7 times a power of 2 (28, 32, 64, ...)"
    )


class Generator(nn.Sequential):
    def __init__(self, latent, channels, image_size, width):
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
    """Strided convs with LeakyReLU(0.2); batchnorm after all but the first, unless it is a WGAN critic."""

    def __init__(self, channels, image_size, width, batchnorm):
        start, steps = doublings(image_size)
        layers, ch = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)], width
        for _ in range(steps - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not batchnorm)]
            layers += [nn.BatchNorm2d(ch * 2)] if batchnorm else []
            layers += [nn.LeakyReLU(0.2)]
            ch *= 2
        super().__init__(*layers, nn.Flatten(), nn.Linear(ch * start * start, 1), nn.Flatten(0))


@MODELS.register("dcgan")
class GAN(nn.Module):
    """DCGAN: transposed-conv generator with batchnorm and tanh, strided-conv discriminator (critic: no BN)."""

    def __init__(self, in_channels: int, image_size: int, latent=100, width=64, critic=False):
        super().__init__()
        self.latent = latent
        self.generator = Generator(latent, in_channels, image_size, width)
        self.discriminator = Discriminator(in_channels, image_size, width, batchnorm=not critic)

    def forward(self, z):
        return self.generator(z)

"""GANs whose generator is given a code beside the noise: the one-hot class (cGAN, ACGAN) or
InfoGAN's latent codes. The players are DCGAN's (dlpy/models/gan.py) with what each variant adds.

As in Atienza's Keras code, the generator's input is the noise and the code concatenated
([z, c] -> the dense projection). The cGAN discriminator is told the class too: a dense layer
turns the one-hot label into one more image channel (Atienza ch. 4). ACGAN's and InfoGAN's
discriminators are not told anything: a second head on their conv features classifies the image
(ACGAN) or estimates its codes (InfoGAN's Q network), and the first head scores real or fake.
"""

from typing import Annotated

import torch
from torch import Tensor, nn

from dlpy.models.gan import Discriminator, Generator
from dlpy.registry import MODELS
from dlpy.schema import Count, Range, Size

Classes = Annotated[int, Range(ge=2)]  # a code of one category is no code


class CodedGenerator(nn.Module):
    """DCGAN's generator on [z, c], noise and code concatenated, as Atienza's generators are."""

    def __init__(self, latent: int, codes: int, channels: int, image_size: int, width: int) -> None:
        super().__init__()
        self.body = Generator(latent + codes, channels, image_size, width)

    def forward(self, z: Tensor, code: Tensor) -> Tensor:
        return self.body(torch.cat([z, code], 1))


class LabelledDiscriminator(nn.Module):
    """cGAN's discriminator: the one-hot label, through a dense layer, becomes an extra channel of
    the image (Atienza ch. 4: Dense(image_size^2), reshaped, concatenated); one score each."""

    def __init__(self, channels: int, image_size: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.label_plane = nn.Sequential(
            nn.Linear(num_classes, image_size * image_size),
            nn.Unflatten(1, (1, image_size, image_size)),
        )
        self.body = Discriminator(channels + 1, image_size, width, batchnorm=True)

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        return self.body(torch.cat([x, self.label_plane(label)], 1))


class AuxiliaryDiscriminator(nn.Module):
    """DCGAN's discriminator with a second head on its conv features: (score, auxiliary outputs).

    The auxiliary head is dense-LeakyReLU-dense, as InfoGAN's Q network (Chen et al. 2016,
    appendix C: FC 128 then the codes; Atienza's Dense(layer_filters[-2]) then the labels).
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        width: int,
        outputs: int,
        hidden: int,
        batchnorm: bool,
    ) -> None:
        super().__init__()
        *convs, last, squeeze = Discriminator(channels, image_size, width, batchnorm)
        self.features = nn.Sequential(*convs)  # the strided convs, flattened
        self.score = nn.Sequential(last, squeeze)  # real or fake: one logit
        self.auxiliary = nn.Sequential(
            nn.Linear(last.in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, outputs)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x)
        return self.score(h), self.auxiliary(h)


@MODELS.register("cgan")
class ConditionalGAN(nn.Module):
    """cGAN: both players see the one-hot class (Mirza & Osindero 2014; Atienza ch. 4)."""

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Classes,
        latent: Size = 100,
        width: Size = 64,
    ) -> None:
        super().__init__()
        self.latent = latent
        self.num_classes = num_classes
        self.generator = CodedGenerator(latent, num_classes, in_channels, image_size, width)
        self.discriminator = LabelledDiscriminator(in_channels, image_size, width, num_classes)

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        return self.generator(z, label)


@MODELS.register("acgan")
class AuxiliaryClassifierGAN(nn.Module):
    """ACGAN: cGAN's generator; D scores real or fake and classifies (Odena et al. 2017).

    Atienza ch. 5's discriminator: the auxiliary head beside the score, and no batchnorm. With
    batchnorm, on Fashion-MNIST, G drew every class alike while D's classifier still told them
    apart (test/label_acc 0.28 after 5 epochs, against 0.67 without; docs/results.md).
    """

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        num_classes: Classes,
        latent: Size = 100,
        width: Size = 64,
        hidden: Size = 128,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        self.latent = latent
        self.num_classes = num_classes
        self.generator = CodedGenerator(latent, num_classes, in_channels, image_size, width)
        self.discriminator = AuxiliaryDiscriminator(
            in_channels, image_size, width, num_classes, hidden, batchnorm
        )

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        return self.generator(z, label)


@MODELS.register("infogan")
class InfoGAN(nn.Module):
    """InfoGAN: G takes noise and codes; D's Q head estimates the codes (Chen et al. 2016).

    Atienza ch. 6: a categorical code and continuous codes, concatenated with the noise, and a
    discriminator without batchnorm. With batchnorm, on Fashion-MNIST, Q learnt to read the
    category from faint marks no person sees, and G drew every category alike (docs/results.md).
    """

    def __init__(
        self,
        in_channels: Size,
        image_size: Size,
        latent: Size = 62,
        categories: Classes = 10,
        continuous: Count = 2,
        width: Size = 64,
        hidden: Size = 128,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        self.latent = latent
        self.categories = categories
        self.continuous = continuous
        codes = categories + continuous  # the code: one-hot category, then the continuous ones
        self.generator = CodedGenerator(latent, codes, in_channels, image_size, width)
        # Q's outputs: the category's logits, then an estimate of each continuous code
        self.discriminator = AuxiliaryDiscriminator(
            in_channels, image_size, width, codes, hidden, batchnorm
        )

    def forward(self, z: Tensor, code: Tensor) -> Tensor:
        return self.generator(z, code)

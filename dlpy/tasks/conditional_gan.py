"""GANs whose generator is given a code beside the noise: cGAN, ACGAN and InfoGAN.

- cGAN (Mirza & Osindero 2014; Atienza ch. 4): both players see the one-hot class. The
  discriminator judges "a real image of this class"; the generator makes the class it is given.
- ACGAN (Odena et al. 2017; Atienza ch. 5): only the generator is given the class. The
  discriminator's auxiliary head classifies real and fake images; it minimises that
  cross-entropy on both, the generator on its own images, beside the real-or-fake BCE.
- InfoGAN (Chen et al. 2016; Atienza ch. 6): the code is a categorical code and continuous codes
  drawn at random, not labels. The discriminator's Q head estimates each fake image's code and
  both players minimise -log Q(c|x), which raises a lower bound on the mutual information
  I(c; G(z, c)) (Chen et al., eq. 4-5).

GAN (dlpy/tasks/gan.py) gives the rest: the d_steps schedule, one optimizer per player, FID, KID
and the Inception Score, and g_lr_scale: Atienza's adversarial model trains at half the
discriminator's learning rate.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlpy import metrics
from dlpy.data.base import Batch
from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError
from dlpy.plots import labelled_rows
from dlpy.registry import TASKS
from dlpy.schema import NonNegative, Positive, Size
from dlpy.tasks.autoencoder import fixed_noise
from dlpy.tasks.base import Logs, OptimizerFactory
from dlpy.tasks.gan import GAN

CODE_STD = 0.5  # InfoGAN's continuous codes ~ N(0, 0.5^2), as Atienza draws them
TRAVERSAL = torch.linspace(-2, 2, 9)  # the values a continuous code sweeps (Chen et al., Atienza)


def adversarial_terms(d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """DCGAN's discriminator loss -[log D(x) + log(1 - D(G(z)))] from logits, and its logs."""
    real_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    fake_loss = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return real_loss + fake_loss, {
        "train/d_real": torch.sigmoid(d_real).mean(),
        "train/d_fake": torch.sigmoid(d_fake).mean(),
    }


def fooled(d_fake: Tensor) -> Tensor:
    """The non-saturating generator loss: -log D(G(z)), from logits."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def balanced(n: int, classes: int, device: torch.device | str = "cpu") -> Tensor:
    """0, 1, ..., classes - 1, 0, 1, ...: n labels, each class as often (Fashion-MNIST's are)."""
    return torch.arange(n, device=device) % classes


def label_accuracy(probabilities: Tensor, classes: int) -> float:
    """How often the feature classifier calls an image made for class `balanced(...)[i]` that
    class (Odena et al. 2017, sec. 4.1, with Inception there)."""
    asked = balanced(len(probabilities), classes, probabilities.device)
    return float((probabilities.argmax(1) == asked).float().mean())


class Coded(GAN):
    """GAN's two phases with a code beside the noise: every fake image gets a fresh random code,
    and the losses see the real images' labels and the fake images' codes."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        d_steps: Size = 1,
        fid: bool = True,
        g_lr_scale: Positive = 1.0,
    ) -> None:
        super().__init__(net, optimizer, d_steps, fid, g_lr_scale=g_lr_scale)

    def random_code(self, n: int, device: torch.device) -> Tensor:
        """Codes to train on, drawn from the global generator (so a resumed run draws the same)."""
        raise NotImplementedError(f"{type(self).__name__} must define random_code")

    def fixed_code(self, n: int, device: torch.device) -> Tensor:
        """The same n codes every call, for FID, IS and the sample grids."""
        raise NotImplementedError(f"{type(self).__name__} must define fixed_code")

    def discriminator_terms(
        self, real: Tensor, labels: Tensor, fake: Tensor, code: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must define discriminator_terms")

    def generator_terms(self, fake: Tensor, code: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define generator_terms")

    def training_step(self, batch: Batch, step: int) -> Logs:
        real, labels = batch
        code = self.random_code(len(real), real.device)
        fake = self.net.generator(self.noise(len(real), real.device), code)
        # (1) Update D: tell real (of its label) from fake (of its code)
        loss_d, logs = self.discriminator_terms(real, labels, fake.detach(), code)
        self.trainer.backward(loss_d, self.opt_d)
        # (2) Update G every d_steps batches: fool D, and make the code recoverable
        if (step + 1) % self.d_steps == 0:
            self._loss_g = self.generator_terms(fake, code)
            self.trainer.backward(self._loss_g, self.opt_g)
        return {key: value.detach() for key, value in logs.items()} | {
            "train/loss_d": loss_d.detach(),
            "train/loss_g": self._loss_g.detach(),
        }

    def generate(self, n: int, device: torch.device, seed: int = 0) -> Tensor:
        """n images from fixed noise and fixed codes (the same every call), in [-1, 1]."""
        z = fixed_noise((n, self.net.latent), device, seed)
        code = self.fixed_code(n, device)
        pairs = zip(z.split(1000), code.split(1000), strict=True)
        return torch.cat([self.net.generator(*pair) for pair in pairs])

    def networks(self, x: Tensor, y: Tensor) -> dict[str, tuple[nn.Module, list]]:
        inputs = [torch.zeros(1, self.net.latent), self.fixed_code(1, x.device)]
        return {
            "generator": (self.net.generator, inputs),
            "discriminator": (self.net.discriminator, [x]),
        }


class Labelled(Coded):
    """A GAN whose code is the one-hot class: its samples are of a class asked for."""

    def one_hot(self, labels: Tensor) -> Tensor:
        return F.one_hot(labels, self.net.num_classes).float()

    def random_code(self, n: int, device: torch.device) -> Tensor:
        return self.one_hot(torch.randint(self.net.num_classes, (n,), device=device))

    def fixed_code(self, n: int, device: torch.device) -> Tensor:
        return self.one_hot(balanced(n, self.net.num_classes, device))

    def sample_scores(self, probabilities: Tensor, split: str) -> dict[str, float]:
        """The Inception Score, and label_acc: how often the feature classifier calls a generated
        image the class it was made for."""
        right = label_accuracy(probabilities, self.net.num_classes)
        return super().sample_scores(probabilities, split) | {f"{split}/label_acc": right}

    def examples(self, data: ImageData, n: int = 64, labels: list[int] | None = None) -> Logs:
        """One row per class, named: every class, or `labels` (`dlpy sample <run> label=Bag`).
        A row holds n / classes images (at most 16); a column's images share their noise, so it
        shows one style in every class."""
        classes = list(range(self.net.num_classes)) if labels is None else labels
        columns = min(16, max(1, n // len(classes)))
        z = fixed_noise((columns, self.net.latent), data.device).repeat(len(classes), 1)
        asked = torch.tensor(classes, device=data.device).repeat_interleave(columns)
        images = data.to_uint8(self.net.generator(z, self.one_hot(asked)))
        rows = [
            (data.classes[c], images[i * columns : (i + 1) * columns])
            for i, c in enumerate(classes)
        ]
        return {"images/samples": labelled_rows(rows, columns)}


@TASKS.register("cgan")
class CGAN(Labelled):
    """cGAN: D tells real from fake images of the class both players are given.

    Mirza & Osindero 2014; Atienza ch. 4.
    """

    def discriminator_terms(
        self, real: Tensor, labels: Tensor, fake: Tensor, code: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        d = self.net.discriminator
        return adversarial_terms(d(real, self.one_hot(labels)), d(fake, code))

    def generator_terms(self, fake: Tensor, code: Tensor) -> Tensor:
        return fooled(self.net.discriminator(fake, code))

    def networks(self, x: Tensor, y: Tensor) -> dict[str, tuple[nn.Module, list]]:
        players = super().networks(x, y)
        return players | {"discriminator": (self.net.discriminator, [x, self.one_hot(y)])}


@TASKS.register("acgan")
class ACGAN(Labelled):
    """ACGAN: D tells real from fake and classifies both; G makes the class it is given.

    Both players minimise the auxiliary classifier's loss (Odena et al. 2017; Atienza ch. 5).
    """

    def discriminator_terms(
        self, real: Tensor, labels: Tensor, fake: Tensor, code: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        score_real, class_real = self.net.discriminator(real)
        score_fake, class_fake = self.net.discriminator(fake)
        loss, logs = adversarial_terms(score_real, score_fake)
        # L_C on real and fake images (Odena et al., eq. 2; Atienza's D trains on both batches)
        classification = F.cross_entropy(class_real, labels)
        classification = classification + F.cross_entropy(class_fake, code.argmax(1))
        return loss + classification, logs | {
            "train/loss_class": classification,
            "train/acc_real": (class_real.argmax(1) == labels).float().mean(),
        }

    def generator_terms(self, fake: Tensor, code: Tensor) -> Tensor:
        score, classes = self.net.discriminator(fake)
        # G maximises L_C - L_S: fool the source head, and make its class the one it was given
        return fooled(score) + F.cross_entropy(classes, code.argmax(1))


def traversal_codes(categories: int, continuous: int, swept: int | None, columns: int) -> Tensor:
    """The codes of a traversal grid, row by row, (categories * columns, categories + continuous).

    Row k holds category k. swept None: the continuous codes are 0 (the columns vary the noise);
    swept i: continuous code i steps over TRAVERSAL along the row (columns = its length), the
    other continuous codes 0.
    """
    category = torch.arange(categories).repeat_interleave(columns)
    values = torch.zeros(len(category), continuous)
    if swept is not None:
        values[:, swept] = TRAVERSAL.repeat(categories)
    return torch.cat([F.one_hot(category, categories).float(), values], 1)


@TASKS.register("infogan")
class InfoGAN(Coded):
    """InfoGAN: D's Q head recovers G's categorical and continuous codes from its images.

    Both players minimise Q's error, which bounds the codes' mutual information with the image
    from below (Chen et al. 2016; Atienza ch. 6).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        d_steps: Size = 1,
        fid: bool = True,
        g_lr_scale: Positive = 1.0,
        categorical_weight: NonNegative = 1.0,
        continuous_weight: NonNegative = 0.5,
        supervised: bool = False,
    ) -> None:
        super().__init__(net, optimizer, d_steps, fid, g_lr_scale)
        self.categorical_weight = categorical_weight  # lambda of Chen et al., eq. 6
        self.continuous_weight = continuous_weight  # Atienza's loss_weights: 1.0, then 0.5 each
        # true: the categorical head also learns the real images' labels, as Atienza's code does
        self.supervised = supervised

    def attach(self, data: ImageData) -> None:
        """A supervised categorical code must have one category per class of the data."""
        if self.supervised and self.net.categories != len(data.classes):
            raise DlpyError(
                f"model.task.supervised=true learns the labels as the categorical code: "
                f"model.categories must be the {len(data.classes)} classes of the data, "
                f"got {self.net.categories}"
            )

    def random_code(self, n: int, device: torch.device) -> Tensor:
        category = torch.randint(self.net.categories, (n,), device=device)
        values = torch.randn(n, self.net.continuous, device=device) * CODE_STD
        return torch.cat([F.one_hot(category, self.net.categories).float(), values], 1)

    def fixed_code(self, n: int, device: torch.device) -> Tensor:
        category = F.one_hot(balanced(n, self.net.categories, device), self.net.categories)
        values = fixed_noise((n, self.net.continuous), device, seed=1) * CODE_STD
        return torch.cat([category.float(), values], 1)

    def sample_scores(self, probabilities: Tensor, split: str) -> dict[str, float]:
        """The Inception Score, and code_information: I(c; y) / H(c) of the categorical code and
        the feature classifier's class (dlpy/metrics.py), 0 when the code changes nothing seen.
        A supervised code is the class, so label_acc says how often it is made, as cGAN's does."""
        codes = balanced(len(probabilities), self.net.categories, probabilities.device)
        information = metrics.code_information(probabilities, codes)
        scores = {f"{split}/code_information": information}
        if self.supervised:
            scores[f"{split}/label_acc"] = label_accuracy(probabilities, self.net.categories)
        return super().sample_scores(probabilities, split) | scores

    def information_terms(self, estimate: Tensor, code: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted -log Q(c|x): L_I = E[log Q(c|x)] + H(c) bounds I(c; G(z, c)) from below
        (Chen et al., lemma 5.1), and H(c) is fixed, so the players minimise -log Q alone."""
        k = self.net.categories
        categorical = F.cross_entropy(estimate[:, :k], code[:, :k].argmax(1))
        # Q(c|x) for a continuous code: a Gaussian of the prior's spread around Q's estimate
        # (Chen et al. sec. 6), -log Q = (c - mu)^2 / (2 sigma^2) + a constant
        continuous = ((estimate[:, k:] - code[:, k:]) ** 2).sum(1).mean() / (2 * CODE_STD**2)
        loss = self.categorical_weight * categorical + self.continuous_weight * continuous
        return loss, {"train/info_categorical": categorical, "train/info_continuous": continuous}

    def discriminator_terms(
        self, real: Tensor, labels: Tensor, fake: Tensor, code: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        score_real, estimate_real = self.net.discriminator(real)
        score_fake, estimate_fake = self.net.discriminator(fake)
        loss, logs = adversarial_terms(score_real, score_fake)
        information, info_logs = self.information_terms(estimate_fake, code)
        loss = loss + information
        if self.supervised:
            category = estimate_real[:, : self.net.categories]
            loss = loss + self.categorical_weight * F.cross_entropy(category, labels)
        return loss, logs | info_logs

    def generator_terms(self, fake: Tensor, code: Tensor) -> Tensor:
        score, estimate = self.net.discriminator(fake)
        return fooled(score) + self.information_terms(estimate, code)[0]

    def row_name(self, data: ImageData, category: int) -> str:
        """A supervised category is the class of that number; an unsupervised one is a number."""
        return data.classes[category] if self.supervised else f"category {category}"

    def examples(self, data: ImageData, n: int = 64) -> Logs:
        """GAN's samples, and the traversals of Chen et al.'s fig. 2, one row per category:
        code_category's columns are 10 noise draws (shared down a column, continuous codes 0);
        code_<i>'s columns sweep continuous code i over -2..2, the noise fixed along a row."""
        images = super().examples(data, n)
        k = self.net.categories
        z = fixed_noise((10, self.net.latent), data.device)
        grids = {"code_category": (None, z.repeat(k, 1), 10)}
        z = fixed_noise((k, self.net.latent), data.device).repeat_interleave(len(TRAVERSAL), 0)
        for i in range(self.net.continuous):
            grids[f"code_{i + 1}"] = (i, z, len(TRAVERSAL))
        for name, (swept, noise, columns) in grids.items():
            code = traversal_codes(k, self.net.continuous, swept, columns).to(data.device)
            made = data.to_uint8(self.net.generator(noise, code))
            rows = [
                (self.row_name(data, c), made[c * columns : (c + 1) * columns]) for c in range(k)
            ]
            images[f"images/{name}"] = labelled_rows(rows, columns)
        return images

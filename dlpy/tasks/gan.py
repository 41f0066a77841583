"""GANs: DCGAN's two-player game (BCE, or LSGAN's least squares) and the Wasserstein critic
(WGAN's clipped weights, WGAN-GP's gradient penalty).

Each batch gives the discriminator (critic) one step on fresh real images; every d_steps-th
batch the generator takes a step too (WGAN, WGAN-GP: n_critic = 5 critic steps per generator step).
Images are in [-1, 1] (the presets set dataset.scaling: symmetric) to match the tanh output.
Evaluation is FID and KID against the split's real images (dlpy/metrics.py), on the features of
a classifier trained once per data set before the first step (model.task.fid=false: no FID, for
smoke runs).
"""

from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dlpy import metrics
from dlpy.data.base import Batch
from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError, check_choice
from dlpy.plots import grid
from dlpy.registry import TASKS
from dlpy.schema import NonNegative, Size
from dlpy.tasks.autoencoder import fixed_noise
from dlpy.tasks.base import Logs, OptimizerFactory, Task


def bce(scores: torch.Tensor, target: float) -> torch.Tensor:
    """-[t log D + (1 - t) log(1 - D)] with D = sigmoid(score): the GAN of Goodfellow et al."""
    return F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, target))


def least_squares(scores: torch.Tensor, target: float) -> torch.Tensor:
    """1/2 E[(D - t)^2] on the raw score: LSGAN's eq. 9 with the labels a = 0 (fake) and
    b = c = 1 (real), Mao et al. (2017)."""
    return 0.5 * (scores.float() - target).pow(2).mean()


class Adversarial(NamedTuple):
    """A GAN loss: of the scores against a label (1 real, 0 fake), and the score as the
    discriminator's belief that the image is real, for the logs."""

    loss: Callable[[torch.Tensor, float], torch.Tensor]
    belief: Callable[[torch.Tensor], torch.Tensor]


ADVERSARIAL = {
    "bce": Adversarial(bce, torch.sigmoid),
    "lsgan": Adversarial(least_squares, lambda scores: scores),  # regressed onto the labels
}


@TASKS.register("gan")
class GAN(Task):
    """DCGAN: the discriminator tells real from generated (BCE or LSGAN's least squares)."""

    optimizer_names = ("discriminator", "generator")  # configure_optimizers' order
    headline_metrics = ("test/fid",)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        d_steps: Size = 1,
        fid: bool = True,
        loss: Literal[tuple(ADVERSARIAL)] = "bce",
    ) -> None:
        super().__init__(optimizer)
        check_choice("model.task.loss", loss, ADVERSARIAL)
        self.net = net
        self.d_steps = d_steps
        self.fid = fid  # evaluate FID and KID (false: smoke runs skip the feature network)
        self.adversarial = ADVERSARIAL[loss]
        self._features = None
        self._loss_g = torch.zeros(())  # the latest generator loss, reported on every batch

    def prepare(self, data: ImageData) -> None:
        """The FID feature network, before the first step: trained (with its own progress bar)
        on a data set's first run, loaded from the cache after."""
        if self.fid:
            self._features = metrics.feature_network(data)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimizer per player, so that each step moves one network only."""
        self.opt_d = self.optimizer_factory(self.net.discriminator.parameters())
        self.opt_g = self.optimizer_factory(self.net.generator.parameters())
        return [self.opt_d, self.opt_g]

    def noise(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.net.latent, device=device)

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        d_real = self.net.discriminator(real)
        d_fake = self.net.discriminator(fake)
        # against the labels real = 1, fake = 0: BCE's -[log D(x) + log(1 - D(G(z)))], or
        # LSGAN's 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2
        loss = self.adversarial.loss(d_real, 1.0) + self.adversarial.loss(d_fake, 0.0)
        return loss, {
            "train/loss_d": loss,
            "train/d_real": self.adversarial.belief(d_real).mean(),
            "train/d_fake": self.adversarial.belief(d_fake).mean(),
        }

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        d_fake = self.net.discriminator(fake)
        # the non-saturating loss: maximise log D(G(z)) rather than minimise log(1 - D(G(z)));
        # LSGAN's generator minimises 1/2 (D(G(z)) - 1)^2
        return self.adversarial.loss(d_fake, 1.0)

    def training_step(self, batch: Batch, step: int) -> Logs:
        real = batch[0]
        # (1) Update D: maximise log(D(x)) + log(1 - D(G(z)))
        fake = self.net.generator(self.noise(len(real), real.device))
        loss_d, logs = self.discriminator_loss(real, fake.detach())
        self.trainer.backward(loss_d, self.opt_d)
        # (2) Update G every d_steps batches: maximise log(D(G(z)))
        if (step + 1) % self.d_steps == 0:
            self._loss_g = self.generator_loss(fake)
            self.trainer.backward(self._loss_g, self.opt_g)
        return {key: value.detach() for key, value in logs.items()} | {
            "train/loss_g": self._loss_g.detach()
        }

    def generate(self, n: int, device: torch.device, seed: int = 0) -> torch.Tensor:
        """n images from fixed noise (the same every call), in [-1, 1]."""
        z = fixed_noise((n, self.net.latent), device, seed)
        return torch.cat([self.net.generator(chunk) for chunk in z.split(1000)])

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        real = torch.cat([x for x, _ in batches])
        if not len(real) or not self.fid:
            return {}
        data = self.trainer.data
        if self._features is None:  # a task evaluated without attach (tests)
            self._features = metrics.feature_network(data)
        real_f = self._features(data.to_uint8(real))
        fake_f = self._features(data.to_uint8(self.generate(len(real), real.device)))
        scores = {
            f"{split}/fid": metrics.fid(real_f, fake_f),
            f"{split}/kid": metrics.kid(real_f, fake_f),
        }
        return scores | ({"test/fid_floor": self._features.floor} if split == "test" else {})

    def examples(self, data: ImageData, n: int = 64) -> Logs:
        return {"images/samples": grid(data.to_uint8(self.generate(n, data.device)), 8)}


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """(||grad_x critic(x)||_2 - 1)^2 at random points x between real and fake images
    (Gulrajani et al. 2017, eq. 3)."""
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@TASKS.register("wgan_gp")
class WGANGP(GAN):
    """WGAN critic, 1-Lipschitz by a gradient penalty (WGAN-GP) or clipped weights (WGAN).

    WGAN-GP: gradient penalty 10, n_critic 5 (Gulrajani et al., 2017). The original WGAN:
    gp_weight 0, clip 0.01, n_critic 5 (Arjovsky et al., 2017).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        d_steps: Size = 5,
        gp_weight: NonNegative = 10.0,
        fid: bool = True,
        clip: NonNegative = 0.0,
    ) -> None:
        super().__init__(net, optimizer, d_steps, fid)
        if not gp_weight and not clip:
            raise DlpyError(
                "model.task.gp_weight and model.task.clip are both 0: nothing keeps the critic "
                "Lipschitz (gp_weight 10 is WGAN-GP, clip 0.01 the original WGAN)"
            )
        self.gp_weight = gp_weight
        self.clip = clip

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        wasserstein = self.net.discriminator(real).mean() - self.net.discriminator(fake).mean()
        # the critic maximises the Wasserstein estimate: minimise its negative (plus the penalty)
        loss = -wasserstein
        logs = {"train/wasserstein": wasserstein}
        if self.gp_weight:  # the clipped WGAN takes no penalty, and so no double backward
            gp = gradient_penalty(self.net.discriminator, real, fake)
            loss = loss + self.gp_weight * gp
            logs["train/gp"] = gp
        return loss, logs | {"train/loss_d": loss}

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -self.net.discriminator(fake).mean()

    def training_step(self, batch: Batch, step: int) -> Logs:
        logs = super().training_step(batch, step)
        if self.clip:
            # (3) Clip the critic's weights to [-c, c] after its step (Arjovsky et al., 2017,
            # Algorithm 1): a compact set of weights bounds its Lipschitz constant. The
            # generator's step leaves the critic as it was, so after the whole round is the same.
            with torch.no_grad():
                for p in self.net.discriminator.parameters():
                    p.clamp_(-self.clip, self.clip)
        return logs

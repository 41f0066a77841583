"""GANs: DCGAN's two-player BCE game and WGAN-GP's critic with a gradient penalty.

Each batch gives the discriminator (critic) one step on fresh real images; every d_steps-th
batch the generator takes a step too (WGAN-GP: n_critic = 5 critic steps per generator step).
Images are in [-1, 1] (the presets set dataset.scaling: symmetric) to match the tanh output.
Evaluation is FID and KID against the split's real images (dlpy/metrics.py), on the features of
a classifier trained once per data set before the first step, and the Inception Score from the
same classifier's softmax (model.task.fid=false: none of them, for smoke runs).
"""

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from dlpy import metrics
from dlpy.data.base import Batch
from dlpy.data.vision import ImageData
from dlpy.plots import grid
from dlpy.registry import TASKS
from dlpy.tasks.autoencoder import fixed_noise
from dlpy.tasks.base import Logs, OptimizerFactory, Task


@TASKS.register("gan")
class GAN(Task):
    """DCGAN: the discriminator tells real from generated (BCE); the generator learns to fool it."""

    optimizer_names = ("discriminator", "generator")  # configure_optimizers' order
    headline_metrics = ("test/fid", "test/is")

    def __init__(
        self, net: nn.Module, optimizer: OptimizerFactory, d_steps: int = 1, fid: bool = True
    ) -> None:
        super().__init__(optimizer)
        self.net = net
        self.d_steps = d_steps
        self.fid = fid  # evaluate FID, KID and IS (false: smoke runs skip the feature network)
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
        # -[log D(x) + log(1 - D(G(z)))]: BCE against the labels real = 1, fake = 0
        real_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        fake_loss = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        loss = real_loss + fake_loss
        return loss, {
            "train/loss_d": loss,
            "train/d_real": torch.sigmoid(d_real).mean(),
            "train/d_fake": torch.sigmoid(d_fake).mean(),
        }

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        d_fake = self.net.discriminator(fake)
        # the non-saturating loss: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))

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
        } | self.sample_scores(self._features.probabilities(fake_f), split)
        if split == "test":  # what real images score: FID's floor, the Inception Score's ceiling
            real_is = metrics.inception_score(self._features.probabilities(real_f))
            scores |= {"test/fid_floor": self._features.floor, "test/is_real": real_is}
        return scores

    def sample_scores(self, probabilities: torch.Tensor, split: str) -> dict[str, float]:
        """What the feature classifier's softmax over generate()'s images says: the Inception
        Score (Salimans et al., 2016); a class-conditional GAN adds whether the class is right."""
        return {f"{split}/is": metrics.inception_score(probabilities)}

    def examples(self, data: ImageData, n: int = 64) -> Logs:
        return {"images/samples": grid(data.to_uint8(self.generate(n, data.device)), 8)}

    def networks(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[nn.Module, list]]:
        """Each player with the arguments of its forward pass on one sample (`dlpy summary`)."""
        noise = torch.zeros(1, self.net.latent)
        return {
            "generator": (self.net.generator, [noise]),
            "discriminator": (self.net.discriminator, [x]),
        }


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
    """WGAN-GP: the critic estimates the Wasserstein distance, kept 1-Lipschitz by a gradient
    penalty (Gulrajani et al. 2017: n_critic 5, lambda 10)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        d_steps: int = 5,
        gp_weight: float = 10.0,
        fid: bool = True,
    ) -> None:
        super().__init__(net, optimizer, d_steps, fid)
        self.gp_weight = gp_weight

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        wasserstein = self.net.discriminator(real).mean() - self.net.discriminator(fake).mean()
        gp = gradient_penalty(self.net.discriminator, real, fake)
        # the critic maximises the Wasserstein estimate: minimise its negative plus the penalty
        return -wasserstein + self.gp_weight * gp, {
            "train/wasserstein": wasserstein,
            "train/gp": gp,
            "train/loss_d": -wasserstein + self.gp_weight * gp,
        }

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -self.net.discriminator(fake).mean()

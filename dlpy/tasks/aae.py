"""The adversarial autoencoder (Makhzani et al., 2015): an autoencoder whose codes a GAN pushes
towards a prior, here N(0, prior_std^2 I).

Each batch takes the paper's two phases (sec. 2): the reconstruction phase updates the encoder
and decoder on the reconstruction loss; the regularisation phase updates the discriminator to
tell draws of the prior (real) from the codes of images (fake), then the encoder, as the
generator, to fool it. Once the codes fill the prior, decoding prior draws gives new images.
Pixels are in [0, 1], as the autoencoder's (its preset sets dataset.scaling: unit).
"""

from typing import Literal

import torch
from torch import nn

from dlpy.data.base import Batch
from dlpy.data.vision import ImageData
from dlpy.errors import check_choice
from dlpy.plots import grid, labelled_rows
from dlpy.registry import TASKS
from dlpy.schema import Positive
from dlpy.tasks.autoencoder import RECONSTRUCTION, Reconstruction, first_images, fixed_noise, pixels
from dlpy.tasks.base import Logs, OptimizerFactory
from dlpy.tasks.gan import bce


@TASKS.register("aae")
class AdversarialAutoencoder(Reconstruction):
    """Adversarial autoencoder: reconstruct (BCE or MSE), and fit the codes to a Gaussian prior."""

    optimizer_names = ("autoencoder", "discriminator", "encoder")  # configure_optimizers' order

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        loss: Literal[tuple(RECONSTRUCTION)] = "bce",
        prior_std: Positive = 1.0,
    ) -> None:
        super().__init__(optimizer)
        check_choice("model.task.loss", loss, RECONSTRUCTION)
        self.net = net
        self.reconstruction = RECONSTRUCTION[loss]
        self.prior_std = prior_std

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimizer per phase: the encoder has two, as in the paper, one for each of its
        losses."""
        self.opt_ae = self.optimizer_factory(self.net.autoencoder_parameters())
        self.opt_d = self.optimizer_factory(self.net.discriminator.parameters())
        self.opt_g = self.optimizer_factory(self.net.encoder.parameters())
        return [self.opt_ae, self.opt_d, self.opt_g]

    def prior(self, n: int, device: torch.device, seed: int | None = None) -> torch.Tensor:
        """n draws of the prior p(z); fixed ones (the same every call) given a seed."""
        shape = (n, self.net.latent)
        z = torch.randn(shape, device=device) if seed is None else fixed_noise(shape, device, seed)
        return self.prior_std * z

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"recon": self.reconstruction(self.net(x), x)}

    def training_step(self, batch: Batch, step: int) -> Logs:
        x = batch[0]
        d = self.net.discriminator
        # (1) Reconstruction phase: update the encoder and the decoder to reconstruct x
        recon = self.terms(x)["recon"].mean()
        self.trainer.backward(recon, self.opt_ae)
        # (2) Regularisation phase, the discriminator: maximise log D(z') + log(1 - D(q(z|x))),
        # z' drawn from the prior; the codes are those of the encoder just updated
        codes = self.net.encode(x)
        real = d(self.prior(len(x), x.device))
        fake = d(codes.detach())
        loss_d = bce(real, 1.0) + bce(fake, 0.0)
        self.trainer.backward(loss_d, self.opt_d)
        # (3) Regularisation phase, the generator: the encoder maximises log D(q(z|x))
        # (the non-saturating loss of the GAN)
        loss_g = bce(d(codes), 1.0)
        self.trainer.backward(loss_g, self.opt_g)
        return {
            "train/recon": recon.detach(),
            "train/loss_d": loss_d.detach(),
            "train/loss_g": loss_g.detach(),
            "train/d_prior": torch.sigmoid(real.detach()).mean(),
            "train/d_codes": torch.sigmoid(fake.detach()).mean(),
        }

    def examples(self, data: ImageData, n: int = 64) -> Logs:
        """n images decoded from fixed draws of the prior, and labelled rows of 16 validation
        images above their reconstructions."""
        x, _ = first_images(data, 16)
        rows = [("original", data.to_uint8(x)), ("reconstruction", pixels(self.net(x)))]
        samples = pixels(self.net.decode(self.prior(n, data.device, seed=0)))
        return {"images/samples": grid(samples, 8), "images/reconstructions": labelled_rows(rows)}

"""Autoencoders and VAEs: reconstruction losses, the ELBO, and the images worth looking at.

Both expect pixels in [0, 1] (the model presets set dataset.scaling: unit): the decoder's
logits are Bernoulli parameters, and BCE summed over pixels is a negative log-likelihood in nats.
"""

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from dlpy.data.base import Batch
from dlpy.data.vision import ImageData
from dlpy.errors import check_choice
from dlpy.plots import grid, labelled_rows
from dlpy.registry import TASKS
from dlpy.tasks.base import Logs, OptimizerFactory, Task

RECONSTRUCTION = {  # summed over pixels, one number per image
    "bce": lambda logits, x: (
        F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    ),
    "mse": lambda logits, x: (
        F.mse_loss(torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1)
    ),
}


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, in closed form: see Appendix B of the VAE paper."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def fixed_noise(shape: tuple[int, ...], device: torch.device, seed: int = 0) -> torch.Tensor:
    """The same noise every call, without touching the global RNG (so resumed runs stay exact)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)


def pixels(logits: torch.Tensor) -> torch.Tensor:
    """Decoder logits as uint8 pixels: sigmoid gives the Bernoulli means in [0, 1]."""
    return (torch.sigmoid(logits.float()) * 255).round().to(torch.uint8)


def first_images(data: ImageData, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n validation images (else test, when there is no validation split), and labels."""
    split = data.val if len(data.val) else data.test
    return data.normalize(split.x[:n]), split.y[:n]


class Reconstruction(Task):
    """Shared by both tasks: one optimizer over the network, sums of per-image terms to evaluate."""

    headline_metrics = ("test/recon",)
    scaling = "unit"  # the decoder's sigmoid gives Bernoulli means: the pixels must be in [0, 1]

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss terms of each image of a batch: {"recon": (n,) tensor, ...}."""
        raise NotImplementedError(f"{type(self).__name__} must define terms")

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        sums = {}
        n = 0
        for batch in batches:
            for key, per_image in self.terms(*batch).items():
                sums[key] = sums.get(key, 0) + per_image.float().sum()
            n += len(batch[0])
        return {f"{split}/{key}": float(total / n) for key, total in sums.items()} if n else {}


@TASKS.register("autoencoder")
class Autoencoder(Reconstruction):
    """Reconstruct the input (BCE or MSE per image); denoising (noise_std > 0) corrupts only the
    input (Chollet 8.4's denoising autoencoder)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        loss: str = "bce",
        noise_std: float = 0.0,
    ) -> None:
        super().__init__(optimizer)
        check_choice("model.task.loss", loss, RECONSTRUCTION)
        self.net = net
        self.reconstruction = RECONSTRUCTION[loss]
        self.noise_std = noise_std

    def corrupt(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x plus Gaussian noise, clamped to the pixel range; x itself when not denoising."""
        if not self.noise_std:
            return x
        noise = torch.randn_like(x) if noise is None else noise
        return (x + self.noise_std * noise).clamp(0, 1)

    def terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None, noise: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        return {"recon": self.reconstruction(self.net(self.corrupt(x, noise)), x)}

    def training_step(self, batch: Batch, step: int) -> Logs:
        loss = self.terms(*batch)["recon"].mean()
        self.trainer.backward(loss, self.optimizer)
        return {"train/recon": loss.detach()}

    def examples(self, data: ImageData, n: int = 16) -> Logs:
        """Labelled rows of inputs (noisy ones when denoising) above their reconstructions."""
        x, _ = first_images(data, n)
        noisy = self.corrupt(x, fixed_noise(x.shape, x.device))
        reconstructed = pixels(self.net(noisy))
        inputs = "noisy input" if self.noise_std else "original"
        rows = [(inputs, data.to_uint8(noisy)), ("reconstruction", reconstructed)]
        images = {"images/reconstructions": labelled_rows(rows)}
        if self.noise_std:
            rows = [("original", data.to_uint8(x)), *rows[:1], ("denoised", reconstructed)]
            images["images/denoised"] = labelled_rows(rows)
        return images


@TASKS.register("vae")
class VAE(Reconstruction):
    """Negative ELBO: Bernoulli reconstruction (BCE summed over pixels) + beta * KL to the
    N(0, I) prior (Kingma and Welling 2014; beta-VAE: Higgins et al. 2017)."""

    headline_metrics = ("test/neg_elbo",)

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory, beta: float = 1.0) -> None:
        super().__init__(optimizer)
        self.net = net
        self.beta = beta

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits, mu, logvar = self.net(x, y)
        recon = RECONSTRUCTION["bce"](logits, x)
        kl = kl_divergence(mu.float(), logvar.float())
        return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}  # the ELBO itself is beta-free

    def training_step(self, batch: Batch, step: int) -> Logs:
        terms = {key: value.mean() for key, value in self.terms(*batch).items()}
        self.trainer.backward(terms["recon"] + self.beta * terms["kl"], self.optimizer)
        return {
            "train/recon": terms["recon"].detach(),
            "train/kl": terms["kl"].detach(),
            "train/neg_elbo": terms["neg_elbo"].detach(),
        }

    def examples(self, data: ImageData, n: int = 64) -> Logs:
        """n reconstructions (labelled rows), n samples from the prior (fixed noise),
        interpolations; for a 2-D latent space also the book's manifold."""
        net = self.net
        device = data.device
        x, y = first_images(data, n)
        rows = [("original", data.to_uint8(x)), ("reconstruction", pixels(net(x, y)[0]))]
        images = {"images/reconstructions": labelled_rows(rows)}
        x, y = first_images(data, 16)  # the interpolations: between 8 pairs of them, whatever n
        # a conditional VAE draws each row of 8 from one class
        z = fixed_noise((n, net.latent), device)
        labels = torch.arange(n, device=device) // 8 % max(net.labels, 1)
        images["images/samples"] = grid(pixels(net.decode(z, labels if net.labels else None)), 8)
        # the straight line in latent space between pairs of test images' means, 10 steps
        mu, _ = net.encode(x, y)
        t = torch.linspace(0, 1, 10, device=device).view(1, -1, 1)
        line = (mu[0::2, None] * (1 - t) + mu[1::2, None] * t).flatten(0, 1)
        images["images/interpolation"] = grid(
            pixels(net.decode(line, y[0::2].repeat_interleave(10) if net.labels else None)), 10
        )
        if net.latent == 2:  # the book's manifold: decode a grid of z over [-3, 3]^2
            axis = torch.linspace(-3, 3, 15, device=device)
            zs = torch.stack(torch.meshgrid(axis, axis.flip(0), indexing="xy"), -1).view(-1, 2)
            images["images/manifold"] = grid(
                pixels(net.decode(zs, labels[:1].expand(225) if net.labels else None)), 15
            )
        return images

"""Autoencoders and VAEs: reconstruction losses, the ELBO, and the images worth looking at.

Both expect pixels in [0, 1] (the model presets set dataset.scaling: unit): the decoder's
logits are Bernoulli parameters, and BCE summed over pixels is a negative log-likelihood in nats.
"""

import torch
import torch.nn.functional as F

from dlpy.errors import DlpyError
from dlpy.plots import grid
from dlpy.registry import TASKS
from dlpy.tasks.base import Task

RECONSTRUCTION = {  # summed over pixels, one number per image
    "bce": lambda logits, x: (
        F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    ),
    "mse": lambda logits, x: (
        F.mse_loss(torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1)
    ),
}


def kl_divergence(mu, logvar):
    """KL(N(mu, sigma^2) || N(0, I)) per sample, in closed form: see Appendix B of the VAE paper."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def fixed_noise(shape, device, seed=0):
    """The same noise every call, without touching the global RNG (so resumed runs stay exact)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)


def pixels(logits):
    return (torch.sigmoid(logits.float()) * 255).round().to(torch.uint8)


def first_images(data, n):
    split = data.val if len(data.val) else data.test
    return data.normalize(split.x[:n]), split.y[:n]


class Reconstruction(Task):
    """Shared by both tasks: one optimizer over the network, sums of per-image terms for evaluation."""

    def configure_optimizers(self):
        self.optimizer = self.optimizer_factory(self.net.parameters())
        return [self.optimizer]

    def evaluate(self, batches, split):
        sums, n = {}, 0
        for batch in batches:
            for key, per_image in self.terms(*batch).items():
                sums[key] = sums.get(key, 0) + per_image.float().sum()
            n += len(batch[0])
        return {f"{split}/{key}": float(total / n) for key, total in sums.items()} if n else {}


@TASKS.register("autoencoder")
class Autoencoder(Reconstruction):
    """Reconstruct the input (BCE or MSE per image); denoising (noise_std > 0) corrupts only the input."""

    def __init__(self, net, optimizer, loss="bce", noise_std=0.0):
        super().__init__(optimizer)
        if loss not in RECONSTRUCTION:
            raise DlpyError(
                f"model.task.loss: unknown {loss!r}; known: {', '.join(RECONSTRUCTION)}"
            )
        self.net, self.reconstruction, self.noise_std = net, RECONSTRUCTION[loss], noise_std

    def corrupt(self, x, noise=None):
        if not self.noise_std:
            return x
        noise = torch.randn_like(x) if noise is None else noise
        return (x + self.noise_std * noise).clamp(0, 1)

    def terms(self, x, y=None, noise=None):
        return {"recon": self.reconstruction(self.net(self.corrupt(x, noise)), x)}

    def training_step(self, batch, step):
        loss = self.terms(*batch)["recon"].mean()
        self.trainer.backward(loss, self.optimizer)
        return {"loss/recon": loss.detach()}

    def examples(self, data, n=16):
        """Rows of inputs (noisy ones when denoising) above their reconstructions."""
        x, _ = first_images(data, n)
        noisy = self.corrupt(x, fixed_noise(x.shape, x.device))
        images = {
            "images/reconstructions": stacked_rows(data.to_uint8(noisy), pixels(self.net(noisy)))
        }
        if self.noise_std:
            images["images/denoised"] = stacked_rows(
                data.to_uint8(x), data.to_uint8(noisy), pixels(self.net(noisy))
            )
        return images


def stacked_rows(*sets, columns=16):
    """Image sets of equal length as bands: each row of `columns` images of the first set above the same
    images of the others (the last band padded with empty cells), so any n reads as pairs of rows."""
    pad = -len(sets[0]) % columns
    sets = [torch.cat([images, images.new_zeros((pad, *images.shape[1:]))]) for images in sets]
    bands = [images[i : i + columns] for i in range(0, len(sets[0]), columns) for images in sets]
    return grid(torch.cat(bands), columns)


@TASKS.register("vae")
class VAE(Reconstruction):
    """Negative ELBO: Bernoulli reconstruction (BCE summed over pixels) + beta * KL to the N(0, I) prior."""

    def __init__(self, net, optimizer, beta=1.0):
        super().__init__(optimizer)
        self.net, self.beta = net, beta

    def terms(self, x, y=None):
        logits, mu, logvar = self.net(x, y)
        recon = RECONSTRUCTION["bce"](logits, x)
        kl = kl_divergence(mu.float(), logvar.float())
        return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}  # the ELBO itself is beta-free

    def training_step(self, batch, step):
        terms = {key: value.mean() for key, value in self.terms(*batch).items()}
        self.trainer.backward(terms["recon"] + self.beta * terms["kl"], self.optimizer)
        return {
            "loss/recon": terms["recon"].detach(),
            "loss/kl": terms["kl"].detach(),
            "train/neg_elbo": terms["neg_elbo"].detach(),
        }

    def examples(self, data, n=64):
        """Reconstructions, n samples from the prior (fixed noise), interpolations; the manifold for 2-D z."""
        net, device = self.net, data.device
        x, y = first_images(data, 16)
        images = {
            "images/reconstructions": grid(torch.cat([data.to_uint8(x), pixels(net(x, y)[0])]), 16)
        }
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

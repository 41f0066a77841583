"""Autoencoders and VAEs: the mathematics against oracles, and what a user gets to see."""
import json

import pytest
import torch
from torch.distributions import Normal, kl_divergence as torch_kl

from dlpy.tasks.autoencoder import RECONSTRUCTION, kl_divergence
from dlpy.train import build_data, build_task, train


def test_kl_matches_the_closed_form_of_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    expected = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), expected, atol=1e-5)
    assert torch.equal(kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))


def test_bce_reconstruction_is_the_bernoulli_negative_log_likelihood_in_nats():
    x = torch.tensor([[[[1.0, 0.0]]]])
    logits = torch.tensor([[[[0.0, 2.0]]]])
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum()
    assert torch.allclose(RECONSTRUCTION["bce"](logits, x), expected.view(1))


@pytest.mark.parametrize("model", ["vae", "conv_vae", "cvae"])
def test_vae_examples_are_uint8_grids_and_the_manifold_appears_for_a_2d_latent(model, make_cfg):
    cfg = make_cfg(f"model={model}", "model.latent=2")
    task, data = build_task(cfg), build_data(cfg)
    assert data.normalize(data.train.x).max() <= 1 and data.normalize(data.train.x).min() >= 0  # scaling: unit
    with torch.inference_mode():
        images = task.eval().examples(data, n=24)
    assert {"images/reconstructions", "images/samples", "images/interpolation", "images/manifold"} <= images.keys()
    for image in images.values():
        assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    # 24 samples in rows of 8 cells of 28 px with 2 px padding: 3 rows, 8 columns
    assert images["images/samples"].shape[1:] == (3 * 30 + 2, 8 * 30 + 2)


def test_denoising_corrupts_the_input_and_keeps_the_clean_target(make_cfg):
    task = build_task(make_cfg("model=denoising_autoencoder"))
    x = torch.rand(4, 1, 28, 28)
    noisy = task.corrupt(x)
    assert not torch.equal(noisy, x) and noisy.min() >= 0 and noisy.max() <= 1
    clean = task.terms(x, noise=torch.zeros_like(x))["recon"]
    assert torch.allclose(clean, RECONSTRUCTION["bce"](task.net(x), x))


def test_vae_training_writes_the_elbo_and_its_parts(make_cfg, tmp_path):
    train(make_cfg("model=vae", "trainer.max_steps=3"), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/neg_elbo"] == pytest.approx(metrics["test/recon"] + metrics["test/kl"], rel=1e-5)
    assert metrics["test/kl"] >= 0 and metrics["test/recon"] > 0
    names = {p.name for p in (tmp_path / "images").iterdir()}
    assert {"samples_epoch001.png", "reconstructions_epoch001.png", "interpolation_epoch001.png"} <= names

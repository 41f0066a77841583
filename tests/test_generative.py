"""Autoencoders and VAEs: the mathematics against oracles, and what a user gets to see."""

import json

import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from dlpy.build import build_data, build_task
from dlpy.errors import DlpyError
from dlpy.tasks.autoencoder import RECONSTRUCTION, kl_divergence
from dlpy.train import train


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


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vae", "conv_vae", "cvae"])
def test_vae_examples_are_uint8_grids_and_the_manifold_appears_for_a_2d_latent(model, make_cfg):
    cfg = make_cfg(f"model={model}", "model.latent=2")
    task, data = build_task(cfg), build_data(cfg)
    assert (
        data.normalize(data.train.x).max() <= 1 and data.normalize(data.train.x).min() >= 0
    )  # scaling: unit
    with torch.inference_mode():
        images = task.eval().examples(data, n=24)
    assert {
        "images/reconstructions",
        "images/samples",
        "images/interpolation",
        "images/manifold",
    } <= images.keys()
    for image in images.values():
        assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    # 24 samples in rows of 8 cells of 28 px drawn x3 with 2 px padding: 3 rows, 8 columns
    assert images["images/samples"].shape[1:] == (3 * 86 + 2, 8 * 86 + 2)
    # n=24 reconstructions: 2 bands of 16 columns, an original row above a reconstruction row
    assert images["images/reconstructions"].shape[1] == 4 * 86 + 2
    margin = images["images/reconstructions"].shape[2] - 16 * 86 - 2
    labels = images["images/reconstructions"][:, :, :margin]
    assert margin > 40 and (labels < 200).any()  # the rows' names, written in the margin


def test_autoencoder_examples_wrap_inputs_and_reconstructions_in_bands_of_16(make_cfg):
    cfg = make_cfg("model=denoising_autoencoder")
    task, data = build_task(cfg), build_data(cfg)
    with torch.inference_mode():
        images = task.eval().examples(data, n=40)
    # 40 images -> 3 bands of 16 columns (the last shorter): 2 rows each for reconstructions, 3
    # for denoised; 28-px cells drawn x3 (nearest) with 2 px between them, names on the left
    assert images["images/reconstructions"].shape[1] == 6 * 86 + 2
    assert images["images/denoised"].shape[1] == 9 * 86 + 2
    first_input = data.to_uint8(data.normalize(data.val.x[:1]))[0, 0]
    left = images["images/denoised"].shape[2] - 16 * 86
    top_left = images["images/denoised"][0, 2:86:3, left : left + 84 : 3]
    assert torch.equal(top_left, first_input)  # the clean first image, in the first band's top row


def test_denoising_corrupts_the_input_and_keeps_the_clean_target(make_cfg):
    task = build_task(make_cfg("model=denoising_autoencoder"))
    x = torch.rand(4, 1, 28, 28)
    noisy = task.corrupt(x)
    assert not torch.equal(noisy, x) and noisy.min() >= 0 and noisy.max() <= 1
    clean = task.terms(x, noise=torch.zeros_like(x))["recon"]
    assert torch.allclose(clean, RECONSTRUCTION["bce"](task.net(x), x))


@pytest.mark.slow
def test_vae_training_writes_the_elbo_and_its_parts(make_cfg, tmp_path):
    train(make_cfg("model=vae", "trainer.max_steps=3"), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/neg_elbo"] == pytest.approx(
        metrics["test/recon"] + metrics["test/kl"], rel=1e-5
    )
    assert metrics["test/kl"] >= 0 and metrics["test/recon"] > 0
    names = {p.name for p in (tmp_path / "images").iterdir()}
    assert {
        "samples_epoch001.png",
        "reconstructions_epoch001.png",
        "interpolation_epoch001.png",
    } <= names


# -- GANs ------------------------------------------------------------------------------------------


def test_gradient_penalty_of_a_linear_critic_is_the_norm_of_its_weights_minus_one():
    from dlpy.tasks.gan import gradient_penalty

    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        critic[1].weight.copy_(
            torch.tensor([[3.0, 0.0, 4.0, 0.0]])
        )  # the gradient is w everywhere: |w| = 5
    real, fake = torch.rand(6, 1, 2, 2), torch.rand(6, 1, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((5 - 1) ** 2)


def test_gradient_penalty_of_a_quadratic_critic_by_hand():
    from dlpy.tasks.gan import gradient_penalty

    critic = lambda x: (x**2).flatten(1).sum(1)  # noqa: E731  gradient 2x, norm 2|x|
    real, fake = torch.ones(3, 1, 1, 2), torch.zeros(3, 1, 1, 2)
    torch.manual_seed(0)
    alpha = torch.rand(3, 1, 1, 1)  # what gradient_penalty draws after the same seed
    expected = ((2 * alpha.flatten() * 2**0.5 - 1) ** 2).mean()
    torch.manual_seed(0)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.slow
def test_fid_of_identical_sets_is_zero_and_of_two_gaussians_the_closed_form():
    from dlpy.metrics import fid, frechet_distance, kid

    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 8, generator=g)
    assert abs(fid(a, a)) < 1e-6
    # KID is unbiased over random subsets: zero in expectation for one distribution, not exactly
    assert abs(kid(a, a)) < 0.05 * kid(a, a + 0.5)
    # diagonal covariances: FID = |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2
    mu1, mu2 = (
        torch.zeros(3, dtype=torch.float64),
        torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64),
    )
    s1, s2 = (
        torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64),
        torch.tensor([4.0, 4.0, 1.0], dtype=torch.float64),
    )
    exact = frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2))
    assert exact == pytest.approx(5 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2)
    x = mu1 + s1.sqrt() * torch.randn(100_000, 3, generator=g, dtype=torch.float64)
    y = mu2 + s2.sqrt() * torch.randn(100_000, 3, generator=g, dtype=torch.float64)
    assert fid(x, y) == pytest.approx(exact, rel=0.02)
    assert kid(x[:2000], y[:2000]) > 10 * abs(kid(x[:2000], x[2000:4000]))


def ready(task, data):
    """The task with a CPU trainer and its optimizers, as Trainer.fit leaves it before a step."""
    from dlpy.trainer import Trainer

    trainer = Trainer(device="cpu")
    trainer.setup(task, data)
    trainer.optimizers = task.configure_optimizers()
    trainer.schedulers = [None] * len(trainer.optimizers)
    return task


def changed_parts(task, before):
    """The networks (generator, encoder, ...) whose weights differ from `before`."""
    return {k.split(".")[1] for k, v in task.state_dict().items() if not torch.equal(v, before[k])}


# Small networks where the preset's own size adds nothing to what a round tests; the wgan preset's
# round is the clipping test's below.
SMALL = {
    "fc_gan": ["model.generator_hidden=[32,64]", "model.discriminator_hidden=[32]"],
    "lsgan": ["model.width=8"],
}


@pytest.mark.parametrize(
    "model", ["dcgan", "fc_gan", "lsgan", pytest.param("wgan_gp", marks=pytest.mark.slow)]
)
def test_one_generator_round_updates_both_players_with_finite_losses(model, make_cfg):
    cfg = make_cfg(f"model={model}", "model.task.fid=false", *SMALL.get(model, []))
    data = build_data(cfg)
    task = ready(build_task(cfg), data)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    batches = data.train_batches()
    for step in range(task.d_steps):  # the generator steps on the last of them
        logs = task.training_step(next(batches), step)
    assert all(torch.isfinite(v) for v in logs.values())
    assert changed_parts(task, before) == {"generator", "discriminator"}


def test_the_gan_variants_are_options_of_the_two_tasks(make_cfg):
    from dlpy.models.gan import DenseGAN
    from dlpy.tasks.gan import GAN, WGANGP, least_squares

    lsgan, wgan, fc = (build_task(make_cfg(f"model={m}")) for m in ("lsgan", "wgan", "fc_gan"))
    assert type(lsgan) is GAN and lsgan.adversarial.loss is least_squares
    opt_d, opt_g = lsgan.configure_optimizers()  # Atienza's generator at half D's rate
    assert (opt_d.param_groups[0]["lr"], opt_g.param_groups[0]["lr"]) == (2e-4, 1e-4)
    assert type(wgan) is WGANGP and (wgan.gp_weight, wgan.clip, wgan.d_steps) == (0, 0.01, 5)
    assert isinstance(fc.net, DenseGAN) and not any(
        isinstance(m, torch.nn.Conv2d) for m in fc.net.modules()
    )
    # the generator maps noise to 28x28 images in [-1, 1]; the discriminator gives one score each
    images = fc.net.eval()(torch.randn(3, 100))
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    assert fc.net.discriminator(images).shape == (3,)


def test_the_lsgan_loss_is_half_the_mean_squared_distance_to_the_labels():
    from dlpy.tasks.gan import GAN

    net = torch.nn.Module()
    net.discriminator = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Flatten(0))
    with torch.no_grad():
        net.discriminator[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
        net.discriminator[0].bias.zero_()
    task = GAN(net, torch.optim.SGD, loss="lsgan")
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # scores 1 and 2
    fake = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # scores 0 and 3
    # Mao et al. (2017), eq. 9 with a = 0, b = c = 1:
    # D: 1/2 mean((D(x) - 1)^2) + 1/2 mean(D(G(z))^2) = 1/2 (0 + 1)/2 + 1/2 (0 + 9)/2 = 2.5
    loss_d, logs = task.discriminator_loss(real, fake)
    assert loss_d.item() == pytest.approx(2.5)
    assert logs["train/d_real"].item() == pytest.approx(1.5)  # the raw scores, not sigmoids
    # G: 1/2 mean((D(G(z)) - 1)^2) = 1/2 (1 + 4)/2 = 1.25
    assert task.generator_loss(fake).item() == pytest.approx(1.25)
    # the same network under BCE: -[log s(1) + log s(2)]/2 - [log(1 - s(0)) + log(1 - s(3))]/2
    s = torch.sigmoid
    bce = -(s(torch.tensor(1.0)).log() + s(torch.tensor(2.0)).log()) / 2
    bce -= ((1 - s(torch.tensor(0.0))).log() + (1 - s(torch.tensor(3.0))).log()) / 2
    assert GAN(net, torch.optim.SGD).discriminator_loss(real, fake)[0].item() == pytest.approx(
        bce.item()
    )


def test_weight_clipping_bounds_every_critic_parameter_after_a_critic_step(make_cfg):
    cfg = make_cfg("model=wgan", "model.task.fid=false", "model.width=8")
    data = build_data(cfg)
    task = ready(build_task(cfg), data)
    critic = list(task.net.discriminator.parameters())
    with torch.no_grad():  # start far outside [-c, c], so that only the clipping can bring it in
        for p in critic:
            p.mul_(100).add_(0.5)
    generator = [p.clone() for p in task.net.generator.parameters()]
    batches = data.train_batches()
    task.training_step(next(batches), 0)  # a critic step alone (n_critic 5)
    assert all(p.abs().max() <= 0.01 for p in critic)
    assert all((p.abs() == 0.01).any() for p in critic)  # every tensor had weights clipped
    assert all(map(torch.equal, generator, task.net.generator.parameters()))  # the critic's alone
    for step in range(1, task.d_steps):  # ... and after the round that steps the generator too
        logs = task.training_step(next(batches), step)
    assert all(p.abs().max() <= 0.01 for p in critic)
    assert not all(map(torch.equal, generator, task.net.generator.parameters()))
    assert all(torch.isfinite(v) for v in logs.values()) and "train/gp" not in logs


def test_a_critic_with_neither_penalty_nor_clipping_is_refused():
    from dlpy.tasks.gan import WGANGP

    with pytest.raises(DlpyError, match="model.task.gp_weight and model.task.clip"):
        WGANGP(torch.nn.Module(), torch.optim.SGD, gp_weight=0.0, clip=0.0)


def test_one_aae_step_trains_the_autoencoder_and_the_code_discriminator(make_cfg):
    cfg = make_cfg("model=aae", "model.hidden=[64,32]", "model.discriminator_hidden=[32]")
    data = build_data(cfg)
    task = ready(build_task(cfg), data)
    assert task.optimizer_names == ("autoencoder", "discriminator", "encoder")
    x, _ = next(data.train_batches())
    before = {k: v.clone() for k, v in task.state_dict().items()}
    d_before = task.net.discriminator(task.net.encode(x)).detach()
    logs = task.training_step((x, None), 0)
    assert {"train/recon", "train/loss_d", "train/loss_g"} <= logs.keys()
    assert all(torch.isfinite(v) for v in logs.values())
    assert changed_parts(task, before) == {"encoder", "decoder", "discriminator"}
    assert not torch.equal(task.net.discriminator(task.net.encode(x)), d_before)
    # the encoder took two steps, one per loss: each optimizer holds moments for it
    encoder = list(task.net.encoder.parameters())
    assert all(p in task.opt_ae.state and p in task.opt_g.state for p in encoder)
    assert not any(p in task.opt_g.state for p in task.net.decoder.parameters())


def test_aae_samples_decode_fixed_draws_of_the_prior(make_cfg, tmp_path):
    cfg = make_cfg("model=aae", "model.hidden=[64,32]", "model.discriminator_hidden=[32]")
    cfg.model.task.prior_std = 2.0
    task, data = build_task(cfg), build_data(cfg)
    z = task.prior(5, data.device, seed=0)
    assert torch.equal(z, task.prior(5, data.device, seed=0))
    assert torch.allclose(z, 2.0 * torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        images = task.eval().examples(data, n=16)
        scores = task.evaluate(data.eval_batches("val"), "val")
    assert set(images) == {"images/samples", "images/reconstructions"}
    assert images["images/samples"].shape[1:] == (2 * 86 + 2, 8 * 86 + 2)  # 16 in rows of 8
    assert set(scores) == {"val/recon"} and scores["val/recon"] > 0


@pytest.mark.slow
def test_gan_run_reports_fid_kid_and_the_floor(make_cfg, tmp_path):
    train(make_cfg("model=dcgan", "trainer.max_steps=2", "trainer.limit_eval_batches=0"), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/fid"] > metrics["test/fid_floor"] >= 0 and metrics["test/kid"] > 0
    assert (tmp_path / "images" / "samples_epoch001.png").is_file()


def test_the_fid_network_is_ready_before_the_first_step_and_fid_false_skips_it(
    make_cfg, tmp_path, monkeypatch
):
    from dlpy import metrics as fid_metrics
    from dlpy.build import build_trainer
    from dlpy.trainer import Trainer

    order = []

    def one_epoch(trainer):
        order.append("epoch")
        trainer.epoch += 1
        trainer.should_stop = True

    monkeypatch.setattr(fid_metrics, "feature_network", lambda data: order.append("fid"))
    monkeypatch.setattr(Trainer, "run_epoch", one_epoch)
    monkeypatch.setattr(Trainer, "evaluate", lambda trainer, split: {})
    cfg = make_cfg("model=dcgan", "~logger", "~callbacks.image_files")
    build_trainer(cfg, tmp_path / "order").fit(build_task(cfg), build_data(cfg))
    assert order == ["fid", "epoch"]  # before the first epoch's bar: outside its time

    monkeypatch.undo()
    monkeypatch.setattr(fid_metrics, "feature_network", lambda data: pytest.fail("trained FID"))
    cfg = make_cfg("model=dcgan", "model.task.fid=false", "trainer.max_steps=2")
    train(cfg, tmp_path / "nofid")
    metrics = json.loads((tmp_path / "nofid" / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert not [key for key in metrics if "fid" in key or "kid" in key]

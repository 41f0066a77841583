"""Every model preset on both image shapes, ResNet depth rules, parameter counts as an oracle."""

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import SMALL_MODELS, presets
from torch import nn

from dlpy import CONF_DIR
from dlpy.build import build_task
from dlpy.errors import DlpyError
from dlpy.io import load_checkpoint
from dlpy.models.layers import make_activation
from dlpy.models.resnet import BasicBlock, PreActBottleneck
from dlpy.train import train

# (dataset preset, channels, image size): Fashion-MNIST's 1x28x28 and CIFAR-10's 3x32x32
SHAPES = [("fashion_mnist", 1, 28), ("cifar10", 3, 32)]
# Agents read an environment's observations, not images: they are tested on each environment
# preset below.
AGENTS = {"reinforce"}
# Pretrained weights must sit in torch's hub cache first: tests/test_pretrained.py puts them there.
PRETRAINED = {"pretrained"}
CASES = [
    (model, *shape)
    for model in presets("model")
    if model not in AGENTS | PRETRAINED
    for shape in SHAPES
]
ENVIRONMENTS = ["cartpole", "acrobot", "mountain_car"]
# GANs whose generator takes a code beside the noise (dlpy/tasks/conditional_gan.py)
CODED_GANS = ("cgan", "acgan", "infogan")


def build_net(make_cfg, *overrides):
    torch.manual_seed(0)
    return build_task(make_cfg(*overrides)).net


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "dataset", "channels", "size"), CASES, ids=[f"{m}-{d}" for m, d, _, _ in CASES]
)
def test_every_model_maps_a_batch_to_finite_outputs_of_its_task(
    model, dataset, channels, size, make_cfg
):
    cfg = make_cfg(f"model={model}", f"dataset={dataset}", *SMALL_MODELS.get(model, []))
    assert (cfg.dataset.channels, cfg.dataset.image_size) == (channels, size)
    torch.manual_seed(0)
    task = build_task(cfg)
    net = task.net.eval()
    x = torch.rand(2, channels, size, size)
    y = torch.tensor([0, 1])
    with torch.no_grad():
        if cfg.model.task.name in (
            "classification",
            "char_lm",
        ):  # class logits (a character model's: of the next byte)
            out, expected = net(x), (2, cfg.dataset.num_classes)
        elif cfg.model.task.name == "multi_output":  # each head's logits, extra inputs one-hot
            heads = build_task(cfg).eval().outputs(x, y)
            assert {k: v.shape for k, v in heads.items()} == {
                name: (2, size) for name, size in cfg.model.heads.items()
            }
            for logits in heads.values():
                assert torch.isfinite(logits).all() and not torch.equal(logits[0], logits[1])
            out, expected = heads["class"], (2, cfg.dataset.num_classes)
        elif cfg.model.task.name == "siamese":  # one match logit per pair, in either order
            torch.testing.assert_close(net(x, x.flip(0)), net(x.flip(0), x))
            out, expected = net(x, x), (2,)
        elif (
            cfg.model.task.name == "vae"
        ):  # Bernoulli logits of the image, the posterior's mean and log-variance
            out, mu, logvar = net(x, y)
            expected = x.shape
            assert mu.shape == logvar.shape == (2, cfg.model.latent)
        elif cfg.model.task.name in (
            "gan",
            "wgan_gp",
        ):  # noise -> images in [-1, 1]; images -> one score each
            out, expected = net(torch.randn(2, cfg.model.latent)), x.shape
            assert out.abs().max() <= 1 and net.discriminator(out).shape == (2,)
        elif cfg.model.task.name == "aae":  # reconstructs; its discriminator scores the codes
            out, expected = net(x), x.shape
            scores = net.discriminator(net.encode(x))
            assert scores.shape == (2,) and torch.isfinite(scores).all()
        elif cfg.model.task.name in CODED_GANS:  # noise and a class or codes -> images
            code = task.fixed_code(2, "cpu")  # two classes, or two categories
            out, expected = net(torch.randn(2, cfg.model.latent), code), x.shape
            # cGAN's discriminator is told the class; ACGAN's and InfoGAN's also classify
            if cfg.model.task.name == "cgan":
                score, auxiliary = net.discriminator(out, code), []
            else:
                score, *auxiliary = net.discriminator(out)
            assert out.abs().max() <= 1 and score.shape == (2,)
            assert all(a.shape == (2, code.shape[1]) and torch.isfinite(a).all() for a in auxiliary)
        else:  # an autoencoder reconstructs the image (as logits)
            out, expected = net(x), x.shape
    assert out.shape == expected
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not torch.equal(out[0], out[1]), "the output ignores the input"


@pytest.mark.parametrize("model", sorted(AGENTS))
@pytest.mark.parametrize("dataset", ENVIRONMENTS)
def test_every_agent_maps_observations_to_action_logits_and_values(model, dataset, make_cfg):
    cfg = make_cfg(f"model={model}", f"dataset={dataset}")
    torch.manual_seed(0)
    net = build_task(cfg).net.eval()
    obs = torch.randn(2, cfg.dataset.num_features)
    with torch.no_grad():
        logits, values = net(obs), net.value(obs)
    assert logits.shape == (2, cfg.dataset.num_actions) and values.shape == (2,)
    assert torch.isfinite(logits).all() and torch.isfinite(values).all()
    assert not torch.equal(values[0], values[1]), "the value ignores the observation"
    # the policy starts close to uniform (a small last layer), so that every action gets tried
    assert (logits.softmax(-1) - 1 / cfg.dataset.num_actions).abs().max() < 0.05


def test_the_agents_and_environments_are_real_presets():
    assert AGENTS <= set(presets("model")) and set(ENVIRONMENTS) <= set(presets("dataset"))


def test_the_shrunk_presets_are_real_presets():
    assert set(SMALL_MODELS) <= set(presets("model"))


@pytest.mark.parametrize("depth", [20, 56])
def test_resnet_v1_depth_gives_3n_basic_blocks(depth, make_cfg):
    net = build_net(
        make_cfg, "model=resnet", "dataset=cifar10", f"model.depth={depth}", "model.version=1"
    )
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 3 * (depth - 2) // 6
    assert not any(isinstance(m, PreActBottleneck) for m in net.modules())
    # depth counts the weighted layers on the main path: stem conv, 2 convs per block, the fc
    main_convs = 1 + 2 * len(blocks)
    assert main_convs + 1 == depth


def test_resnet_v1_depth_not_6n_plus_2_is_refused(make_cfg):
    with pytest.raises(DlpyError, match="model.depth") as err:
        build_net(make_cfg, "model=resnet", "model.depth=21", "model.version=1")
    assert "21" in str(err.value)


def test_resnet_v2_depth_29_builds_bottlenecks(make_cfg):
    net = build_net(
        make_cfg, "model=resnet", "dataset=cifar10", "model.depth=29", "model.version=2"
    ).eval()
    blocks = [m for m in net.modules() if isinstance(m, PreActBottleneck)]
    assert len(blocks) == 3 * (29 - 2) // 9
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_resnet_v2_takes_9n_plus_2_not_6n_plus_2(make_cfg):
    build_net(make_cfg, "model=resnet", "model.depth=32", "model.version=1")  # 6n+2
    with pytest.raises(DlpyError, match="model.depth"):  # 32 is not 9n+2
        build_net(make_cfg, "model=resnet", "model.depth=32", "model.version=2")


def test_resnet_version_3_is_refused(make_cfg):
    with pytest.raises(DlpyError, match="model.version") as err:
        build_net(make_cfg, "model=resnet", "model.version=3")
    assert "3" in str(err.value)


# He et al. (2015), table 6: CIFAR-10 ResNets of 0.27M (20 layers) and 0.85M (56 layers) parameters.
@pytest.mark.parametrize(("depth", "millions"), [(20, 0.27), (56, 0.85)])
def test_resnet_v1_parameter_count_matches_the_paper(depth, millions, make_cfg):
    net = build_net(
        make_cfg, "model=resnet", "dataset=cifar10", f"model.depth={depth}", "model.version=1"
    )
    assert abs(n_params(net) / 1e6 - millions) <= 0.01


def test_parameter_count_follows_the_config(make_cfg):
    """The count moves with what the config says: classes, input channels, width."""
    base = n_params(build_net(make_cfg, "model=resnet", "dataset=cifar10"))
    # 100 classes: the fc grows by 90 x (64 inputs + 1 bias)
    more_classes = n_params(
        build_net(make_cfg, "model=resnet", "dataset=cifar10", "dataset.num_classes=100")
    )
    assert more_classes - base == 90 * (64 + 1)
    # 1 input channel: the stem's 3x3 conv loses 2 x 16 x 9 weights
    grey = n_params(build_net(make_cfg, "model=resnet", "dataset=fashion_mnist"))
    assert base - grey == 2 * 16 * 9
    # the MLP's first layer is (channels * size^2) x hidden + bias
    mlp = build_net(make_cfg, "model=mlp", "dataset=fashion_mnist", "model.hidden=[64]")
    assert n_params(mlp) == (28 * 28 * 64 + 64) + (64 * 10 + 10)


def activation_builders():
    """One preset per builder that takes `activation`, and per path (dense or conv) through it:
    the builder, not the preset, wires the activation in."""
    first = {}
    for preset in presets("model"):
        text = (Path(CONF_DIR) / "model" / f"{preset}.yaml").read_text()
        if re.search(r"^ *activation:", text, re.M):
            name = re.search(r"^ *name: (\w+)", text, re.M).group(1)
            conv = re.search(r"^ *conv: (\w+)", text, re.M)
            first.setdefault((name, conv and conv.group(1)), preset)
    return sorted(first.values())


# The data set each preset is built for where Fashion-MNIST does not fit it.
DATASET_FOR = {"reinforce": "cartpole"}


@pytest.mark.parametrize("model", activation_builders())
def test_every_builder_taking_an_activation_accepts_selu_and_softplus(model, make_cfg):
    dataset = DATASET_FOR.get(model, "fashion_mnist")
    for name, layer in (("selu", nn.SELU), ("softplus", nn.Softplus)):
        overrides = [f"model={model}", f"dataset={dataset}", f"model.activation={name}"]
        net = build_net(make_cfg, *overrides, *SMALL_MODELS.get(model, []))
        assert any(isinstance(m, layer) for m in net.modules()), name
        assert not any(isinstance(m, nn.ReLU) for m in net.modules()), name


def test_selu_and_softplus_are_the_functions_of_their_papers():
    x = torch.linspace(-3, 3, 13)
    # Klambauer et al. (2017), eq. 2: lambda * (x if x > 0 else alpha * (e^x - 1))
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    selu = scale * torch.where(x > 0, x, alpha * (x.exp() - 1))
    torch.testing.assert_close(make_activation("selu")(x), selu)
    torch.testing.assert_close(make_activation("softplus")(x), (1 + x.exp()).log())


def test_chollet_mnist_dense_is_784_512_10_with_the_book_settings(make_cfg):
    cfg = make_cfg("experiment=chollet_mnist_dense", fast=False)
    assert cfg.dataset.name == "mnist" and cfg.dataset.val_size == 10_000
    assert cfg.dataset.batch_size == 128 and cfg.trainer.max_epochs == 5
    assert cfg.optimizer.name == "rmsprop" and cfg.optimizer.lr == 1e-3  # Keras's default
    assert cfg.scheduler.name == "none"
    net = build_task(cfg).net
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 512), (512, 10)]
    assert n_params(net) == 407_050  # 784*512 + 512 + 512*10 + 10, as the book's summary


def test_chollet_mnist_dense_trains_on_the_upstream_mnist_files(make_cfg, tmp_path):
    cfg = make_cfg("experiment=chollet_mnist_dense", "trainer.max_steps=2")
    torch.manual_seed(cfg.seed)
    before = build_task(cfg).net.state_dict()
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["status"] == "finished"
    assert 0 <= metrics["test/acc"] <= 1 and metrics["model/params"] == 407_050
    after = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["task"]
    assert any(not torch.equal(before[k], after[f"net.{k}"]) for k in before), "no weight changed"

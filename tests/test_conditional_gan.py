"""cGAN, ACGAN and InfoGAN, and the Inception Score every GAN reports: the mathematics against
hand-computed values, one training step of each, and the grids a user asks for."""

import math
from pathlib import Path

import pytest
import torch
from conftest import FAST, presets
from omegaconf import OmegaConf
from PIL import Image

from dlpy import CONF_DIR
from dlpy import metrics as fid_metrics
from dlpy.build import build_data, build_task
from dlpy.errors import DlpyError
from dlpy.models.cnn import CNN
from dlpy.registry import TASKS
from dlpy.tasks.conditional_gan import TRAVERSAL, traversal_codes
from dlpy.tasks.gan import GAN
from dlpy.trainer import Trainer

CODED = ["cgan", "acgan", "infogan"]
CELL = 84 + 2  # a 28-px image drawn x3 (plots.upscaled), with the grid's 2-px padding


def gan_presets():
    """Every model preset whose task is a GAN (its own or a subclass)."""
    found = []
    for name in presets("model"):
        preset = OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml")
        task = OmegaConf.select(preset, "model.task.name")
        if task in TASKS.names() and issubclass(TASKS.get(task), GAN):
            found.append(name)
    return found


def test_inception_score_is_the_class_count_for_confident_uniform_output_and_1_for_identical():
    one_hot = torch.eye(10).repeat(7, 1)  # every image certain, every class as often
    assert fid_metrics.inception_score(one_hot) == pytest.approx(10)
    same = torch.softmax(torch.randn(10), 0).expand(50, 10)  # p(y|x) = p(y) for every x
    assert fid_metrics.inception_score(same) == pytest.approx(1)
    # by hand: p(y) = (0.75, 0.25); KL = log(4/3) and 0.5 log(2/3) + 0.5 log 2
    probabilities = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    kl = [math.log(4 / 3), 0.5 * math.log(2 / 3) + 0.5 * math.log(2)]
    assert fid_metrics.inception_score(probabilities) == pytest.approx(math.exp(sum(kl) / 2))


def test_code_information_is_1_when_each_code_makes_its_own_class_and_0_when_none_changes_it():
    codes = torch.arange(10).repeat(7)
    own_class = torch.eye(10)[codes]  # code c's images: class c, certainly
    assert fid_metrics.code_information(own_class, codes) == pytest.approx(1)
    same = torch.softmax(torch.randn(10), 0).expand(70, 10)  # the code changes nothing seen
    assert fid_metrics.code_information(same, codes) == pytest.approx(0, abs=1e-12)
    # codes 2j and 2j + 1 both make class j: 5 classes, I(c; y) = log 5 of H(c) = log 10
    paired = torch.eye(10)[codes // 2]
    assert fid_metrics.code_information(paired, codes) == pytest.approx(math.log(5) / math.log(10))
    # by hand, 2 codes: p(y|0) = (1, 0), p(y|1) = (0.5, 0.5); I = H(0.75, 0.25) - 0.5 H(0.5, 0.5)
    probabilities = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = (h - 0.5 * math.log(2)) / math.log(2)
    assert fid_metrics.code_information(probabilities, torch.tensor([0, 1])) == pytest.approx(
        expected
    )
    # fewer images than codes: the codes drawn count; one code alone says nothing
    assert fid_metrics.code_information(own_class[:4], codes[:4]) == pytest.approx(1)
    assert fid_metrics.code_information(own_class[:1], codes[:1]) == 0


def trained_step(cfg):
    """The task after one batch (D and G both step), its logs, and its weights before."""
    task, data = build_task(cfg), build_data(cfg)
    trainer = Trainer(device="cpu")
    trainer.setup(task, data)
    trainer.optimizers = task.configure_optimizers()
    trainer.schedulers = [None, None]
    before = {k: v.clone() for k, v in task.state_dict().items()}
    logs = task.training_step(next(data.train_batches()), 0)
    return task, data, logs, before


@pytest.mark.parametrize("model", CODED)
def test_one_step_updates_both_players_with_finite_losses_and_the_code_steers_the_image(
    model, make_cfg
):
    task, _, logs, before = trained_step(make_cfg(f"model={model}", "model.task.fid=false"))
    assert all(torch.isfinite(v) for v in logs.values())
    changed = {
        k.split(".")[1] for k, v in task.state_dict().items() if not torch.equal(v, before[k])
    }
    assert changed == {"generator", "discriminator"}
    task.eval()
    z = torch.randn(1, task.net.latent).expand(2, -1)
    with torch.no_grad():
        images = task.net.generator(z, task.fixed_code(2, "cpu"))  # two classes or categories
    assert not torch.equal(images[0], images[1]), "the generator ignores its code"


def test_the_generator_trains_at_g_lr_scale_times_the_discriminators_rate(make_cfg):
    task = build_task(make_cfg("model=cgan", "optimizer.lr=0.001", "model.task.g_lr_scale=0.5"))
    task.configure_optimizers()
    assert task.opt_d.param_groups[0]["lr"] == 0.001
    assert task.opt_g.param_groups[0]["lr"] == 0.0005


def test_infogan_information_loss_by_hand(make_cfg):
    task = build_task(make_cfg("model=infogan", "model.categories=3", "model.continuous=2"))
    code = torch.tensor([[0.0, 1.0, 0.0, 0.5, -1.0]])
    estimate = torch.tensor([[0.0, 0.0, 0.0, 0.5, 0.0]])  # uniform category; code 2 off by 1
    loss, logs = task.information_terms(estimate, code)
    # cross-entropy of a uniform guess: log 3; the Gaussian's (c - mu)^2 / (2 * 0.5^2) = 2
    assert logs["train/info_categorical"].item() == pytest.approx(math.log(3))
    assert logs["train/info_continuous"].item() == pytest.approx(2.0)
    assert loss.item() == pytest.approx(1.0 * math.log(3) + 0.5 * 2.0)


def test_a_supervised_infogan_needs_one_category_per_class(make_cfg):
    cfg = make_cfg("model=infogan", "model.categories=4", "model.task.supervised=true")
    with pytest.raises(DlpyError, match="model.categories"):
        build_task(cfg).attach(build_data(cfg))


@pytest.mark.parametrize("model", ["acgan", "infogan"])
def test_the_preset_has_atienzas_discriminator_without_batchnorm(make_cfg, model):
    def norms(*overrides):
        net = build_task(make_cfg(f"model={model}", *overrides)).net
        return [m for m in net.discriminator.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    assert not norms()
    assert norms("model.batchnorm=true")


def test_traversal_codes_hold_one_category_per_row_and_sweep_one_continuous_code():
    codes = traversal_codes(3, 2, swept=1, columns=len(TRAVERSAL)).view(3, len(TRAVERSAL), 5)
    for row in range(3):
        assert (codes[row, :, :3].argmax(1) == row).all()
        assert torch.equal(codes[row, :, 4], TRAVERSAL) and (codes[row, :, 3] == 0).all()
    fixed = traversal_codes(3, 2, swept=None, columns=4)
    assert fixed.shape == (12, 5) and (fixed[:, 3:] == 0).all()


def test_infogan_traversal_grids_have_one_row_per_code_value(make_cfg):
    cfg = make_cfg("model=infogan", "model.task.fid=false")
    task, data = build_task(cfg), build_data(cfg)
    with torch.inference_mode():
        images = task.eval().examples(data)
    assert {"images/code_category", "images/code_1", "images/code_2"} <= images.keys()
    for name, columns in (("code_category", 10), ("code_1", 9), ("code_2", 9)):
        grid = images[f"images/{name}"]
        assert grid.shape[1] == 10 * CELL + 2, name  # ten rows: the ten categories
        cells = grid[:, 2:-2, -columns * CELL :].unfold(1, 84, CELL).unfold(2, 84, CELL)
        assert cells.shape[1:3] == (10, columns)
        assert not torch.equal(cells[:, 0, 0], cells[:, 1, 0]), f"{name}: rows look alike"
        assert not torch.equal(cells[:, 0, 0], cells[:, 0, -1]), f"{name}: columns look alike"


def test_every_gan_preset_reports_the_inception_score(make_cfg, monkeypatch):
    """val/is (and a class-conditioned GAN's label_acc), on an untrained stand-in classifier:
    the score's plumbing, not its value, is what this checks."""
    torch.manual_seed(0)
    stand_in = CNN(1, 28, 10, layers=[8, "M"], fc=[16])
    monkeypatch.setattr(
        fid_metrics, "feature_network", lambda data: fid_metrics.FeatureNet(stand_in, data)
    )
    for model in gan_presets():
        cfg = make_cfg(f"model={model}")
        task, data = build_task(cfg), build_data(cfg)
        Trainer(device="cpu").setup(task, data)
        with torch.inference_mode():
            scores = task.eval().evaluate(data.eval_batches("val"), "val")
        assert 1 - 1e-9 <= scores["val/is"] <= 10, model  # KL >= 0: at least 1
        assert ("val/label_acc" in scores) == (model in ("cgan", "acgan", "infogan")), model
        if model == "infogan":
            assert -1e-9 <= scores["val/code_information"] <= 1 + 1e-9
    assert set(CODED) | {"dcgan", "wgan_gp"} <= set(gan_presets())


def test_sample_draws_a_named_row_per_label_and_a_bad_label_is_one_line(run_cli, tmp_path):
    run = tmp_path / "run"
    args = ("train", *FAST, "model=cgan", "model.task.fid=false", "trainer.max_epochs=1")
    status, _, err = run_cli(*args, "~logger", f"hydra.run.dir={run}")
    assert status == 0, err
    status, out, err = run_cli("sample", str(run), "label=Sneaker,bag,0", "n=24")
    assert status == 0, err
    with Image.open(run / "samples" / "samples.png") as image:
        assert image.size[1] == 3 * CELL + 2  # Sneaker, Bag and T-shirt/top: one row each
        assert image.size[0] > 8 * CELL  # 8 images a row, and the class names left of them
    status, _, err = run_cli("sample", str(run), "label=Snaker")
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1
    assert "label 'Snaker'" in lines[0] and "'Sneaker'" in lines[0] and "9 Ankle boot" in lines[0]

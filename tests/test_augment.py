"""dataset.augment: each augmentation on a batch, per-image draws, seeds, mixing, resume, errors."""

import os
import signal

import pytest
import torch
from conftest import FAST
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from dlpy import CONF_DIR
from dlpy.build import build_data
from dlpy.cli import main
from dlpy.data.augment import Augmentation
from dlpy.data.augmentations import AUGMENTATIONS, random_crop
from dlpy.errors import DlpyError, Interrupted
from dlpy.io import load_checkpoint
from dlpy.train import train
from dlpy.trainer import Trainer

MIXES = ("mixup", "cutmix")
PER_IMAGE = [n for n in AUGMENTATIONS.names() if n not in (*MIXES, "crop", "hflip", "vflip")]
ALWAYS = {
    "erasing": {"p": 1.0},
    "hflip": {"p": 1.0},
    "vflip": {"p": 1.0},
    "affine": {"degrees": 20},
}


def batch(n=16, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, 20, 24), generator=g, dtype=torch.uint8)


def pipeline(*steps, classes=10):
    return Augmentation(list(steps), (20, 24), classes)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_each_augmentation_keeps_the_batch_shape_and_dtype(name, channels):
    x = batch(channels=channels)
    steps = pipeline({"name": name, **ALWAYS.get(name, {})})
    if name in MIXES:
        y = torch.arange(16) % 10
        mixed, targets = steps.mix(x.float(), y, seeded())
        assert mixed.shape == x.shape and mixed.dtype == torch.float32
        assert targets.shape == (16, 10) and targets.dtype == torch.float32
    else:
        out = steps.pixels(x, seeded())
        assert out.shape == x.shape and out.dtype == torch.uint8
        assert not torch.equal(out, x), f"{name} changed nothing"


@pytest.mark.parametrize("name", PER_IMAGE)
def test_each_image_of_a_batch_gets_its_own_parameters(name):
    x = batch(1).expand(16, -1, -1, -1)  # one image, 16 times
    out = pipeline({"name": name, **ALWAYS.get(name, {})}).pixels(x, seeded())
    assert len({bytes(image.numpy()) for image in out}) >= 8, name


def test_the_data_generator_alone_decides_the_draws_and_the_global_one_is_left_alone():
    steps = pipeline("resized_crop", "hflip", {"name": "rotation", "degrees": 30}, "erasing")
    before = torch.get_rng_state()
    first = steps.pixels(batch(), seeded(0))
    assert torch.equal(torch.get_rng_state(), before)  # dropout's stream does not move
    assert torch.equal(steps.pixels(batch(), seeded(0)), first)
    assert not torch.equal(steps.pixels(batch(), seeded(1)), first)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)  # what the global generator holds does not matter: DDP ranks differ
        assert torch.equal(steps.pixels(batch(), seeded(0)), first)
    g = seeded(0)
    assert not torch.equal(steps.pixels(batch(), g), steps.pixels(batch(), g))  # batch by batch


def test_the_padded_crop_and_flip_draw_what_they_drew_before():
    """The CIFAR presets' {crop_padding: 4, hflip: true} give bitwise the batches of the first
    implementation, so their runs are unchanged."""
    x = batch(64)
    g = seeded(3)
    old = random_crop(x, 4, g)
    flip = torch.rand(len(x), generator=g) < 0.5
    old = torch.where(flip.view(-1, 1, 1, 1), old.flip(3), old)
    new = Augmentation({"crop_padding": 4, "hflip": True}, (20, 24), 10).pixels(x, seeded(3))
    assert torch.equal(new, old)


def test_off_entries_make_no_steps_and_draw_nothing():
    off = Augmentation({"crop_padding": 0, "hflip": False, "rotation": None}, (20, 24), 10)
    assert not off
    g = seeded(0)
    assert torch.equal(off.pixels(batch(), g), batch())
    assert torch.equal(g.get_state(), seeded(0).get_state())


@pytest.mark.parametrize("name", MIXES)
def test_mixed_targets_are_the_convex_mixture_of_the_images_mixed(name):
    x = batch(32).float()
    y = torch.arange(32) % 10  # neighbours differ in class
    mixed, target = pipeline(name).mix(x, y, seeded(5))
    assert torch.all(target >= 0)
    torch.testing.assert_close(target.sum(1), torch.ones(32))
    share = target[torch.arange(32), y]  # of the image itself; the rest is its neighbour's
    partner = y.roll(1)
    torch.testing.assert_close(target[torch.arange(32), partner], 1 - share)
    neighbour = x.roll(1, 0)
    if name == "mixup":
        expected = share.view(-1, 1, 1, 1) * x + (1 - share.view(-1, 1, 1, 1)) * neighbour
        torch.testing.assert_close(mixed, expected)
    else:  # each pixel is one image's or the other's, in the proportion of the label
        own = (mixed == x).all(1).float().mean((1, 2))
        assert torch.all((mixed == x) | (mixed == neighbour))
        torch.testing.assert_close(own, share)


def test_mixed_batches_train_a_classifier_with_soft_targets(make_cfg, tmp_path):
    cfg = make_cfg("model=mlp", "trainer.max_steps=3", "+dataset.augment.mixup=true")
    data = build_data(cfg)
    data.seed(0)
    x, y = next(iter(data.train_batches()))
    assert y.shape == (32, 10) and x.dtype == torch.float32
    train(cfg, tmp_path)
    assert (tmp_path / "metrics.json").is_file()


BAD = [
    ("+dataset.augment.rotation={degrees:-5}", "dataset.augment.rotation.degrees must be"),
    ("+dataset.augment.turn={name:rotaton}", "augment.turn.name: Unknown augmentation 'rotaton'"),
    ("+dataset.augment.rotaton=true", "dataset.augment.rotaton: Unknown augmentation 'rotaton'"),
    ("+dataset.augment.rotation={degree:5}", "unknown option(s) degree"),
    ("dataset.augment.hflip={p:1.5}", "dataset.augment.hflip.p must be a number in [0, 1]"),
    ("dataset.augment.hflip=maybe", "dataset.augment.hflip must be true, false or its options"),
    ("dataset.augment.crop_padding=-2", "dataset.augment.crop_padding must be"),
    ("+dataset.augment.affine={translate:[0.5]}", "dataset.augment.affine.translate must be two"),
    ("+dataset.augment.affine={scale:[1.2,0.8]}", "low <= high"),
    ("+dataset.augment.rotation={interpolation:bilinar}", "Did you mean 'bilinear'"),
    ("+dataset.augment.mixup={alpha:0}", "dataset.augment.mixup.alpha must be a number > 0"),
    ("+dataset.augment.rand_augment={magnitude:40}", "dataset.augment.rand_augment (rand_aug"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[b[0] for b in BAD])
def test_bad_options_fail_in_one_line_naming_the_key(override, message, make_cfg):
    with pytest.raises(DlpyError) as err:
        build_data(make_cfg(override))
    assert message in str(err.value) and "\n" not in str(err.value)


BAD_LISTS = [
    (
        [{"name": "rotation", "degrees": -5}],
        "dataset.augment.0.degrees must be a number in [0, 180]",
    ),
    (["hflip", {"name": "rotaton"}], "dataset.augment.1.name: Unknown augmentation 'rotaton'"),
    ([{"degrees": 5}], "dataset.augment.0.name is missing"),
    ([None], "dataset.augment.0 must be a mapping of its options, got None"),
]


@pytest.mark.parametrize("augment, message", BAD_LISTS, ids=[b[1][:24] for b in BAD_LISTS])
def test_a_bad_entry_of_a_list_is_named_by_its_index(augment, message):
    with pytest.raises(DlpyError) as err:
        Augmentation(augment, (20, 24), 10)
    assert message in str(err.value)


def test_the_chollet_preset_adds_its_entries_to_the_datasets(make_cfg):
    cfg = make_cfg("augment=chollet")
    augment = OmegaConf.to_container(cfg.dataset.augment)
    assert augment["affine"] == {
        "degrees": 40,
        "translate": [0.2, 0.2],
        "shear": 11.46,
        "scale": [0.8, 1.2],
    }
    assert augment["hflip"] is True and augment["crop_padding"] == 0
    assert len(build_data(cfg).augmentation.steps) == 2  # the affine and the flip


def test_a_list_replaces_the_presets_entries(make_cfg):
    cfg = make_cfg("~dataset.augment", "+dataset.augment=[{name:rotation,degrees:40},hflip]")
    assert len(build_data(cfg).augmentation.steps) == 2
    with pytest.raises(DlpyError, match="^dataset.augment must be a mapping or a list, got 7$"):
        Augmentation(7, (20, 24), 10)


# -- exact resume with augmentation on --------------------------------------------------------

AUGMENTED = [
    "model=mlp",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.deterministic=true",
    "~dataset.augment",
    "+dataset.augment=[{name:rotation,degrees:30},hflip,erasing,mixup]",
]


@pytest.mark.slow  # about 6 s: three short runs
def test_a_run_resumed_mid_epoch_ends_bitwise_equal_with_augmentation(
    make_cfg, tmp_path, monkeypatch
):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(make_cfg(*AUGMENTED), straight)
    backward = Trainer.backward

    def interrupted_backward(self, loss, optimizer):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        backward(self, loss, optimizer)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "backward", interrupted_backward)
        with pytest.raises(Interrupted):
            train(make_cfg(*AUGMENTED), stopped)
    train(make_cfg(*AUGMENTED, f"trainer.resume={stopped}"), stopped)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["task"]
    b = load_checkpoint(stopped / "checkpoints" / "last.pt")["task"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)


# -- dlpy visualize <run> kind=augment ---------------------------------------------------------


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("augment") / "run"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"data_dir={data_dir}", *FAST, "trainer.max_steps=1"])
    train(cfg, run)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")  # what Hydra writes when `dlpy train` runs
    return run


def test_kind_augment_writes_a_grid_of_one_image_augmented_16_ways(cnn_run):
    args = ["visualize", str(cnn_run), "kind=augment", "index=3", "dataset.augment.rotation=true"]
    assert main(args) == 0
    with Image.open(cnn_run / "visualize" / "augment.png") as image:
        assert image.size == (4 * 112 + 5 * 2, 4 * 112 + 5 * 2)  # 4 x 4 tiles, 2-pixel borders
    events = b"".join(p.read_bytes() for p in cnn_run.glob("events.out.tfevents.*"))
    assert b"visualize/augment" in events


def test_kind_augment_says_when_the_run_augments_nothing(cnn_run, capsys):
    assert main(["visualize", str(cnn_run), "kind=augment"]) == 2
    assert "dataset.augment changes no pixels" in capsys.readouterr().err

"""A model that does not fit its data ends in one line before training (dlpy/shapes.py).

The sizes the data declares (`DataSet.shapes`) are checked against the model options that name
them, naming both keys; what no size declares, one rehearsed step on a few samples catches, naming
the preset. The rehearsal leaves the run as it was: its weights, its random generators, the
order of its batches. The runs go through `dlpy.cli.main` in this process and fail before any
step, on conftest's tiny files.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import FAST, presets, write_jena
from omegaconf import OmegaConf

from dlpy import CONF_DIR
from dlpy.build import build_data, build_task
from dlpy.shapes import PROBE_SAMPLES, first_samples, probe


def model_node(preset):
    """A model preset's own `model:` options, as its YAML file writes them."""
    text = (Path(CONF_DIR) / "model" / f"{preset}.yaml").read_text()
    node = yaml.safe_load(text)
    return node["model"] if text.startswith("# @package _global_") else node


# Every preset that takes the image's channels: each must refuse three on grey Fashion-MNIST.
IMAGE_PRESETS = [p for p in presets("model") if "in_channels" in model_node(p)]


def train_fails(run_cli, run_dir, *overrides, smoke=FAST):
    """`dlpy train` of the overrides: its one error line; the run folder must not look finished."""
    status, out, err = run_cli("train", *smoke, f"hydra.run.dir={run_dir}", *overrides)
    assert status == 2 and "Traceback" not in out + err, err
    assert err.count("\n") == 1 and err.startswith("dlpy: error: "), err
    metrics = run_dir / "metrics.json"
    assert not metrics.exists() or json.loads(metrics.read_text())["status"] == "failed"
    assert not (run_dir / "checkpoints" / "last.pt").exists()
    return err.removeprefix("dlpy: error: ").strip()


def test_every_image_preset_is_found():
    assert len(IMAGE_PRESETS) >= 20
    assert {"cnn", "resnet", "resnet18", "vae", "conv_vae", "dcgan", "wgan_gp"} <= set(
        IMAGE_PRESETS
    )
    assert {"lenet5", "vgg13", "autoencoder", "conv_autoencoder", "pretrained"} <= set(
        IMAGE_PRESETS
    )


@pytest.mark.parametrize("preset", IMAGE_PRESETS)
def test_three_channels_on_grey_images_names_both_keys(preset, run_cli, tmp_path):
    line = train_fails(
        run_cli, tmp_path / "run", f"model={preset}", "dataset=fashion_mnist", "model.in_channels=3"
    )
    assert line == "model.in_channels=3 but dataset.channels=1 (the images have 1 channel)"


@pytest.mark.parametrize("preset", ["cnn", "mlp", "lstm", "cvae", "resnet18"])
def test_fewer_classes_than_the_data_has_names_both_keys(preset, run_cli, tmp_path):
    line = train_fails(run_cli, tmp_path / "run", f"model={preset}", "model.num_classes=5")
    assert line == "model.num_classes=5 but dataset.num_classes=10 (the data has 10 classes)"


def test_another_image_size_names_both_keys(run_cli, tmp_path):
    line = train_fails(run_cli, tmp_path / "run", "model=lstm", "model.image_size=7")
    assert line == "model.image_size=7 but dataset.image_size=28 (the images are 28x28)"


def test_an_agent_of_other_actions_than_the_environment_names_both_keys(run_cli, tmp_path):
    smoke = [o for o in FAST if not o.startswith("dataset.")]  # an environment has no splits
    line = train_fails(
        run_cli,
        tmp_path / "run",
        "model=reinforce",
        "dataset=cartpole",
        "model.num_actions=3",
        smoke=smoke,
    )
    assert line == "model.num_actions=3 but dataset.num_actions=2 (the environment has 2 actions)"


def test_a_series_model_of_other_features_names_both_keys(run_cli, tmp_path):
    write_jena(tmp_path / "jena_climate_2009_2016.csv", np.zeros(300))
    line = train_fails(
        run_cli,
        tmp_path / "run",
        "model=gru",
        "dataset=jena_climate",
        f"dataset.root={tmp_path}",
        "dataset.sequence_length=10",
        "dataset.delay=6",
        "model.num_features=5",
        smoke=[o for o in FAST if not o.startswith("dataset.val_size")],  # a series: time splits
    )
    assert line.startswith("model.num_features=5 but dataset.num_features=14 (a sample has 14")


def test_a_decoder_on_pixels_outside_its_range_names_both_keys(run_cli, tmp_path):
    # the autoencoders' and GANs' own check (dlpy/data/checks.py pixel_range) reads the range the
    # scaling gives; the shapes' check names the scaling a task needs where it needs one
    line = train_fails(run_cli, tmp_path / "run", "model=vae", "dataset.scaling=standardize")
    assert "model.task.name=vae" in line and "dataset.scaling=standardize" in line, line


def test_a_kernel_longer_than_the_sequence_ends_in_the_probes_line(run_cli, tmp_path):
    # valid convolutions and pooling shorten 28 rows to 1 before the last kernel of 5: no size
    # of the data is wrong, the network's own arithmetic is
    line = train_fails(run_cli, tmp_path / "run", "model=conv1d", "model.padding=valid")
    assert line.startswith("model 'conv1d' does not fit the data: ")
    assert "Kernel size can't be greater than actual input size" in line
    assert line.endswith("(a batch of 2: inputs 2x1x28x28, targets 2)")


def test_a_rebuilt_run_checks_the_sizes_too(make_cfg, run_cli, tmp_path):
    # dlpy eval, sample, predict and export rebuild a run through dlpy/runs.py's load_run: the
    # sizes are checked before any checkpoint is read
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(make_cfg("model=cnn"), tmp_path / ".hydra" / "config.yaml")
    status, _, err = run_cli("sample", str(tmp_path), "model.num_classes=5")
    assert status == 2
    assert err.strip() == (
        "dlpy: error: model.num_classes=5 but dataset.num_classes=10 (the data has 10 classes)"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=cnn", "dataset.augment.hflip=true", "dataset.augment.crop_padding=2"],
        ["model=vae"],
        ["model=wgan_gp", "model.task.fid=false", "model.width=8"],
        ["model=lstm", "model.recurrent_dropout=0.5"],
        ["model=siamese"],
    ],
    ids=["cnn", "vae", "wgan_gp", "lstm", "siamese"],
)
def test_the_probe_leaves_the_weights_generators_and_batch_order_as_they_were(overrides, make_cfg):
    cfg = make_cfg(*overrides)
    torch.manual_seed(0)
    data = build_data(cfg)
    data.seed(0)
    task = build_task(cfg)
    weights = {k: v.clone() for k, v in task.state_dict().items()}
    rng = torch.get_rng_state()
    order = data.state_dict()["generator"].clone()

    probe(task, cfg, data)

    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(data.state_dict()["generator"], order)
    after = task.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())  # batch norm's too
    assert task.trainer is None and task.training  # no trainer attached, no mode changed
    assert all(p.requires_grad for p in task.parameters())


def test_a_siamese_probe_pairs_its_few_samples_among_themselves(make_cfg):
    cfg = make_cfg("model=siamese")
    task, data = build_task(cfg), build_data(cfg)
    x, y, same, other = task.probe_batch(first_samples(data))
    assert len(x) == len(y) == PROBE_SAMPLES
    assert same.max() < len(y) and other.max() < len(y)  # places in the probe's own batch
    assert torch.equal(y[same], y)  # a partner of the same class (itself, if it has no other)
    rehearsed = []
    task.training_step = lambda batch, step: rehearsed.append(len(batch))
    probe(task, cfg, data)
    assert rehearsed == [4]  # images, labels and both partners: the step a pair trains on

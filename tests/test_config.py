"""Config groups and registries: every preset composes and resolves, every name explains itself."""

from pathlib import Path

import pytest
from conftest import FAST, presets
from omegaconf import OmegaConf

from dlpy import (
    CONF_DIR,
    catalog,  # noqa: F401  (importing it registers the builders these tests look up)
)
from dlpy.errors import DlpyError
from dlpy.registry import ALL, MODELS

# experiment: below; hparams_search and launcher configure Hydra's sweeper and launcher:
# tests/test_sweep.py; augment fills dataset.augment: tests/test_augment.py
GROUPS = sorted(
    p.name
    for p in Path(CONF_DIR).iterdir()
    if p.is_dir() and p.name not in ("experiment", "hparams_search", "launcher", "augment")
)
GROUP_PRESETS = [(group, preset) for group in GROUPS for preset in presets(group)]


def test_the_config_groups_are_all_found():
    # guards the parametrisation below against silently testing nothing
    assert {"dataset", "model", "optimizer", "scheduler", "trainer"} <= set(GROUPS)
    assert all(presets(group) for group in GROUPS)


# Presets with a value the user must give (`???` in the file), or that need a model other than
# the default CNN
REQUIRED = {
    "dataset=image_folder": ["dataset.root=/path/to/images"],
    "dataset=imdb": ["model=mlp"],
    "dataset=jena_climate": ["model=lstm"],
    "dataset=boston_housing": ["model=mlp"],
    "dataset=text": ["model=char_lstm"],
    "model=reinforce": ["dataset=cartpole"],
    "dataset=gym": ["dataset.id=CartPole-v1", "model=reinforce"],
    "dataset=cartpole": ["model=reinforce"],
    "dataset=acrobot": ["model=reinforce"],
    "dataset=mountain_car": ["model=reinforce"],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("group", "preset"), GROUP_PRESETS, ids=[f"{g}={p}" for g, p in GROUP_PRESETS]
)
def test_every_group_option_composes_and_resolves(group, preset, make_cfg):
    cfg = make_cfg(f"{group}={preset}", *REQUIRED.get(f"{group}={preset}", []))
    resolved = OmegaConf.to_container(cfg, resolve=True)  # raises on any broken interpolation
    assert OmegaConf.missing_keys(cfg) == set()
    node = resolved[group]
    assert isinstance(node, dict) and node
    # The group node holds what the preset file says (the fast smoke overrides aside).
    path = Path(CONF_DIR) / group / f"{preset}.yaml"
    own = OmegaConf.to_container(OmegaConf.load(path))
    own.pop("defaults", None)
    if path.read_text().startswith(
        "# @package _global_"
    ):  # a preset that also sets other groups' keys
        for key, value in own.items():
            assert set(value) <= set(resolved[key]), key
        own = own[group]
    if "name" in own:
        assert node["name"] == own["name"]
    assert {key for key in own if f"~{group}.{key}" not in FAST} <= set(node)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", presets("experiment"))
def test_every_experiment_composes_and_the_model_fits_its_dataset(experiment, make_cfg):
    cfg = make_cfg(f"experiment={experiment}")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    model, dataset = resolved["model"], resolved["dataset"]
    raw = OmegaConf.to_container(cfg, resolve=False)["model"]
    shape = {
        "in_channels": "channels",
        "image_size": "image_size",
        "num_features": "num_features",
        "vocab_size": "vocab_size",
        "num_classes": "num_classes",
    }
    given = [key for key, source in shape.items() if source in dataset and key in model]
    generative = "num_classes" not in model  # a GAN's networks have no class head
    assert ("num_classes" in given or generative) and (
        {"in_channels", "image_size"} <= set(given) or {"num_features", "vocab_size"} & set(given)
    )
    for key in given:
        assert model[key] == dataset[shape[key]], key
        # ...by interpolation, so the numbers are typed once, in the dataset preset
        assert f"dataset.{shape[key]}" in raw[key], key

    # The presets the experiment overrides are the ones composed.
    spec = OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{experiment}.yaml")
    overrides = [entry for entry in spec.defaults if any(k.startswith("override /") for k in entry)]
    assert overrides, "an experiment picks its dataset and model"
    for entry in overrides:
        ((key, preset),) = entry.items()
        group = key.removeprefix("override /")
        chosen = OmegaConf.load(Path(CONF_DIR) / group / f"{preset}.yaml")
        chosen = (
            chosen[group] if group in chosen and "name" not in chosen else chosen
        )  # a _global_ preset
        assert resolved[group]["name"] == chosen.name, f"{experiment}: {group}"


@pytest.mark.parametrize("registry", ALL, ids=[r.kind for r in ALL])
def test_every_registered_name_has_a_one_line_description(registry):
    items = registry.items()
    assert items, f"no {registry.kind}s registered"
    for name, description in items:
        assert isinstance(description, str) and description.strip(), f"{registry.kind} {name!r}"
        assert "\n" not in description, f"{registry.kind} {name!r}"


@pytest.mark.slow
def test_every_preset_names_a_registered_builder(make_cfg):
    registries = {r.kind: r for r in ALL}
    for group in ("dataset", "model", "optimizer", "scheduler"):
        for preset in presets(group):
            cfg = make_cfg(f"{group}={preset}")
            assert cfg[group].name in registries[group].names(), (
                f"{group}={preset}: {cfg[group].name!r}"
            )
            if group == "model":
                assert cfg.model.task.name in registries["task"].names(), f"model={preset}"


def test_an_unknown_name_suggests_the_closest_and_lists_the_known_ones():
    with pytest.raises(DlpyError) as err:
        MODELS.get("cnnn")
    message = str(err.value)
    assert "Did you mean 'cnn'" in message
    known = MODELS.names()
    assert len(known) > 1
    for name in known:
        assert name in message


def test_an_unknown_option_is_named_before_the_builder_runs():
    with pytest.raises(DlpyError) as err:
        MODELS.build("mlp", key="model", in_channels=1, image_size=28, num_classes=10, bogus=1)
    message = str(err.value)
    assert "bogus" in message and "model" in message
    assert "hidden" in message  # the accepted options are listed

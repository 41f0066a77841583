"""The fuzz generated from the schema: every option of every registered builder, each given values
outside its declared type and range (dlpy/schema.py), must end `dlpy train` in one line that names
the option's full key, with a non-zero exit and no run folder that looks finished.

Each builder is reached through a config that selects it: the first preset of its group whose
config passes `check_config` with the defaults of the other groups, or with the first data set or
model below that fits it. The cases run in this process through `dlpy.cli.main`, the console
script's code; each fails in `check_config`, before any data is read.
"""

import copy
import json
from functools import cache
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dlpy import CONF_DIR, presets, schema, train
from dlpy.build import check_config, options
from dlpy.errors import DlpyError
from dlpy.registry import ALL, CALLBACKS, DATASETS, LOGGERS, MODELS, OPTIMIZERS, SCHEDULERS, TASKS
from dlpy.trainer import Trainer

# Where a builder needs a partner to be reachable: a model on a data set of its kind, and back.
DATASETS_TO_TRY = ["fashion_mnist", "cartpole", "imdb", "boston_housing", "text", "jena_climate"]
MODELS_TO_TRY = ["cnn", "mlp", "reinforce", "char_lstm", "lstm", "pretrained"]
# What a config needs that no preset gives: image_folder's root (its class count is read from it).
NEEDS = {"image_folder": ["dataset.root=/nonexistent/images", "dataset.num_classes=2"]}
# Options dlpy gives a builder itself (dlpy list leaves them out too), and those whose whole check
# is the builder's own, each with why.
GIVEN = {"net", "optimizer", "params", "run_dir", "hparams", "total_steps", "steps_per_epoch"}
GIVEN |= {"scheduler", "callbacks", "config", "self"}  # the Trainer's: built from other groups
OWN_CHECK = {
    "dataset.augment": "transform entries, checked entry by entry (tests/test_augment.py)",
    "model.unfreeze": "an int, a list of names or 'all'; checked by check_unfreeze",
    "dataset.agent": "the agent's defaults per environment: merged into model.task, checked there",
}


def outside(found: schema.Option) -> list[str]:
    """Override values (Hydra's syntax) outside the declaration: other types, then the range."""
    if found.choices is not None:
        return ["nosuch", "[1]", "{a: 1}"] + ([] if found.nullable else ["null"])
    if found.alternatives:
        return ["{a: 1}"] if all(alt.kind is not dict for alt in found.alternatives) else []
    wrong = {
        bool: ["abc", "2", "[1]"],
        int: ["abc", "1.5", "true", "[1]"],
        float: ["abc", "true", "[1]", "nan", "inf"],
        str: ["[a,b]", "{a: 1}"],
        list: ["abc", "7", "{a: 1}"],
        dict: ["abc", "[1]", "7"],
    }.get(found.kind, [])
    if found.kind is not None and not found.nullable:
        wrong = [*wrong, "null"]
    bounds = found.range
    if bounds is not None:
        step = 1 if found.kind is int else 0.5
        if bounds.ge is not None:
            wrong.append(f"{bounds.ge - step:g}")
        if bounds.gt is not None:
            wrong.append(f"{bounds.gt:g}")
        if bounds.le is not None:
            wrong.append(f"{bounds.le + step:g}")
        if bounds.lt is not None:
            wrong.append(f"{bounds.lt:g}")
        if found.kind is float:
            wrong += ["-inf"]
    if found.item is not None:
        wrong += [f"[{value}]" for value in outside(found.item) if not value.startswith(("[", "{"))]
    return list(dict.fromkeys(wrong))


@cache
def composed(overrides: tuple[str, ...]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", list(overrides))


def fits(overrides: tuple[str, ...]) -> bool:
    try:
        check_config(composed(overrides))
    except DlpyError:
        return False
    return True


def reach(group: str, preset: str) -> tuple[str, ...] | None:
    """Overrides that select `group=preset` in a config that passes check_config."""
    partners = {"dataset": ("model", MODELS_TO_TRY), "model": ("dataset", DATASETS_TO_TRY)}
    other, candidates = partners.get(group, ("model", [None]))
    for partner in [None, *candidates]:
        overrides = (f"{group}={preset}", *NEEDS.get(preset, []))
        overrides += (f"{other}={partner}",) if partner else ()
        if fits(overrides):
            return overrides
    return None


def builders() -> list[tuple[str, object, str, tuple[str, ...]]]:
    """(config node, builder, builder name, overrides that reach it) for every registered builder
    and the Trainer: the first config that reaches each."""
    registries = {"dataset": DATASETS, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS}
    found = [("trainer", Trainer, "trainer", ())]
    for group in ("model", "dataset", "optimizer", "scheduler"):
        for preset in presets(group):
            if (overrides := reach(group, preset)) is None:
                continue
            cfg = composed(overrides)
            name, kwargs = options(cfg.model, "model")
            found.append(("model", MODELS.get(name), name, overrides))
            task = kwargs["task"]["name"]  # a data set's task (boston's regression) is reached here
            found.append(("model.task", TASKS.get(task), task, overrides))
            if group in registries:
                name, _ = options(cfg[group], group)
                found.append((group, registries[group].get(name), name, overrides))
    for entry, value in composed(()).callbacks.items():
        found.append((f"callbacks.{entry}", CALLBACKS.get(value.name), value.name, ()))
    for preset in presets("logger"):
        name = composed((f"logger={preset}",)).logger[preset].name
        found.append((f"logger.{preset}", LOGGERS.get(name), name, (f"logger={preset}",)))
    return list({(node, name): (node, b, name, o) for node, b, name, o in found[::-1]}.values())


BUILDERS = builders()


def registry_of(node: str):
    """The registry of a config node's builder: model.task is a task, logger.csv a logger."""
    kinds = {"model.task": TASKS, "model": MODELS, "dataset": DATASETS, "optimizer": OPTIMIZERS}
    kinds |= {"scheduler": SCHEDULERS, "callbacks": CALLBACKS, "logger": LOGGERS}
    if node == "trainer":
        return type("TrainerKind", (), {"kind": "trainer"})
    return kinds.get(node) or kinds[node.split(".")[0]]


def generated_cases() -> list[tuple[str, str, tuple[str, ...]]]:
    """(override, the key the error must name, the overrides that reach the builder)."""
    cases = []
    for node, builder, _, base in BUILDERS:
        for name, found, _ in schema.declared(builder):
            key = f"{node}.{name}"
            if name in GIVEN or key in OWN_CHECK:
                continue
            for value in outside(found):
                cases.append((f"++{key}={value}", key, base))
    return cases


CASES = generated_cases()


def test_every_registered_builder_and_option_is_reached():
    reached = {(node.split(".")[0], registry_of(node).kind, name) for node, _, name, _ in BUILDERS}
    for registry in ALL:
        for name in registry.names():
            assert any(r[1:] == (registry.kind, name) for r in reached), (
                f"{registry.kind} {name} is reached by no config"
            )
    keys = {key for _, key, _ in CASES}
    for node, builder, _, _ in BUILDERS:
        for name, _, _ in schema.declared(builder):
            key = f"{node}.{name}"
            assert name in GIVEN or key in OWN_CHECK or key in keys, f"{key} has no case"


def test_the_generated_fuzz_has_at_least_1000_cases():
    assert len(CASES) >= 1000, len(CASES)
    assert len({(o, b) for o, _, b in CASES}) == len(CASES)


def run_with(base: tuple[str, ...], override: str, run: Path, capsys) -> tuple[int, str, str]:
    """`dlpy train <base> <override>` as Hydra's job runs it, on the config composed once for the
    base: (exit status, stdout, stderr). The override's value is parsed by Hydra's own parser.

    The override is set on the shared config and taken back afterwards (a copy per case would
    cost more than the case): the run fails in check_config, before anything else reads it.
    """
    cfg = composed_job(base)
    runtime = HydraConfig.instance().cfg.hydra.runtime
    with read_write(runtime):
        runtime.output_dir = str(run)
    run.mkdir()
    parsed = OverridesParser.create().parse_overrides([override])[0]
    key = parsed.key_or_group
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    had = leaf in node
    before = copy.deepcopy(node._get_node(leaf)) if had else None  # update changes it in place
    OmegaConf.update(cfg, key, parsed.value(), merge=False, force_add=True)
    capsys.readouterr()
    try:
        status = train.run(cfg) and 0
    except SystemExit as stop:
        status = stop.code
    finally:
        with open_dict(node):
            if had:
                node[leaf] = before
            else:
                del node[leaf]
    out, err = capsys.readouterr()
    return status, out, err


@cache
def composed_job(base: tuple[str, ...]) -> DictConfig:
    """The job's config of `base` (no hydra node), with Hydra's config set as a job sees it."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", list(base), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.mark.parametrize(
    "override, key, base", CASES, ids=[f"{c[0]}|{'/'.join(c[2])}" for c in CASES]
)
def test_a_value_outside_its_declaration_fails_in_one_line_naming_the_key(
    override, key, base, capsys, tmp_path
):
    run = tmp_path / "run"
    status, out, err = run_with(base, override, run, capsys)
    assert "Traceback" not in out + err
    assert status != 0, out
    assert err.count("\n") == 1 and err.startswith("dlpy: error: "), err
    assert key in err, err
    metrics = run / "metrics.json"
    assert not metrics.exists() or json.loads(metrics.read_text())["status"] != "finished"
    assert not (run / "checkpoints").exists()


# One case of each builder through the console script's whole path: Hydra parses the override and
# composes the config, and its job runs the recipe.
FIRST_OF_EACH = list(
    {(base, key.rpartition(".")[0]): (o, key, base) for o, key, base in CASES[::-1]}.values()
)


@pytest.mark.parametrize("override, key, base", FIRST_OF_EACH, ids=[c[0] for c in FIRST_OF_EACH])
def test_through_the_console_script_too(override, key, base, run_cli, tmp_path):
    run = tmp_path / "run"
    status, out, err = run_cli("train", *base, override, f"hydra.run.dir={run}")
    assert "Traceback" not in out + err
    assert status != 0 and err.count("\n") == 1 and key in err, err
    assert not (run / "checkpoints").exists()

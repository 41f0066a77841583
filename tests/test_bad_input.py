"""Bad input ends in one line naming what is wrong, never in a traceback.

Two fuzzes. The first: syntax errors and every key of the default config (Fashion-MNIST + cnn)
with values of the wrong kind, through `dlpy.cli.main`, the code the console script runs; each
fails before training starts, or trains a step of the smoke config.

The second is generated from the schema (dlpy/schema.py): every option of every registered
builder, each given values outside its declared type and range, must end `dlpy train` in one line
naming the option's full key, with a non-zero exit and no run folder that looks finished. Each
builder is reached through a config that selects it: the first preset of its group whose config
passes `check_config`, with the first data set or model below that fits it. The cases run as
Hydra's job runs the recipe (`dlpy.train.run`) on a config composed once per builder, so two
thousand of them take seconds; one case per builder runs through `dlpy.cli.main` as well.
"""

import copy
import json
from functools import cache
from pathlib import Path

import pytest
from conftest import FAST
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dlpy import CONF_DIR, presets, schema, train
from dlpy.build import check_config, options
from dlpy.errors import DlpyError
from dlpy.registry import ALL, CALLBACKS, DATASETS, LOGGERS, MODELS, OPTIMIZERS, SCHEDULERS, TASKS
from dlpy.trainer import Trainer

SMOKE = [*FAST, "trainer.max_steps=1", "trainer.limit_eval_batches=1"]
# Wrong values by the kind of a key's value: other types, and a negative number where none makes
# sense.
WRONG = {
    bool: ["abc", "2"],
    (int, float): ["abc", "null", "-7"],
    str: ["123", "[a,b]"],
    list: ["abc", "[abc]", "[-7]"],
}
# Paths are left out: what a wrong path gives is the data search's own message (tests/test_data.py).
PATHS = {"data_dir", "dataset.root", "dataset.system_dir"}
SYNTAX = [  # (what is typed, what the error line must name)
    ("a=b=c", "a=b=c"),
    ("=1", "=1"),
    ("@=1", "@=1"),
    ("model=[", "model=["),
    ("x", "x"),
    ("a==b", "a==b"),
    ("trainer.max_epochs=${oops", "trainer.max_epochs"),
    ("'x'=1", "'x'=1"),
    ("-x=1", "-x=1"),
    ("a=b)", "a=b)"),
    ("a=choice(1,2", "a=choice(1,2"),
    ("a=range(1,x)", "a=range(1,x)"),
    ("key with space=1", "key with space=1"),
    ("a={b:", "a={b:"),
    ("a=[1,2]]", "a=[1,2]]"),
    ("trainer.max_epochs=", "trainer.max_epochs"),
    ("+trainer.max_epochs=1", "trainer.max_epochs"),
    ("model=mlp,cnn", "model"),
    ("trainer.max_epochs=1,2", "max_epochs"),
    ("~dataset", "dataset"),
    ("~trainer", "trainer"),
    ("foo=bar", "foo"),
    ("trainer.max_epoch=3", "trainer.max_epoch"),
    ("+model.bogus=1", "bogus"),
    ("+optimizer.bogus=1", "bogus"),
    ("+trainer.bogus=1", "bogus"),
    ("model=nosuch", "nosuch"),
    ("dataset=nosuch", "nosuch"),
    ("optimizer=nosuch", "nosuch"),
    ("trainer=nosuch", "nosuch"),
    ("scheduler=nosuch", "nosuch"),
    ("experiment=nosuch", "nosuch"),
    ("hydra/launcher=nosuch", "nosuch"),
    ("model.name=nosuch", "model.name"),
    ("model.task.name=nosuch", "model.task.name"),
    ("dataset.name=nosuch", "dataset.name"),
    ("optimizer.name=nosuch", "optimizer.name"),
    ("scheduler.name=nosuch", "scheduler.name"),
    ("trainer.precision=fp8", "trainer.precision"),
    ("trainer.device=tpu", "trainer.device"),
    ("trainer.mode=up", "trainer.mode"),
    ("trainer.on_nan=maybe", "trainer.on_nan"),
    ("dataset.scaling=bogus", "dataset.scaling"),
    ("trainer.max_epochs=${trainer.nosuch}", "trainer.nosuch"),
    ("trainer.max_epochs=${oc.env:DLPY_NO_SUCH_VARIABLE}", "DLPY_NO_SUCH_VARIABLE"),
    ("trainer.resume=/nonexistent/run", "/nonexistent/run"),
    ("dataset.val_size=1000000", "dataset.val_size"),
    ("dataset.batch_size=0", "dataset.batch_size"),
    ("model.dropout=1.5", "dropout"),
    ("scheduler.pct_start=1.5", "pct_start"),
    ("optimizer.betas=[0.9]", "betas"),
    ("seed=4294967296", "seed"),
    ("trainer.max_epochs=0", "max_epochs"),
    ("--bogus", "--bogus"),
    ("--cfg", "--cfg"),
    ("--cfg=nosuch", "nosuch"),
]


def generated_cases():
    """Every key of the default config, each with the wrong values of its kind."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", SMOKE)
    cases = []
    for key, value in flat(OmegaConf.to_container(cfg, resolve=True)).items():
        kinds = [
            kind
            for kind in WRONG
            if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        ]
        if key in PATHS or not kinds:
            continue
        for wrong in WRONG[kinds[0]]:
            # a wrong element of a list is named by the config node it belongs to
            cases.append(
                (
                    f"{key}={wrong}",
                    key.rsplit(".", 1)[0] if wrong.startswith("[") and kinds[0] is list else key,
                )
            )
    return cases


def flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


CASES = SYNTAX + generated_cases()


def test_the_fuzz_covers_at_least_200_bad_inputs():
    assert len(CASES) >= 200 and len(set(CASES)) == len(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("override, named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_runs_or_fails_in_one_line_naming_the_key(override, named, run_cli, tmp_path):
    args = [*SMOKE, f"hydra.run.dir={tmp_path / 'run'}"]
    status, out, err = run_cli(
        "train", *([*args, override] if not override.startswith("-") else [override, *args])
    )
    assert "Traceback" not in out + err
    if status == 0:
        return  # the value was acceptable after all and the smoke run trained
    assert err.count("\n") == 1 and err.startswith("dlpy: error: "), err
    assert named in err, err


# The fuzz generated from the schema.

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


def schema_cases() -> list[tuple[str, str, tuple[str, ...]]]:
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


SCHEMA_CASES = schema_cases()


def test_every_registered_builder_and_option_is_reached():
    reached = {(node.split(".")[0], registry_of(node).kind, name) for node, _, name, _ in BUILDERS}
    for registry in ALL:
        for name in registry.names():
            assert any(r[1:] == (registry.kind, name) for r in reached), (
                f"{registry.kind} {name} is reached by no config"
            )
    keys = {key for _, key, _ in SCHEMA_CASES}
    for node, builder, _, _ in BUILDERS:
        for name, _, _ in schema.declared(builder):
            key = f"{node}.{name}"
            assert name in GIVEN or key in OWN_CHECK or key in keys, f"{key} has no case"


def test_the_generated_fuzz_has_at_least_1000_cases():
    assert len(SCHEMA_CASES) >= 1000, len(SCHEMA_CASES)
    assert len({(o, b) for o, _, b in SCHEMA_CASES}) == len(SCHEMA_CASES)


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


@pytest.fixture(autouse=True, scope="module")
def no_hydra_config_after_this_module():
    """composed_job sets Hydra's config as a job sees it; the tests after this module's must not
    see it (the HPARAMS read the chosen presets from it)."""
    yield
    HydraConfig.instance().cfg = None


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
    "override, key, base", SCHEMA_CASES, ids=[f"{c[0]}|{'/'.join(c[2])}" for c in SCHEMA_CASES]
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
    {(base, key.rpartition(".")[0]): (o, key, base) for o, key, base in SCHEMA_CASES[::-1]}.values()
)


@pytest.mark.parametrize("override, key, base", FIRST_OF_EACH, ids=[c[0] for c in FIRST_OF_EACH])
def test_through_the_console_script_too(override, key, base, run_cli, tmp_path):
    run = tmp_path / "run"
    status, out, err = run_cli("train", *base, override, f"hydra.run.dir={run}")
    assert "Traceback" not in out + err
    assert status != 0 and err.count("\n") == 1 and key in err, err
    assert not (run / "checkpoints").exists()


# The commands' own options (dlpy eval episodes=, dlpy sample n=, ...), generated from their
# declarations the same way: each value outside one ends the command in one line naming it, before
# the run folder (here, one that does not exist) is read.


def command_options() -> list[tuple[str, list[str], str, schema.Option]]:
    """(command, the arguments that choose what it does, option, declaration) for every option."""
    from dlpy import commands, predict, visualize

    found = [("eval", [], key, o) for key, o in commands.EVAL_OPTIONS.items()]
    found += [("sample", [], key, o) for key, o in commands.SAMPLE_OPTIONS.items()]
    found += [("predict", ["a.png"], key, o) for key, o in predict.PREDICT_OPTIONS.items()]
    for kind in visualize.KINDS:
        found += [("visualize", [f"kind={kind}"], k, o) for k, o in visualize.options(kind).items()]
    return found


def on_the_command_line(found: schema.Option) -> list[str]:
    """outside() as a command's key=value text: a list is comma-separated, so its cases are its
    elements'; a mapping means nothing there; any text is a string."""
    if found.kind is str:
        return []
    values = [value for value in outside(found) if not value.startswith("{")]
    if found.item is not None:
        return [value[1:-1] for value in values if value.startswith("[") and value != "[1]"]
    return values


COMMAND_CASES = [
    (command, [*chosen, f"{key}={value}"], key)
    for command, chosen, key, found in command_options()
    for value in on_the_command_line(found)
]


def test_every_command_option_has_cases():
    covered = {(command, key) for command, _, key in COMMAND_CASES}
    for command, _, key, found in command_options():
        # a text option (a layer's name, an image's path) is checked where it is looked up
        assert (command, key) in covered or found.kind is str, (command, key)


@pytest.mark.parametrize(
    "command, args, key", COMMAND_CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in COMMAND_CASES]
)
def test_a_command_option_outside_its_declaration_fails_in_one_line(command, args, key, run_cli):
    status, out, err = run_cli(command, "/nonexistent/run", *args)
    assert "Traceback" not in out + err
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"dlpy: error: {key}"), err

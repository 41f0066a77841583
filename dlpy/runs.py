"""A finished run as the commands that read it see it: its config, data and best weights.

`dlpy eval`, `sample`, `visualize`, `predict` and `export` all start here: the run folder's saved
config (with the command's key=value overrides) rebuilds the data and the task, and the best
checkpoint fills in the weights.
"""

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlpy.build import build_data, build_task
from dlpy.data.base import DataSet
from dlpy.data.text import ReviewData
from dlpy.data.vision import ImageData
from dlpy.ema import evaluated_weights
from dlpy.errors import DlpyError
from dlpy.io import load_checkpoint, resolve_checkpoint
from dlpy.schema import Option
from dlpy.shapes import check_sizes
from dlpy.trainer import Trainer

TRUE = ("true", "1", "yes")
BOOLEANS = {word: True for word in TRUE} | {"false": False, "0": False, "no": False}
INTEGER = re.compile(r"[+-]?\d+")
REVIEW_CLASSES = ["neg", "pos"]  # read_reviews's labels 0 and 1
# `key=value` with a config key on the left: a run override, not a file to read
OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")


def load_run(args: list[str], usage: str) -> tuple[Path, DictConfig, Trainer]:
    """A run folder's config (with key=value overrides) and a trainer holding its best weights."""
    if not args or args[0].startswith("-"):
        raise DlpyError(f"usage: {usage}")
    run_dir = Path(args[0])
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise DlpyError(f"{config_file} not found: is {run_dir} a dlpy run folder?")
    cfg = OmegaConf.merge(OmegaConf.load(config_file), OmegaConf.from_dotlist(args[1:]))
    opts = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer = Trainer(
        device=opts["device"], precision=opts["precision"], channels_last=opts["channels_last"]
    )
    data = build_data(cfg).to(trainer.device)
    data.seed(cfg.seed)  # an agent then plays the episodes its run was evaluated on
    check_sizes(cfg, data)  # an override of the data (dataset.classes=...) may not fit the model
    trainer.setup(build_task(cfg), data)
    checkpoint = resolve_checkpoint(run_dir, "best.pt")
    # a run with trainer.ema is evaluated, exported and predicted with its averaged weights
    trainer.task.load_state_dict(evaluated_weights(load_checkpoint(checkpoint, trainer.device)))
    return run_dir, cfg, trainer


def own_options(args: list[str], names: set[str] | tuple[str, ...]) -> tuple[dict, list[str]]:
    """The command's own key=value options, apart from the config overrides of the run."""
    own = {}
    rest = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in names:
            own[key] = value
        else:
            rest.append(arg)
    return own, rest


def typed_options(own: dict[str, str], declared: dict[str, Option]) -> dict[str, Any]:
    """The command's own `key=value` strings as the values their declarations (dlpy/schema.py)
    say, each checked before anything runs: `episodes must be an integer in [1, 10000], got
    100000`. A string that does not parse as its kind is checked as it is, so the same line
    refuses `episodes=many`, `record=maybe` and `temperature=nan`."""
    values = {key: parsed(text, declared[key]) for key, text in own.items()}
    for key, value in values.items():
        declared[key].check(key, value)
    return values


def parsed(text: str, declared: Option) -> Any:
    """One option's string as its declared kind, where it is one (else the string itself)."""
    if declared.item is not None:  # temperature=0.2,0.5: a list, comma-separated
        return [parsed(part, declared.item) for part in text.split(",")]
    if text == "null" and declared.nullable:
        return None
    if declared.kind is bool:
        return BOOLEANS.get(text.lower(), text)
    if declared.kind is int:
        return int(text) if INTEGER.fullmatch(text.strip()) else text
    if declared.kind is float:
        try:
            return float(text)  # "nan" and "inf" parse, and the range refuses them
        except ValueError:
            return text
    return text


def paths_and_overrides(args: list[str]) -> tuple[list[str], list[str]]:
    """(run folders and files, config overrides): `key=value` is an override unless it is a file."""
    paths = []
    overrides = []
    for arg in args:
        if OVERRIDE.match(arg) and not Path(arg).exists():
            overrides.append(arg)
        else:
            paths.append(arg)
    return paths, overrides


def class_names(data: DataSet) -> list[str] | None:
    """A classifier's class names: the image set's own, IMDB's neg and pos; None for others."""
    if isinstance(data, ImageData):
        return list(data.classes)
    if isinstance(data, ReviewData):
        return list(REVIEW_CLASSES)
    return None

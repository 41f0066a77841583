"""The hyperparameters a run is compared by: the keys typed on the command line (in a sweep, the
keys that vary), then a short fixed set, each with its own type.

The whole config (57-59 keys) buried the few that differ under constant ones (data_dir, download)
in TensorBoard's HPARAMS, which shows five columns at first; the config itself is kept in the
run's .hydra/config.yaml and in every checkpoint.
"""

import os
from typing import Any

from hydra.core.hydra_config import HydraConfig

HParam = bool | int | float | str
# What runs of every family are compared by (Hydra's override keys, so a column reads as the
# override that sets it): the groups' choices, then the rate, the batch size and the seed.
FIXED = ("model", "dataset", "optimizer", "optimizer.lr", "dataset.batch_size", "seed")
# Overrides that change how a run is watched or launched, not what it learns.
UNCOMPARED = ("logger", "launcher", "hydra")


def run_hparams(config: dict[str, Any]) -> dict[str, HParam]:
    """The hyperparameters of the run being composed: Hydra's overrides and choices when Hydra
    runs the job, the fixed set from the config alone otherwise (a config composed in a test)."""
    if not HydraConfig.initialized():
        return select(config, [], {})
    hydra = HydraConfig.get()
    choices = {key: value for key, value in hydra.runtime.choices.items() if value is not None}
    return select(config, list(hydra.overrides.task), choices)


def select(
    config: dict[str, Any], overrides: list[str], choices: dict[str, str]
) -> dict[str, HParam]:
    """The overridden keys in the order typed, then FIXED; a group is named by its choice
    (`model: vae`), a key by its value in the resolved config; a key the config lacks (an
    agent's batch size) is left out."""
    keys = [key for key in map(override_key, overrides) if key] + list(FIXED)
    hparams = {}
    for key in keys:
        if key in hparams or key.partition(".")[0] in UNCOMPARED:
            continue
        value = choices[key] if key in choices else lookup(config, key)
        if isinstance(value, dict):
            value = value.get("name")  # a group without Hydra's choices: its builder's name
        if value is not None:
            hparams[key] = hparam(value)
    return hparams


def override_key(override: str) -> str | None:
    """`seed=1` -> seed, `+model.dropout=0.1` -> model.dropout; None for a deletion (`~key`)."""
    if override.startswith("~"):
        return None
    key, _, _ = override.lstrip("+").partition("=")
    return key.partition("@")[0] or None


def lookup(config: dict[str, Any], key: str) -> Any:
    """config["a"]["b"] for "a.b"; None where a part is missing."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def hparam(value: Any) -> HParam:
    """A value as TensorBoard and the trackers type it: bools stay bools (not 1.0), a path has
    its `~` expanded, a list becomes its text."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return os.path.expanduser(value) if value.startswith("~") else value
    return str(value)

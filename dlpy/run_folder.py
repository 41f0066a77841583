"""One run folder, one run: no run writes over another's files.

A folder that holds a run (its metrics.json, checkpoints or saved config) is refused to a new run,
in one line naming it, unless the new run resumes it (`trainer.resume`) on the settings it was
trained with, give or take those in MAY_CHANGE, or `trainer.overwrite=true` replaces it. The
check has to come before anything is written: Hydra would write the new config into the folder
before dlpy's job starts, so conf/train.yaml turns that off (`hydra.output_subdir: null`) and
`record_config` writes .hydra/ once `claim` has made the folder this run's. The default folder is
made unique when it is named (the `${dlpy.new_dir:...}` resolver, in dlpy/__init__.py).
"""

import json
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dlpy.errors import RAN, DlpyError, first_line
from dlpy.io import atomic_write, resolve_checkpoint

log = logging.getLogger("dlpy")
Metrics = dict[str, Any]  # metrics.json: numbers, the status, an error line

# What tells a folder holds a run: any one of them
RUN_FILES = ("metrics.json", "checkpoints/last.pt", "checkpoints/best.pt", ".hydra/config.yaml")
# The settings a resumed run may change: how long and on what it trains, what watches it, where
# the data files are. The rest must be the run's own: the model and the data set (and so every
# shape), the optimizer and its schedule (the checkpoint's state would override them anyway),
# the seed, the precision. A checkpoint resumed on those would train another experiment under
# the run's name, or fail half-way with the run's files half rewritten.
MAY_CHANGE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.limit_train_batches",
    "trainer.limit_eval_batches",
    "trainer.log_every_n_steps",
    "trainer.val_every_n_epochs",
    "trainer.threads",
    "trainer.device",
    "trainer.compile",
    "trainer.deterministic",
    "trainer.channels_last",
    "callbacks",
    "logger",
    "data_dir",
    "dataset.download",
    "dataset.system_dir",
    "dataset.eval_batch_size",
)
NOT_COMPARED = ("trainer.resume", "trainer.overwrite")  # how this run starts, not what it trains
# What a run and the commands that read it write into its folder (docs/outputs.md): what
# trainer.overwrite=true removes, so that none of it is taken for the new run's (TensorBoard
# would draw both runs' curves as one). Anything else in the folder stays.
RUN_OUTPUTS = (
    ".hydra",
    "checkpoints",
    "metrics.json",
    "resumes.yaml",
    "history.csv",
    "scalars.csv",
    "events.out.tfevents.*",
    "hparams",
    "images",
    "plots",
    "fold*",
    "wandb",
    "samples",
    "visualize",
    "predictions",
    "export",
    "eval",
    "episode.gif",
)
RESUMES = "resumes.yaml"  # one entry per resume: when, from which checkpoint, what changed
ABSENT = "(absent)"  # a key one of two configs does not have


class FolderRefused(DlpyError):
    """The run folder holds another run, or the option that would replace it is wrong: refused
    before anything in it is written, metrics.json included."""


def read_metrics(run_dir: str | Path) -> Metrics:
    """A run folder's metrics.json; {} when there is none or it cannot be read (a run killed
    before writing it)."""
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def finished_metrics(run_dir: str | Path) -> Metrics | None:
    """The metrics of a run that finished, else None (failed, interrupted, or never started).

    A diverged run counts as finished: resumed from its last good checkpoint it would diverge
    again.
    """
    metrics = read_metrics(run_dir)
    return metrics if metrics.get("status") in RAN else None


def claim(cfg: DictConfig, run_dir: str | Path) -> bool:
    """Make `run_dir` this run's, or refuse it (FolderRefused) with nothing in it written;
    whether the run goes on there (False: trainer.resume=auto skips the finished run in it).

    A folder with no run in it is taken as it is; one with a run is replaced on
    trainer.overwrite=true, else resumed if trainer.resume names it and the settings agree (the
    changes are logged and kept in resumes.yaml), else refused. `record_config` then writes the
    config into .hydra/, as Hydra would have.
    """
    folder = Path(run_dir)
    overwrite = cfg.trainer.get("overwrite", False)
    if not isinstance(overwrite, bool):  # the string "false" would be true
        raise FolderRefused(f"trainer.overwrite must be true or false, got {overwrite!r}")
    held = [name for name in RUN_FILES if (folder / name).is_file()]
    resume = cfg.trainer.resume
    if held and overwrite and resumes(resume, folder):
        raise FolderRefused(
            f"trainer.overwrite=true would remove the run in {folder} that trainer.resume={resume} "
            "continues: give one of the two"
        )
    if held and overwrite:
        replace(folder)
    elif held:
        if not resumes(resume, folder):
            raise FolderRefused(
                f"run folder {folder} holds a run already ({', '.join(held)}): resume it with "
                f"trainer.resume={folder}, write elsewhere (hydra.run.dir=...), or replace it "
                "with trainer.overwrite=true"
            )
        if resume == "auto" and finished_metrics(folder):
            return False
        note_resume(cfg, folder)
    return True


def resumes(resume: str | None, folder: Path) -> bool:
    """Whether trainer.resume continues the run in `folder` (its folder, or a checkpoint in its
    checkpoints/)."""
    if resume is None:
        return False
    if resume == "auto":  # the newest folder of the same overrides, or a new one (dlpy.cli)
        return True
    own = resolve_checkpoint(resume).resolve().parent.parent
    return own == folder.resolve()


def note_resume(cfg: DictConfig, folder: Path) -> None:
    """A resumed run trains the model and data set it was trained on (FolderRefused otherwise,
    naming the keys that differ); each setting it changes is logged on a line of its own and
    kept in resumes.yaml."""
    saved_file = folder / ".hydra" / "config.yaml"
    if not saved_file.is_file():  # a folder that `dlpy.train.train` wrote, outside Hydra
        log.warning(
            "%s is missing: the resumed run's settings cannot be compared with the run's own",
            saved_file,
        )
        return
    try:
        saved = OmegaConf.to_container(OmegaConf.load(saved_file), resolve=False)
    except (OSError, ValueError, yaml.YAMLError) as err:  # a file edited or cut short by hand
        raise FolderRefused(
            f"trainer.resume: cannot read {saved_file}: {first_line(err)}"
        ) from None
    changed = differences(saved, OmegaConf.to_container(cfg, resolve=False))
    refused = {key: change for key, change in changed.items() if not may_change(key)}
    if refused:
        shown = "; ".join(
            f"{key}: {show(was)} -> {show(now)}" for key, (was, now) in refused.items()
        )
        raise FolderRefused(
            f"trainer.resume: {folder} was trained on other settings ({shown}); a resumed run "
            f"may change only {allowed()} (trainer.overwrite=true replaces the run)"
        )
    for key, (was, now) in changed.items():
        log.info("trainer.resume: %s %s -> %s", key, show(was), show(now))
    resume = cfg.trainer.resume
    checkpoint = resolve_checkpoint(folder if resume == "auto" else resume)
    entry = {
        "resumed": datetime.now().isoformat(timespec="seconds"),
        # trainer.resume=auto without a checkpoint starts the run afresh in its folder
        "from": str(checkpoint) if checkpoint.is_file() else None,
        "changed": {key: {"was": was, "now": now} for key, (was, now) in changed.items()},
    }
    path = folder / RESUMES
    earlier = yaml.safe_load(path.read_text()) if path.is_file() else []
    text = yaml.safe_dump([*(earlier or []), entry], sort_keys=False)
    atomic_write(path, lambda f: f.write(text.encode()))


def allowed() -> str:
    """MAY_CHANGE in short: `trainer.(max_epochs, max_steps, ...), callbacks, logger, ...`."""
    groups = {}
    for key in MAY_CHANGE:
        group, _, leaf = key.rpartition(".")
        groups.setdefault(group, []).append(leaf)
    return ", ".join(
        f"{g}.({', '.join(leaves)})" if g else ", ".join(leaves) for g, leaves in groups.items()
    )


def show(value: Any) -> str:
    return ABSENT if value is ABSENT else repr(value)


def may_change(key: str) -> bool:
    return any(key == allowed or key.startswith(f"{allowed}.") for allowed in MAY_CHANGE)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """{"trainer.max_epochs": 3, ...}: a config's leaves by dotted key (a list is one leaf)."""
    if not isinstance(node, dict):
        return {prefix: node}
    if not node and prefix:
        return {prefix: {}}
    leaves = {}
    for key, value in node.items():
        leaves |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return leaves


def differences(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (saved value, new value)} for every compared leaf that differs, interpolations
    compared as written (`${dataset.num_classes}` stands for the same number while the data set
    is the same)."""
    was = flatten(saved)
    now = flatten(new)
    keys = sorted((was.keys() | now.keys()) - set(NOT_COMPARED))
    return {
        key: (was.get(key, ABSENT), now.get(key, ABSENT))
        for key in keys
        if was.get(key, ABSENT) != now.get(key, ABSENT)
    }


def replace(folder: Path) -> None:
    """trainer.overwrite=true: the old run's files (RUN_OUTPUTS) go before the new run starts;
    the log that Hydra opened for this run is emptied instead (removed, it would take the new
    run's lines with it)."""
    logs = {
        Path(handler.baseFilename).resolve()
        for handler in logging.root.handlers
        if isinstance(handler, logging.FileHandler)
    }
    for entry in sorted({p for pattern in RUN_OUTPUTS for p in folder.glob(pattern)}):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for path in logs:
        if path.parent == folder.resolve():
            os.truncate(path, 0)
    log.warning("trainer.overwrite=true: the run that was in %s is replaced", folder)


def record_config(cfg: DictConfig, run_dir: str | Path) -> None:
    """.hydra/config.yaml, hydra.yaml and overrides.yaml, written as Hydra writes them (with
    hydra.output_subdir set: plainly, as they can be written again); a file whose text is
    unchanged is left as it is."""
    folder = Path(run_dir)
    hydra = HydraConfig.instance().cfg
    files = {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(hydra),
        "overrides.yaml": OmegaConf.to_yaml(hydra.hydra.overrides.task),
    }
    for name, text in files.items():
        path = folder / ".hydra" / name
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)

"""From config to pieces: each config group's node names a registered builder and its options.

Options are checked against the builder's signature (dlpy/registry.py) before it is called, and
torch's own refusals are turned into one line naming the key, so a bad config fails here, before
any data is read or a step is taken.
"""

import inspect
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    InterpolationKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
)

from dlpy import catalog  # noqa: F401  (importing it registers every built-in builder)
from dlpy.callbacks import Callback, Checkpoint
from dlpy.data.base import DataSet
from dlpy.errors import DlpyError, check_number, first_line, raised_by_dlpy
from dlpy.hparams import run_hparams
from dlpy.registry import (
    CALLBACKS,
    DATASETS,
    LOGGERS,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    TASKS,
    check_kwargs,
    check_signs,
)
from dlpy.tasks.base import OptimizerFactory, Task
from dlpy.trainer import Trainer

SchedulerFactory = Callable[..., Any]  # (optimizer, total_steps=, steps_per_epoch=) -> schedule


def resolved(node: DictConfig, key: str | None = None) -> Any:
    """A config node as plain containers; a value left to give, or one that refers to nothing,
    names its key."""
    where = f"{key}." if key else ""
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        full_key = f"{where}{err.full_key}"
        raise DlpyError(
            f"{full_key} is required: set it on the command line ({full_key}=...)"
        ) from None
    except InterpolationKeyError as err:
        raise DlpyError(
            f"{where}{err.full_key}: {first_line(err)}; does the model fit the dataset "
            "(dlpy list shows both)?"
        ) from None
    except InterpolationResolutionError as err:
        cause = raised_by_dlpy(err)  # a resolver's own refusal (dataset.id), which names its key
        if cause is None:
            raise
        raise cause from None


def options(node: DictConfig, key: str) -> tuple[str, dict[str, Any]]:
    """A config node's builder name and the rest as keyword arguments."""
    kwargs = resolved(node, key)
    if "name" not in kwargs:
        raise DlpyError(f"{key}.name is missing: it names the builder to use")
    return kwargs.pop("name"), kwargs


def check_config(cfg: DictConfig) -> None:
    """Every group's options against its builder's declared schema (dlpy/schema.py), before
    anything is built: a bad value fails in milliseconds, not after the data has loaded."""
    for key, registry in (
        ("dataset", DATASETS),
        ("optimizer", OPTIMIZERS),
        ("scheduler", SCHEDULERS),
    ):
        name, kwargs = options(cfg[key], key)
        check_kwargs(registry.get(name, key), kwargs, f"{key} ({name!r})", key=key)
    name, kwargs = options(cfg.model, "model")
    task_name, task_kwargs = options(OmegaConf.create(kwargs.pop("task")), "model.task")
    check_kwargs(MODELS.get(name, "model"), kwargs, f"model ({name!r})", key="model")
    check_kwargs(TASKS.get(task_name, "model.task"), task_kwargs, "model.task", key="model.task")
    for group, registry in (("callbacks", CALLBACKS), ("logger", LOGGERS)):
        for entry, value in (resolved(cfg[group], group) if cfg.get(group) else {}).items():
            if isinstance(value, dict) and "name" in value:
                key = f"{group}.{entry}"
                kwargs = {k: v for k, v in value.items() if k != "name"}
                check_kwargs(registry.get(value["name"], key), kwargs, key, key=key)
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    check_kwargs(Trainer, trainer, "trainer", key="trainer")


def build_data(cfg: DictConfig) -> DataSet:
    name, kwargs = options(cfg.dataset, "dataset")
    return DATASETS.build(name, key="dataset", **kwargs)


def build_task(cfg: DictConfig) -> Task:
    """The network of `model`, wrapped in the task its `model.task` names."""
    name, kwargs = options(cfg.model, "model")
    task_name, task_kwargs = options(OmegaConf.create(kwargs.pop("task")), "model.task")
    net = MODELS.build(name, key="model", **kwargs)
    optimizer = optimizer_factory(cfg)
    return TASKS.build(task_name, net, key="model.task", optimizer=optimizer, **task_kwargs)


def optimizer_factory(cfg: DictConfig) -> OptimizerFactory:
    """A function of the parameters: the task decides which parameters each optimizer gets
    (lightning-hydra-template's `_partial_: true` optimizer)."""
    name, kwargs = options(cfg.optimizer, "optimizer")
    builder = OPTIMIZERS.get(name, "optimizer")
    check_kwargs(builder, kwargs, f"optimizer ({name!r})", key="optimizer")
    check_number("optimizer.lr", kwargs.get("lr"))
    factory = partial(builder, **kwargs)
    trial(lambda: factory([torch.zeros(1, requires_grad=True)]), "optimizer", name, kwargs)
    check_signs(builder, kwargs, "optimizer")
    return factory


def scheduler_factory(cfg: DictConfig) -> SchedulerFactory:
    """A function of the optimizer and the loop's length, which only the trainer knows."""
    name, kwargs = options(cfg.scheduler, "scheduler")
    builder = SCHEDULERS.get(name, "scheduler")
    check_kwargs(builder, kwargs, f"scheduler ({name!r})", key="scheduler")
    factory = partial(builder, **kwargs)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    build = partial(factory, optimizer, total_steps=100, steps_per_epoch=10)
    trial(build, "scheduler", name, kwargs)
    check_signs(builder, kwargs, "scheduler")
    return factory


def trial(build: Callable[[], Any], key: str, name: str, kwargs: dict[str, Any]) -> None:
    """Build once on a stand-in parameter, so options torch refuses fail now, not when training
    starts."""
    try:
        build()
    except (TypeError, ValueError, LookupError, RuntimeError) as err:
        # torch's message may not name the option: the line names every option given
        given = ", ".join(f"{key}.{k}={v!r}" for k, v in kwargs.items())
        raise DlpyError(
            f"{key} ({name!r}) cannot be built from {given}: {first_line(err)}"
        ) from None


def build_trainer(cfg: DictConfig, run_dir: str | Path) -> Trainer:
    """The trainer of cfg.trainer, with the callbacks of cfg.callbacks and the trackers of
    cfg.logger."""
    opts = OmegaConf.to_container(cfg.trainer, resolve=True)
    config = resolved(cfg)
    hparams = run_hparams(config)
    cbs = build_callbacks(config.get("callbacks"), run_dir, hparams)
    cbs += build_callbacks(config.get("logger"), run_dir, hparams, group="logger")
    cbs.sort(key=lambda callback: isinstance(callback, Checkpoint))  # it saves the others' state
    check_kwargs(Trainer, opts, "trainer", key="trainer")
    return Trainer(**opts, scheduler=scheduler_factory(cfg), callbacks=cbs, config=config)


def build_callbacks(
    entries: dict[str, Any] | None,
    run_dir: str | Path,
    hparams: dict[str, Any],
    group: str = "callbacks",
) -> list[Callback]:
    """The callbacks of the config's `callbacks` group (resolved), built through CALLBACKS, or
    the trackers of its `logger` group, through LOGGERS.

    A builder that takes `run_dir` (a str) or `hparams` (dlpy.hparams: what the run is compared
    by) gets them from dlpy, not from the config. Checkpoint runs last wherever its entry stands:
    it saves the others' state.
    """
    registry = LOGGERS if group == "logger" else CALLBACKS
    given = {"run_dir": str(run_dir), "hparams": hparams}
    built = []
    for entry, value in (entries or {}).items():
        key = f"{group}.{entry}"
        if value is None:
            continue  # `callbacks.<entry>: null` turns one off where `~` cannot: in a preset
        if not isinstance(value, dict):
            raise DlpyError(f"{key} must be a mapping such as {{name: {entry}}}, got {value!r}")
        if "name" not in value:
            raise DlpyError(f"{key}.name is missing: it names the callback (dlpy list shows them)")
        kwargs = dict(value)
        name = kwargs.pop("name")
        if clash := sorted(given.keys() & kwargs.keys()):
            raise DlpyError(f"{key}.{clash[0]} is dlpy's to give (the run), not the config's")
        takes = inspect.signature(registry.get(name, key)).parameters
        callback = registry.build(
            name, key=key, **kwargs, **{k: v for k, v in given.items() if k in takes}
        )
        if callback is not None:  # None: off with these options (early stopping at patience 0)
            built.append(callback)
    return sorted(built, key=lambda callback: isinstance(callback, Checkpoint))

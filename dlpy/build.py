"""From config to pieces: each config group's node names a registered builder and its options.

Options are checked against the builder's signature (dlpy/registry.py) before it is called, and
torch's own refusals are turned into one line naming the key, so a bad config fails here, before
any data is read or a step is taken.
"""

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, MissingMandatoryValue

from dlpy import catalog  # noqa: F401  (importing it registers every built-in builder)
from dlpy.data.base import DataSet
from dlpy.errors import DlpyError, check_number, first_line
from dlpy.registry import DATASETS, MODELS, OPTIMIZERS, SCHEDULERS, TASKS, check_kwargs, check_signs
from dlpy.tasks.base import OptimizerFactory, Task

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


def options(node: DictConfig, key: str) -> tuple[str, dict[str, Any]]:
    """A config node's builder name and the rest as keyword arguments."""
    kwargs = resolved(node, key)
    if "name" not in kwargs:
        raise DlpyError(f"{key}.name is missing: it names the builder to use")
    return kwargs.pop("name"), kwargs


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

"""Optimizers and learning-rate schedules.

An optimizer builder takes the parameters first (torch's own classes do). A schedule builder
takes the optimizer and the loop's length, which only the trainer knows, so the trainer
builds schedules while the task builds its optimizers. Every schedule but plateau advances
once per optimizer step; plateau advances once per evaluation, on the monitored metric.
"""

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer, lr_scheduler
from torch.optim.lr_scheduler import LRScheduler

from dlpy.registry import OPTIMIZERS, SCHEDULERS

OPTIMIZERS.register("adam", "Adam (Kingma & Ba, 2015)")(torch.optim.Adam)
OPTIMIZERS.register("adamw", "Adam with decoupled weight decay (Loshchilov & Hutter, 2019)")(
    torch.optim.AdamW
)
OPTIMIZERS.register("sgd", "SGD with optional momentum and Nesterov momentum")(torch.optim.SGD)
OPTIMIZERS.register("rmsprop", "RMSprop (Hinton's lecture 6e), Keras's default for RNNs")(
    torch.optim.RMSprop
)


@SCHEDULERS.register("none")
def constant(optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int) -> None:
    """Constant learning rate."""
    return None


@SCHEDULERS.register("step")
def step(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    step_epochs: int = 30,
    gamma: float = 0.1,
) -> LRScheduler:
    """Multiply the learning rate by gamma every step_epochs epochs."""
    return lr_scheduler.StepLR(optimizer, step_size=step_epochs * steps_per_epoch, gamma=gamma)


@SCHEDULERS.register("cosine")
def cosine(
    optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int, min_lr: float = 0.0
) -> LRScheduler:
    """Cosine decay to min_lr over the whole run (Loshchilov & Hutter, SGDR)."""
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


@SCHEDULERS.register("onecycle")
def onecycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    max_lr: float | list[float] | None = None,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> LRScheduler:
    """One-cycle policy (Smith, 2018): warm up to max_lr, then anneal.

    max_lr defaults to the optimizer's learning rate.
    """
    max_lr = max_lr or [g["lr"] for g in optimizer.param_groups]
    # torch divides by the warm-up's length in steps, so a very short run needs more than one.
    pct_start = min(max(pct_start, 1.5 / total_steps), 1 - 0.5 / total_steps)
    return lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )


@SCHEDULERS.register("plateau")
def plateau(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    mode: str = "max",
    factor: float = 0.1,
    patience: int = 5,
    min_lr: float = 0.0,
) -> LRScheduler:
    """Reduce the learning rate by factor when the monitored metric stops improving."""
    return lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr
    )


def total_steps(max_epochs: float, max_steps: float, steps_per_epoch: float) -> int:
    """The run's length in optimizer steps: max_steps or max_epochs, whichever ends it first."""
    epochs = max_epochs * steps_per_epoch or float("inf")
    return int(min(max_steps or float("inf"), epochs))


def plan(
    factory: Callable[..., Any] | None,
    total_steps: int,
    steps_per_epoch: float,
    optimizer: Optimizer,
) -> Any:
    """An optimizer's schedule (the scheduler config group) over the run's steps; None
    without a schedule."""
    if factory is None:
        return None
    return factory(optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch)


def step_plateaus(schedulers: list[Any], monitored: float | None) -> None:
    """After an evaluation: plateau schedules step on the monitored metric, once per evaluation
    (the others step with their optimizer)."""
    for scheduler in schedulers:
        if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau) and monitored is not None:
            scheduler.step(monitored)

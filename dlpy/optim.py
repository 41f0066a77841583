"""Optimizers and learning-rate schedules.

An optimizer builder takes the parameters first (torch's own classes do). A schedule builder
takes the optimizer and the loop's length, which only the trainer knows, so the trainer
builds schedules while the task builds its optimizers. Every schedule but plateau advances
once per optimizer step; plateau advances once per evaluation, on the monitored metric.
"""

from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

import torch
from torch.optim import Optimizer, lr_scheduler
from torch.optim.lr_scheduler import LRScheduler

from dlpy.errors import DlpyError
from dlpy.registry import OPTIMIZERS, SCHEDULERS
from dlpy.schema import Count, NonNegative, Positive, Probability, Range, Size

Beta = Annotated[float, Range(ge=0, lt=1)]  # a beta of 1 makes Adam's bias correction 1 / 0
Params = Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]]  # or param groups, torch's way


@OPTIMIZERS.register("adam")
def adam(
    params: Params,
    lr: NonNegative = 1e-3,
    betas: list[Beta] = (0.9, 0.999),
    eps: Positive = 1e-8,
    weight_decay: NonNegative = 0.0,
    amsgrad: bool = False,
    fused: bool | None = None,
) -> Optimizer:
    """Adam (Kingma & Ba, 2015)"""
    check_betas(betas)
    kwargs = {"eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad, "fused": fused}
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("adamw")
def adamw(
    params: Params,
    lr: NonNegative = 1e-3,
    betas: list[Beta] = (0.9, 0.999),
    eps: Positive = 1e-8,
    weight_decay: NonNegative = 0.01,
    amsgrad: bool = False,
    fused: bool | None = None,
) -> Optimizer:
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019)"""
    check_betas(betas)
    kwargs = {"eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad, "fused": fused}
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("sgd")
def sgd(
    params: Params,
    lr: NonNegative = 1e-3,
    momentum: NonNegative = 0.0,
    dampening: Probability = 0.0,
    weight_decay: NonNegative = 0.0,
    nesterov: bool = False,
    fused: bool | None = None,
) -> Optimizer:
    """SGD with optional momentum and Nesterov momentum"""
    kwargs = {"momentum": momentum, "dampening": dampening, "weight_decay": weight_decay}
    return torch.optim.SGD(params, lr=lr, nesterov=nesterov, fused=fused, **kwargs)


@OPTIMIZERS.register("rmsprop")
def rmsprop(
    params: Params,
    lr: NonNegative = 1e-2,
    alpha: Probability = 0.99,
    eps: Positive = 1e-8,
    weight_decay: NonNegative = 0.0,
    momentum: NonNegative = 0.0,
    centered: bool = False,
) -> Optimizer:
    """RMSprop (Hinton's lecture 6e), Keras's default for RNNs"""
    kwargs = {"eps": eps, "weight_decay": weight_decay, "momentum": momentum}
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, centered=centered, **kwargs)


def check_betas(betas: list[float]) -> None:
    """Two coefficients, as torch wants; each in [0, 1) is the schema's, the count is here."""
    if len(betas) != 2:
        raise DlpyError(f"optimizer.betas must be a list of two numbers, got {list(betas)!r}")


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
    step_epochs: Size = 30,
    gamma: Annotated[float, Range(gt=0, le=1)] = 0.1,
) -> LRScheduler:
    """Multiply the learning rate by gamma every step_epochs epochs."""
    return lr_scheduler.StepLR(optimizer, step_size=step_epochs * steps_per_epoch, gamma=gamma)


@SCHEDULERS.register("cosine")
def cosine(
    optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int, min_lr: NonNegative = 0.0
) -> LRScheduler:
    """Cosine decay to min_lr over the whole run (Loshchilov & Hutter, SGDR)."""
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


@SCHEDULERS.register("onecycle")
def onecycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    max_lr: Positive | None = None,
    pct_start: Annotated[float, Range(gt=0, lt=1)] = 0.25,
    div_factor: Annotated[float, Range(ge=1)] = 25.0,
    final_div_factor: Annotated[float, Range(ge=1)] = 1e4,
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
    mode: Literal["min", "max"] = "max",
    factor: Annotated[float, Range(gt=0, lt=1)] = 0.1,
    patience: Count = 5,
    min_lr: NonNegative = 0.0,
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

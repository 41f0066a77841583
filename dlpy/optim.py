"""Optimizers and learning-rate schedules.

An optimizer builder takes the parameters first (torch's own classes do). A schedule builder
takes the optimizer and the loop's length, which only the trainer knows, so the trainer
builds schedules while the task builds its optimizers. Every schedule but plateau advances
once per optimizer step; plateau advances once per evaluation, on the monitored metric.
"""

import torch
from torch.optim import lr_scheduler

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
def constant(optimizer, *, total_steps, steps_per_epoch):
    """Constant learning rate."""
    return None


@SCHEDULERS.register("step")
def step(optimizer, *, total_steps, steps_per_epoch, step_epochs=30, gamma=0.1):
    """Multiply the learning rate by gamma every step_epochs epochs."""
    return lr_scheduler.StepLR(optimizer, step_size=step_epochs * steps_per_epoch, gamma=gamma)


@SCHEDULERS.register("cosine")
def cosine(optimizer, *, total_steps, steps_per_epoch, min_lr=0.0):
    """Cosine decay to min_lr over the whole run (Loshchilov & Hutter, SGDR)."""
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


@SCHEDULERS.register("onecycle")
def onecycle(
    optimizer,
    *,
    total_steps,
    steps_per_epoch,
    max_lr=None,
    pct_start=0.25,
    div_factor=25.0,
    final_div_factor=1e4,
):
    """One-cycle policy (Smith, 2018): warm up to max_lr, then anneal; max_lr defaults to optimizer.lr."""
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
    optimizer, *, total_steps, steps_per_epoch, mode="max", factor=0.1, patience=5, min_lr=0.0
):
    """Reduce the learning rate by factor when the monitored metric stops improving."""
    return lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr
    )

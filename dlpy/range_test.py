"""The learning-rate range test (Leslie N. Smith, "Cyclical Learning Rates for Training Neural
Networks", 2015, section 3.3), as fastai's `lr_find` and Lightning's `Tuner.lr_find` run it.

The task's own training steps run at a learning rate that grows exponentially from min_lr to
max_lr. The loss is smoothed with a debiased exponential moving average (beta 0.98, fastai's) and
the test stops once the smoothed loss passes stop_factor (4) times its best. Everything the steps
changed (weights, optimizer state, the random generators, the data's shuffling state, the loss
scale) is put back after (`range_test`).

The suggestion is the rate of steepest descent of the smoothed loss, Lightning's
(`_LRFinder.suggestion`: the most negative gradient, leaving out the first 10 points and the
last); beside it fastai's "minimum": a tenth of the rate at the lowest smoothed loss.
"""

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch

from dlpy.checkpointing import rng_state, set_rng_state
from dlpy.data.base import Batch
from dlpy.errors import DlpyError
from dlpy.trainer import Trainer

SKIP_BEGIN = 10  # Lightning's suggestion leaves out the first 10 points and the last one
SKIP_END = 1


@dataclass
class Options:
    """The test's settings: `dlpy lr_find min_lr=... max_lr=...` (fastai's defaults)."""

    min_lr: float = 1e-7
    max_lr: float = 10.0
    steps: int = 100
    stop_factor: float = 4.0  # stop once the smoothed loss passes this many times its best
    beta: float = 0.98  # the smoothing of the loss (fastai's)
    suggest: str = "steepest"  # or "minimum": which suggestion the override line gives


@dataclass
class Curve:
    """The learning rates tried and the training loss at each, raw and smoothed."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped: str = ""  # why the test ended before `steps`, if it did


class RangeTrainer(Trainer):
    """A trainer that keeps the loss each training step hands to `backward`: the loss the
    optimizer steps on, whatever the task names it in its logs (a VAE's recon + beta * KL)."""

    loss: torch.Tensor | None = None

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.loss = loss.detach()
        super().backward(loss, optimizer)


@contextmanager
def restored(trainer: Trainer) -> Iterator[None]:
    """Inside, anything may train; after, the task's weights and buffers, its optimizer's state
    and rates, the global random generators, the data's generator, the loss scale and the
    train/eval mode are as they were before."""
    task = trainer.task
    weights = copy.deepcopy(task.state_dict())
    optimizers = [copy.deepcopy(opt.state_dict()) for opt in trainer.optimizers]
    generators = rng_state()
    data = copy.deepcopy(trainer.data.state_dict())
    scaler = copy.deepcopy(trainer.precision.state_dict())
    training = task.training
    try:
        yield
    finally:
        task.load_state_dict(weights)
        for opt, state in zip(trainer.optimizers, optimizers, strict=True):
            opt.load_state_dict(state)
        set_rng_state(generators)
        trainer.data.load_state_dict(data)
        trainer.precision.load_state_dict(scaler)
        task.train(training)


def endless(trainer: Trainer) -> Iterator[Batch]:
    """The task's training batches, epoch after epoch (a short test fits in one)."""
    while True:
        empty = True
        for batch in trainer.task.batches(trainer.data):
            empty = False
            yield trainer.precision.move(batch)
        if empty:
            raise DlpyError("dlpy lr_find: the training split gives no batch")


def sweep(trainer: RangeTrainer, options: Options, lr: float) -> Curve:
    """The range test's steps, leaving the trained state as it ends (`range_test` restores it).

    `lr` is the configured rate (optimizer.lr): each parameter group keeps its ratio to it (a
    pretrained body's smaller rate, say) while the rate sweeps.
    """
    optimizer = trainer.optimizers[0]
    ratios = [group["lr"] / lr for group in optimizer.param_groups]
    growth = (options.max_lr / options.min_lr) ** (1 / (options.steps - 1))
    curve = Curve()
    average = 0.0
    best = math.inf
    trainer.task.train()
    for i, batch in enumerate(islice(endless(trainer), options.steps)):
        rate = options.min_lr * growth**i
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            group["lr"] = rate * ratio
        trainer.flags = []  # the trainer's per-step NaN flags: this loop reads the loss itself
        with trainer.precision.autocast():
            trainer.task.training_step(batch, i)
        loss = float(trainer.loss)  # one sync a step: the test reads every loss
        average = options.beta * average + (1 - options.beta) * loss
        smoothed = average / (1 - options.beta ** (i + 1))  # debiased, as Adam's moments are
        curve.lrs.append(rate)
        curve.losses.append(loss)
        curve.smoothed.append(smoothed)
        if not math.isfinite(smoothed):
            curve.stopped = f"the loss was {loss} at lr {rate:.2g}"
            break
        if smoothed > options.stop_factor * best:
            curve.stopped = f"the smoothed loss passed {options.stop_factor:g} x its best"
            break
        best = min(best, smoothed)
    return curve


def range_test(trainer: RangeTrainer, options: Options, lr: float) -> Curve:
    """The range test from the trainer's current state, which is the same after it."""
    with restored(trainer):
        return sweep(trainer, options, lr)


def steepest(curve: Curve) -> float | None:
    """The rate where the smoothed loss falls fastest against log(lr) (Lightning's suggestion);
    None when the curve is too short to leave out its first 10 points and its last."""
    lrs = np.array(curve.lrs[SKIP_BEGIN:-SKIP_END])
    loss = np.array(curve.smoothed[SKIP_BEGIN:-SKIP_END])
    finite = np.isfinite(loss)
    if finite.sum() < 3:
        return None
    return float(lrs[finite][np.gradient(loss[finite], np.log(lrs[finite])).argmin()])


def minimum(curve: Curve) -> float:
    """A tenth of the rate at the lowest smoothed loss (fastai's "minimum" suggestion)."""
    smoothed = np.array(curve.smoothed)
    return float(np.array(curve.lrs)[np.nanargmin(smoothed)] / 10)


def suggestion(curve: Curve, choice: str) -> tuple[float, str]:
    """(the suggested rate, how it was found): `choice`, or the minimum's when too short."""
    rate = steepest(curve) if choice == "steepest" else None
    if rate is not None:
        return rate, "steepest descent of the smoothed loss (Lightning's Tuner.lr_find)"
    why = "" if choice == "minimum" else f"; too few points for the steepest, {len(curve.lrs)}"
    return minimum(curve), f"a tenth of the rate of lowest smoothed loss (fastai's minimum{why})"

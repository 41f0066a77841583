"""Gradient accumulation (trainer.accumulate=N): N micro-batches make one optimizer step.

The gradients of N batches of size B, each mean loss scaled by 1/N and summed in the parameters'
`.grad`, are the gradient of one batch of N * B samples: the step is that of the larger batch
at the memory of the smaller one (Lightning's `accumulate_grad_batches`; the recipe of torch.amp's
"Gradient accumulation" example, which scales, backs up each micro-batch and steps the scaler
once). The scale is each micro-batch's share of the window's samples (1/N for equal batches), so
that a window with a smaller last batch, or the epoch's last window of fewer micro-batches, is the
mean over the samples it holds, exactly as the larger batch would be. The trainer's step, the
schedules and trainer.max_steps count optimizer steps.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch

from dlpy.data.base import Batch
from dlpy.errors import DlpyError


@dataclass(frozen=True)
class Window:
    """Where a micro-batch stands in its optimizer step: micro-batch `index` of `size`, holding
    `share` of the window's samples."""

    index: int = 0
    size: int = 1
    share: float = 1.0

    @property
    def first(self) -> bool:
        """The gradients are cleared before this micro-batch's backward pass."""
        return self.index == 0

    @property
    def last(self) -> bool:
        """The optimizer steps after this micro-batch's backward pass."""
        return self.index == self.size - 1

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The micro-batch's part of the window's mean loss (the loss itself alone in one)."""
        return loss * self.share if self.size > 1 else loss


WHOLE = Window()  # no accumulation: every batch is a step of its own


def windows(batches: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    """The batches in consecutive groups of `size` (the last may be shorter)."""
    iterator = iter(batches)
    while window := list(islice(iterator, size)):
        yield window


def mean_logs(logs: list[dict[str, Any]]) -> dict[str, Any]:
    """A window's logged numbers, each the mean over its micro-batches (on the device: no
    read-back); one micro-batch's logs are returned as they are."""
    if len(logs) == 1:
        return logs[0]
    return {key: sum(step[key] for step in logs) / len(logs) for key in logs[0]}


def check_task(accumulate: int, optimizers: int, ddp: bool, task: str) -> None:
    """trainer.accumulate > 1 needs a task that takes one optimizer step per batch, alone."""
    if accumulate <= 1:
        return
    if optimizers != 1:
        raise DlpyError(
            f"trainer.accumulate={accumulate}: {task} steps {optimizers} optimizers in turn, "
            "each on gradients the other's step changes; accumulate trains one-optimizer tasks"
        )
    if ddp:
        raise DlpyError(
            f"trainer.accumulate={accumulate} is not supported with trainer.strategy=ddp: "
            "raise dataset.batch_size instead (the processes share each batch)"
        )


def one_backward_each(window: Window, backwards: int, task: str) -> None:
    """Before a backward pass, given those of the window so far: a task that steps its optimizer
    several times in one batch (PPO's epochs of minibatches) cannot make one step of several."""
    if window.size > 1 and backwards > window.index:
        raise DlpyError(
            f"trainer.accumulate={window.size}: {task} takes several optimizer steps per batch "
            "(PPO's minibatch epochs, say); accumulate trains tasks with one step per batch"
        )

import logging
import math
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from dlpy.callbacks.base import Callback
from dlpy.optim import total_steps
from dlpy.registry import CALLBACKS
from dlpy.schema import NonNegative, Size

if TYPE_CHECKING:
    import torch

    from dlpy.trainer import Trainer

log = logging.getLogger(__name__)


def planned_epochs(trainer: "Trainer") -> int:
    """The epochs the run will take: trainer.max_steps may end it before trainer.max_epochs."""
    steps = total_steps(trainer.max_epochs, trainer.max_steps, trainer.steps_per_epoch)
    return math.ceil(steps / trainer.steps_per_epoch)


def epoch_steps(trainer: "Trainer") -> tuple[int, int]:
    """(steps done, steps to take) in this epoch, in optimizer steps: a resumed epoch has done
    some, and trainer.max_steps may cut the last one short."""
    done = trainer.batch // trainer.accumulate
    steps = trainer.steps_per_epoch
    if trainer.max_steps:
        steps = min(steps, trainer.max_steps - (trainer.step - done))
    return done, int(steps)


def number(value: Any) -> str:
    """A count (an int, as an agent's env steps) as a whole number; other numbers to 4 places."""
    return str(value) if isinstance(value, int) else f"{value:.4f}"


@CALLBACKS.register("progress_bar")
class ProgressBar(Callback):
    """A tqdm bar per epoch with live loss, accuracy and throughput; one log line per epoch.

    enabled=false hides the bar but keeps the log lines. The bar redraws at most once every
    `refresh_seconds` and reads its numbers (which waits for the device) on a batch that is a
    multiple of `refresh_every` once that time has passed: redrawing every 20 batches cost the
    MLP preset 180 us a step, 6% of its step on 2 cores (scripts/benchmark.py). While a bar is
    shown, log lines go through tqdm (`logging_redirect_tqdm`), so none is glued to the bar.
    Counts (ints in a step's numbers, an agent's env steps) show their latest value; the rate is
    in the task's unit (samples, or env steps for an agent).
    """

    def __init__(
        self,
        refresh_every: Size = 20,
        refresh_seconds: NonNegative = 1.0,
        enabled: bool = True,
        label: str = "",
    ) -> None:
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every!r}")
        if refresh_seconds < 0:
            raise ValueError(f"refresh_seconds must be >= 0, got {refresh_seconds!r}")
        self.refresh_every = refresh_every
        self.refresh_seconds = refresh_seconds
        self.refreshed = 0.0  # when the numbers were last read
        self.enabled = enabled
        self.label = label  # before "epoch 1/3": what trains (the FID feature network, say)
        self.bar = None
        self.redirect = ExitStack()
        self.start = 0.0  # when the epoch started, for the throughput
        self.samples = 0  # samples seen in the epoch
        self.counts = {}  # the latest value of each count the steps logged

    def on_fit_start(self, trainer: "Trainer") -> None:
        if self.enabled:
            self.redirect.enter_context(logging_redirect_tqdm())

    def on_epoch_start(self, trainer: "Trainer") -> None:
        self.start = time.perf_counter()
        self.samples = 0
        self.counts = {}
        done, steps = epoch_steps(trainer)
        self.bar = tqdm(
            total=steps,
            initial=done,  # a resumed epoch goes on
            desc=f"{self.label}epoch {trainer.epoch + 1}/{planned_epochs(trainer)}",
            leave=False,
            dynamic_ncols=True,
            mininterval=self.refresh_seconds,
            disable=not self.enabled,
        )

    def on_train_batch_end(
        self, trainer: "Trainer", logs: dict[str, "torch.Tensor"], batch_size: int
    ) -> None:
        self.samples += batch_size
        self.counts.update((k, v) for k, v in logs.items() if isinstance(v, int))
        self.bar.update(1)
        if not self.enabled or (trainer.batch // trainer.accumulate) % self.refresh_every:
            return
        now = time.perf_counter()
        if now - self.refreshed >= self.refresh_seconds:
            self.refreshed = now
            numbers = {**trainer.epoch_means(), **self.counts}
            shown = {key.split("/")[-1]: number(v) for key, v in numbers.items()}
            rate = self.samples / (time.perf_counter() - self.start)
            self.bar.set_postfix(**shown, **{unit_key(trainer): f"{rate:.0f}"})

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.bar is not None:
            self.bar.close()  # an interrupted epoch's bar, before the message that says why
        self.redirect.close()

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        self.bar.close()
        seconds = time.perf_counter() - self.start
        numbers = {**trainer.epoch_means(), **self.counts, **metrics}
        log.info(
            "%sepoch %d  %s  %.1fs (%.0f %s/s)",
            self.label,
            trainer.epoch,
            "  ".join(f"{k} {number(v)}" for k, v in numbers.items()),
            seconds,
            self.samples / max(seconds, 1e-9),
            trainer.task.unit,
        )


def unit_key(trainer: "Trainer") -> str:
    """The bar's throughput key: samples_s, or env_steps_s for an agent."""
    return f"{trainer.task.unit.replace(' ', '_')}_s"

import logging
import time
from typing import TYPE_CHECKING

from tqdm import tqdm

from dlpy.callbacks.base import Callback
from dlpy.registry import CALLBACKS

if TYPE_CHECKING:
    import torch

    from dlpy.trainer import Trainer

log = logging.getLogger(__name__)


@CALLBACKS.register("progress_bar")
class ProgressBar(Callback):
    """A tqdm bar per epoch with live loss, accuracy and samples/s; one log line per epoch.

    enabled=false hides the bar but keeps the log lines. The bar redraws at most once every
    `refresh_seconds` and reads its numbers (which waits for the device) on a batch that is a
    multiple of `refresh_every` once that time has passed: redrawing every 20 batches cost the
    MLP preset 180 us a step, 6% of its step on 2 cores (scripts/benchmark.py).
    """

    def __init__(
        self, refresh_every: int = 20, refresh_seconds: float = 1.0, enabled: bool = True
    ) -> None:
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every!r}")
        if refresh_seconds < 0:
            raise ValueError(f"refresh_seconds must be >= 0, got {refresh_seconds!r}")
        self.refresh_every = refresh_every
        self.refresh_seconds = refresh_seconds
        self.refreshed = 0.0  # when the numbers were last read
        self.enabled = enabled
        self.bar = None
        self.start = 0.0  # when the epoch started, for samples/s
        self.samples = 0  # samples seen in the epoch

    def on_epoch_start(self, trainer: "Trainer") -> None:
        self.start = time.perf_counter()
        self.samples = 0
        total = f"/{trainer.max_epochs}" if trainer.max_epochs else ""
        self.bar = tqdm(
            total=int(trainer.steps_per_epoch),
            initial=trainer.batch,  # a resumed epoch goes on
            desc=f"epoch {trainer.epoch + 1}{total}",
            leave=False,
            dynamic_ncols=True,
            mininterval=self.refresh_seconds,
            disable=not self.enabled,
        )

    def on_train_batch_end(
        self, trainer: "Trainer", logs: dict[str, "torch.Tensor"], batch_size: int
    ) -> None:
        self.samples += batch_size
        self.bar.update(1)
        if not self.enabled or trainer.batch % self.refresh_every:
            return
        now = time.perf_counter()
        if now - self.refreshed >= self.refresh_seconds:
            self.refreshed = now
            means = {key.split("/")[-1]: f"{v:.4f}" for key, v in trainer.epoch_means().items()}
            samples_s = self.samples / (time.perf_counter() - self.start)
            self.bar.set_postfix(**means, samples_s=f"{samples_s:.0f}")

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.bar is not None:
            self.bar.close()  # an interrupted epoch's bar, before the message that says why

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        self.bar.close()
        seconds = time.perf_counter() - self.start
        numbers = {**trainer.epoch_means(), **metrics}
        log.info(
            "epoch %d  %s  %.1fs (%.0f samples/s)",
            trainer.epoch,
            "  ".join(f"{k} {v:.4f}" for k, v in numbers.items()),
            seconds,
            self.samples / max(seconds, 1e-9),
        )

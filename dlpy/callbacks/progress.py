import logging
import time

from tqdm import tqdm

from dlpy import callbacks

log = logging.getLogger(__name__)


class ProgressBar(callbacks.Callback):
    """A tqdm bar per epoch with live loss, accuracy and samples/s; one log line per epoch."""

    def __init__(self, refresh_every=20, enabled=True):
        self.refresh_every, self.enabled = refresh_every, enabled
        self.bar = None

    def on_epoch_start(self, trainer):
        self.start, self.samples = time.perf_counter(), 0
        total = f"/{trainer.max_epochs}" if trainer.max_epochs else ""
        self.bar = tqdm(
            total=int(trainer.steps_per_epoch),
            initial=trainer.batch,  # a resumed epoch goes on
            desc=f"epoch {trainer.epoch + 1}{total}",
            leave=False,
            dynamic_ncols=True,
            disable=not self.enabled,
        )

    def on_train_batch_end(self, trainer, logs, batch_size):
        self.samples += batch_size
        self.bar.update(1)
        if (
            trainer.epoch_batches % self.refresh_every == 0 and self.enabled
        ):  # reading the means syncs the device
            means = {
                key.split("/")[-1]: f"{value:.4f}" for key, value in trainer.epoch_means().items()
            }
            self.bar.set_postfix(
                **means, samples_s=f"{self.samples / (time.perf_counter() - self.start):.0f}"
            )

    def on_fit_end(self, trainer):
        if self.bar is not None:
            self.bar.close()  # an interrupted epoch's bar, before the message that says why

    def on_epoch_end(self, trainer, metrics):
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

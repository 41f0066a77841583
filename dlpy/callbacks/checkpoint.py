from pathlib import Path

from dlpy import callbacks


class Checkpoint(callbacks.Callback):
    """After every epoch write checkpoints/last.pt, and best.pt when the monitored metric improves;
    when the run is interrupted, last.pt at the step it reached (inside an epoch too).

    Put it after the other callbacks, so the checkpoint holds their state for this epoch too.
    """

    def __init__(self, run_dir):
        self.dir = Path(run_dir) / "checkpoints"
        self.best = None

    @property
    def best_path(self):
        return self.dir / "best.pt"

    def on_fit_start(self, trainer):
        for stale in self.dir.glob(".*.tmp"):  # the temporary file of a write cut short by a kill
            stale.unlink()

    def on_epoch_end(self, trainer, metrics):
        value = metrics.get(trainer.monitor)
        is_best = value is not None and callbacks.improved(value, self.best, trainer.mode)
        if is_best:
            self.best = value
        trainer.save(self.dir / "last.pt")
        if (
            is_best or value is None
        ):  # without a monitored metric the latest weights are the best we know
            trainer.save(self.best_path)

    def on_interrupt(self, trainer):
        trainer.save(self.dir / "last.pt")

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")

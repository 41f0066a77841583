from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpy.callbacks.base import Callback, improved
from dlpy.registry import CALLBACKS

if TYPE_CHECKING:
    from dlpy.trainer import Trainer


@CALLBACKS.register("checkpoint")
class Checkpoint(Callback):
    """checkpoints/last.pt after every epoch, best.pt when the monitored metric improves (on the
    epochs that validate: trainer.val_every_n_epochs).

    An interrupted run writes last.pt at the step it reached, inside an epoch too, so it resumes
    there. dlpy runs it after the other callbacks, so the checkpoint holds their state for this
    epoch too.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.best = None

    @property
    def best_path(self) -> Path:
        return self.dir / "best.pt"

    def on_fit_start(self, trainer: "Trainer") -> None:
        for stale in self.dir.glob(".*.tmp"):  # the temporary file of a write cut short by a kill
            stale.unlink()

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        if not trainer.validated:  # trainer.val_every_n_epochs: best.pt waits for a validation
            trainer.save(self.dir / "last.pt")
            return
        value = metrics.get(trainer.monitor)
        is_best = value is not None and improved(value, self.best, trainer.mode)
        if is_best:
            self.best = value
        trainer.save(self.dir / "last.pt")
        if is_best or value is None:  # without a monitored metric, the latest weights are the best
            trainer.save(self.best_path)

    def on_interrupt(self, trainer: "Trainer") -> None:
        trainer.save(self.dir / "last.pt")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")

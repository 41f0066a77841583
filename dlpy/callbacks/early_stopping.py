import logging
from typing import TYPE_CHECKING, Any

from dlpy.callbacks.base import Callback, improved
from dlpy.registry import CALLBACKS
from dlpy.schema import Count, NonNegative

if TYPE_CHECKING:
    from dlpy.trainer import Trainer

log = logging.getLogger(__name__)


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved by min_delta for `patience` evaluations."""

    main_process_only = False  # every data-parallel process must stop at the same epoch

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = None
        self.wait = 0  # evaluations since the last improvement

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        if trainer.monitor not in metrics:
            return
        if improved(metrics[trainer.monitor], self.best, trainer.mode, self.min_delta):
            self.best = metrics[trainer.monitor]
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            log.info(
                "early stopping: %s has not improved for %d epochs (best %.4f)",
                trainer.monitor,
                self.wait,
                self.best,
            )
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.wait = state.get("wait", 0)


@CALLBACKS.register("early_stopping")
def early_stopping(patience: Count = 0, min_delta: NonNegative = 0.0) -> EarlyStopping | None:
    """Stop when the monitored metric stalls for `patience` evaluations; patience 0: never.

    Off, it is no callback at all (None), so the loop and the checkpoints are those of a run
    configured without it.
    """
    return EarlyStopping(patience, min_delta) if patience else None

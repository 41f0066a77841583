import logging

from dlpy import callbacks

log = logging.getLogger(__name__)


class EarlyStopping(callbacks.Callback):
    """Stop when the monitored metric has not improved by min_delta for `patience` evaluations."""

    main_process_only = False  # every data-parallel process must stop at the same epoch

    def __init__(self, patience, min_delta=0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.wait = None, 0

    def on_epoch_end(self, trainer, metrics):
        if trainer.monitor not in metrics:
            return
        if callbacks.improved(metrics[trainer.monitor], self.best, trainer.mode, self.min_delta):
            self.best, self.wait = metrics[trainer.monitor], 0
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

    def state_dict(self):
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state.get("best"), state.get("wait", 0)

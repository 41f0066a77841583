"""Callbacks watch the loop and do the side effects: logs, files, the progress bar, stopping."""


class Callback:
    main_process_only = (
        True  # in data-parallel training, only rank 0 writes; a callback that decides sets False
    )

    def on_fit_start(self, trainer): ...
    def on_epoch_start(self, trainer): ...
    def on_train_batch_end(self, trainer, logs, batch_size): ...
    def on_epoch_end(self, trainer, metrics): ...
    def on_interrupt(self, trainer): ...  # SIGINT or SIGTERM: the run stops after this step
    def on_fit_end(self, trainer): ...  # also when fit ends early: interrupted, diverged, failed
    def on_test_end(self, trainer, metrics): ...

    def state_dict(self):
        return {}

    def load_state_dict(self, state): ...


def improved(value, best, mode, min_delta=0.0):
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


from dlpy.callbacks.checkpoint import Checkpoint  # noqa: E402
from dlpy.callbacks.early_stopping import EarlyStopping  # noqa: E402
from dlpy.callbacks.images import ImageFiles  # noqa: E402
from dlpy.callbacks.progress import ProgressBar  # noqa: E402
from dlpy.callbacks.tensorboard import TensorBoard  # noqa: E402

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "ImageFiles",
    "ProgressBar",
    "TensorBoard",
    "improved",
]

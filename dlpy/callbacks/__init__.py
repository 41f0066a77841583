"""Callbacks watch the loop and do the side effects: logs, files, the progress bar, stopping.

Importing this package registers every built-in callback in dlpy.registry.CALLBACKS and every
tracker in dlpy.registry.LOGGERS; the `callbacks` config group (conf/callbacks/default.yaml)
and the `logger` group (conf/logger/) choose which of them a run gets.
"""

# Each import loads one submodule, whose decorator registers its callback.
from dlpy.callbacks.base import Callback, improved
from dlpy.callbacks.checkpoint import Checkpoint
from dlpy.callbacks.early_stopping import EarlyStopping
from dlpy.callbacks.history import History
from dlpy.callbacks.images import ImageFiles
from dlpy.callbacks.loggers import CSVLogger, Logger
from dlpy.callbacks.progress import ProgressBar
from dlpy.callbacks.tensorboard import TensorBoard
from dlpy.callbacks.trackers import MLflow, WandB

__all__ = [
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "ImageFiles",
    "Logger",
    "MLflow",
    "ProgressBar",
    "TensorBoard",
    "WandB",
    "improved",
]

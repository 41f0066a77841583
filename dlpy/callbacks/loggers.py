"""What every tracker logs, and when; a tracker (TensorBoard, CSV, MLflow, W&B) only writes it.

The `logger` config group (conf/logger/) chooses the trackers: `logger=tensorboard` (the default),
`logger=[tensorboard,mlflow]`. Each is a callback registered in dlpy.registry.LOGGERS, as
lightning-hydra-template's `configs/logger/` group is a list of Lightning loggers.

Every scalar is namespaced, as cleanrl's are (`charts/episodic_return`): the task's step numbers
under `train/`, evaluations under `val/`, `test/` (an agent's greedy games under `eval/`), each
optimizer's rate under `lr/<name>`, and the loop's own numbers under `charts/`.
"""

import csv
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpy.callbacks.base import Callback
from dlpy.hparams import HParam
from dlpy.io import atomic_write
from dlpy.registry import LOGGERS

if TYPE_CHECKING:
    import torch

    from dlpy.trainer import Trainer

Scalars = dict[str, float]


def learning_rates(trainer: "Trainer") -> Scalars:
    """Each optimizer's current rate (its first parameter group's) as `lr/<name>`: the names the
    task gives its optimizers (a GAN's `lr/discriminator`, `lr/generator`), else the optimizer's
    class (`lr/adam`)."""
    names = trainer.task.optimizer_names
    rates = {}
    for i, optimizer in enumerate(trainer.optimizers):
        name = names[i] if i < len(names) else type(optimizer).__name__.lower()
        rates[f"lr/{name}"] = optimizer.param_groups[0]["lr"]
    return rates


class Logger(Callback):
    """The scalars of a run, handed to `log_scalars` at the moments every tracker shares: every
    `trainer.log_every_n_steps` steps (the step's numbers and the rates), after every evaluation
    (`val/`, the epoch and samples/s under `charts/`), and at the end (`test/`, with the
    hyperparameters to `log_hparams`). A tracker implements those two, and `close`."""

    def __init__(self, hparams: dict[str, HParam]) -> None:
        self.hparams = hparams
        self.mark = (0.0, 0.0)  # (trainer.train_samples, trainer.train_time) at the last epoch end

    def log_scalars(self, scalars: Scalars, step: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define log_scalars")

    def log_hparams(self, hparams: dict[str, HParam], metrics: Scalars, step: int) -> None:
        """The run's hyperparameters beside its final numbers; nothing by default."""

    def close(self) -> None:
        """Flush and let go of what the tracker holds open; nothing by default."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.mark = (trainer.train_samples, trainer.train_time)

    def on_train_batch_end(
        self, trainer: "Trainer", logs: dict[str, "torch.Tensor"], batch_size: int
    ) -> None:
        if trainer.step % trainer.log_every_n_steps == 0:
            scalars = {key: float(value) for key, value in logs.items()}
            self.log_scalars(scalars | learning_rates(trainer), trainer.step)

    def on_epoch_end(self, trainer: "Trainer", metrics: Scalars) -> None:
        self.log_scalars(metrics | self.charts(trainer), trainer.step)

    def charts(self, trainer: "Trainer") -> Scalars:
        """The loop's numbers at an epoch's end: the epoch, and the epoch's samples per second of
        training (evaluation not counted)."""
        samples = trainer.train_samples - self.mark[0]
        seconds = trainer.train_time - self.mark[1]
        self.mark = (trainer.train_samples, trainer.train_time)
        return {"charts/epoch": trainer.epoch, "charts/samples_per_s": samples / max(seconds, 1e-9)}

    def on_test_end(self, trainer: "Trainer", metrics: Scalars) -> None:
        self.log_scalars(metrics, trainer.step)
        self.log_hparams(self.hparams, metrics, trainer.step)
        self.close()


@LOGGERS.register("csv")
class CSVLogger(Logger):
    """Every logged scalar in <run>/scalars.csv: one row per step logged, one column per key."""

    def __init__(self, run_dir: str | Path, hparams: dict[str, HParam]) -> None:
        super().__init__(hparams)
        self.path = Path(run_dir) / "scalars.csv"
        self.rows: list[dict[str, Any]] = []  # every row, so that a new key can widen the file
        self.columns: list[str] = []

    def on_fit_start(self, trainer: "Trainer") -> None:
        super().on_fit_start(trainer)
        # On resume, the rows logged after the checkpoint go, as TensorBoard's purge_step drops
        # its events: the resumed run logs those steps again.
        self.rows = [row for row in self.read() if int(row["step"]) <= trainer.step]
        self.rewrite()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as file:
            return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(file)]

    def log_scalars(self, scalars: Scalars, step: int) -> None:
        row = {"step": step, "time": round(time.time(), 3)} | scalars
        self.rows.append(row)
        if set(row) <= set(self.columns):
            with self.path.open("a", newline="") as file:  # the usual case: one more line
                csv.DictWriter(file, self.columns, lineterminator="\n").writerow(row)
        else:
            self.rewrite()  # a new key (the first evaluation's): a wider header

    def rewrite(self) -> None:
        """The whole file anew, written atomically (dlpy.io): a crash leaves the former file."""
        self.columns = list(dict.fromkeys(key for row in self.rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, lambda file: file.write(text.getvalue().encode()))

"""history.csv: every number a run logged, one row per epoch, for curves without TensorBoard.

Keras's `History` (model.fit's return value, which Chollet plots in ch. 4-5) and Lightning's
CSVLogger keep the same table; `dlpy plot` draws it (dlpy/curves.py, which also reads and
writes the file).
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpy.callbacks.base import Callback
from dlpy.callbacks.loggers import learning_rates
from dlpy.curves import FILE, Row, read_history, write_history
from dlpy.registry import CALLBACKS

if TYPE_CHECKING:
    from dlpy.trainer import Trainer


@CALLBACKS.register("history")
class History(Callback):
    """<run>/history.csv after every epoch: its mean training numbers, evaluation and rates.

    Each row holds `epoch` (epochs done), `step`, `time` (seconds since the run started
    training, evaluation included, a resumed run counting on), the learning rates, the epoch's
    means of the training numbers and the validation numbers. The file is rewritten whole and
    atomically after every epoch, so a killed run keeps each finished epoch's row; a resumed run
    drops the rows past its checkpoint's epoch and goes on from there.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / FILE
        self.rows: list[Row] = []
        self.offset = 0.0  # the seconds of the run before its resume
        self.started = time.perf_counter()

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.started = time.perf_counter()
        for stale in self.path.parent.glob(f".{FILE}.*.tmp"):  # a write cut short by a kill
            stale.unlink()
        # an epoch's row is written before its checkpoint: a kill in between leaves a row that
        # the resumed run trains again
        kept = read_history(self.path) if trainer.step else []
        self.rows = [row for row in kept if int(float(row["epoch"])) <= trainer.epoch]

    def seconds(self) -> float:
        return self.offset + time.perf_counter() - self.started

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        row = {"epoch": trainer.epoch, "step": trainer.step, "time": round(self.seconds(), 3)}
        row |= learning_rates(trainer)
        row |= trainer.epoch_means()
        row |= metrics
        self.rows.append(row)
        write_history(self.rows, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"time": self.seconds()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.offset = state.get("time", 0.0)

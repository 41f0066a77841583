"""The Jena climate record (Max Planck Institute for Biogeochemistry), 2009-2016.

14 weather measurements every 10 minutes. As in Chollet's temperature-forecasting chapter
(1st ed. 6.3): a sample is 5 days of hourly measurements (120 steps, every 6th row), the target
the temperature 24 hours after the window's last row; train, validation and test are the first
50%, the next 25% and the rest of the record, in time order, and the inputs are standardised
with the training rows' mean and std. The target stays in degrees Celsius, so the MAE reads in
degrees.
"""

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from dlpy.data import checks
from dlpy.data.base import Batch, Shapes
from dlpy.data.files import reading
from dlpy.data.sources import find_or_download
from dlpy.data.tensors import TensorData, check_task, standardize
from dlpy.errors import DlpyError, check_number
from dlpy.registry import DATASETS
from dlpy.schema import Range, Size

JENA_URL = "https://s3.amazonaws.com/keras-datasets/jena_climate_2009_2016.csv.zip"
JENA_FILE = "jena_climate_2009_2016.csv"


def read_jena(path: Path) -> tuple[list[str], np.ndarray, list[datetime]]:
    """(column names, float32 (rows, columns) values, first two timestamps) of the CSV.

    The "Date Time" column is dropped; its first two stamps tell the rows' spacing.
    """
    with reading(path):
        with open(path, encoding="utf-8") as f:
            header = [name.strip().strip('"') for name in f.readline().rstrip("\n").split(",")]
            first = [f.readline(), f.readline()]
        if header[0] != "Date Time":
            raise DlpyError(
                f'{path}: the first column is {header[0]!r}, not the record\'s "Date Time"'
            )
        values = np.loadtxt(
            path,
            delimiter=",",
            skiprows=1,
            usecols=range(1, len(header)),
            dtype=np.float32,
            ndmin=2,
        )
        stamps = [
            datetime.strptime(line.split(",")[0].strip('"'), "%d.%m.%Y %H:%M:%S")
            for line in first
            if line
        ]
    return header[1:], values, stamps


def window_rows(
    starts: torch.Tensor, sequence_length: int, sampling_rate: int, delay: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of each window (starts x sequence_length), and of its target.

    The target row is `delay` rows after the window's last row.
    """
    rows = starts[:, None] + torch.arange(sequence_length, device=starts.device) * sampling_rate
    return rows, rows[:, -1] + delay


class SeriesData(TensorData):
    """One standardised series; a split is the start rows of its windows.

    Windows are cut per batch from their start rows, so no sample is stored on its own.
    """

    def __init__(
        self,
        series: torch.Tensor,
        target: torch.Tensor,
        splits: dict[str, torch.Tensor],
        sequence_length: int,
        sampling_rate: int,
        delay: int,
        batch_size: int,
        eval_batch_size: int,
    ) -> None:
        super().__init__(splits, batch_size, eval_batch_size)
        self.series = series
        self.target = target
        self.sequence_length = sequence_length
        self.sampling_rate = sampling_rate
        self.delay = delay
        self.columns: list[str] = []  # the measurements' names, set by the builder

    def batch(self, split: str, idx: torch.Tensor) -> Batch:
        """(inputs, target, naive forecast).

        The naive forecast, the target variable at the window's last row, is the baseline a model
        must beat (the book's common-sense baseline).
        """
        starts = self.splits[split][idx]
        rows, target_rows = window_rows(
            starts, self.sequence_length, self.sampling_rate, self.delay
        )
        return self.series[rows], self.target[target_rows], self.target[rows[:, -1]]

    def shapes(self) -> Shapes:
        return {
            "num_features": self.series.shape[1],
            "sequence_length": self.sequence_length,
            "num_classes": 1,  # one number forecast
        }


def check_options(
    num_classes: int,
    sampling_rate: int,
    sequence_length: int,
    delay: int,
    train_fraction: float,
    val_fraction: float,
) -> None:
    """A forecast is one number; windows count whole rows; the fractions leave a test split."""
    if num_classes != 1:
        raise DlpyError(
            f"dataset.num_classes is {num_classes}; a temperature forecast is one number (1)"
        )
    check_number("dataset.sampling_rate", sampling_rate, at_least=1, integer=True)
    check_number("dataset.sequence_length", sequence_length, at_least=1, integer=True)
    check_number("dataset.delay", delay, at_least=1, integer=True)
    if not (0 < train_fraction and 0 < val_fraction and train_fraction + val_fraction < 1):
        raise DlpyError(
            f"dataset.train_fraction ({train_fraction}) and dataset.val_fraction ({val_fraction}) "
            "must be positive and leave rows for the test split"
        )


def check_record(
    path: Path,
    columns: list[str],
    values: np.ndarray,
    stamps: list[datetime],
    target: str,
    num_features: int,
) -> None:
    """The CSV must hold the target column, num_features finite measurements and 10-minute rows."""
    if target not in columns:
        raise DlpyError(
            f"dataset.target: {target!r} is not a column of {path}; columns: {', '.join(columns)}"
        )
    if values.shape[1] != num_features:
        raise DlpyError(
            f"dataset.num_features is {num_features}, but {path} has {values.shape[1]} measurements"
        )
    # a row of values is line row + 2 of the file, after the header
    checks.finite(path, "the measurements", values, lambda i: f"line {i[0] + 2} ({columns[i[1]]})")
    if len(stamps) == 2 and (stamps[1] - stamps[0]).total_seconds() != 600:
        raise DlpyError(
            f"{path}: rows are {stamps[1] - stamps[0]} apart, not 10 minutes: "
            "dataset.sampling_rate and dataset.delay count 10-minute rows"
        )


def window_starts(
    n: int, n_train: int, n_val: int, span: int, delay: int
) -> dict[str, torch.Tensor]:
    """The start rows of every split's windows, `span` rows from a window's first row to its last.

    A window lies inside its split; its target (delay rows on) may reach into the next one, as in
    the book.
    """
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n),
    }
    return {
        name: torch.arange(a, max(a, min(b - span, n - span - delay)))
        for name, (a, b) in bounds.items()
    }


@DATASETS.register("jena_climate")
def jena_climate(
    *,
    root: str | Path,
    download: bool = True,
    task: Literal["regression"] = "regression",
    num_features: Size = 14,
    num_classes: Size = 1,
    target: str = "T (degC)",
    sampling_rate: Size = 6,
    sequence_length: Size = 120,
    delay: Size = 144,
    train_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.5,
    val_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.25,
    batch_size: Size = 256,
    eval_batch_size: Size = 1024,
) -> SeriesData:
    """Jena climate 2009-2016: 5 days of hourly weather -> the temperature 24 h later (Chollet)."""
    check_task(task, "regression")
    check_options(num_classes, sampling_rate, sequence_length, delay, train_fraction, val_fraction)
    path = find_or_download("Jena climate", root, JENA_FILE, JENA_URL, download, unpack="zip")
    columns, values, stamps = read_jena(path)
    check_record(path, columns, values, stamps, target, num_features)
    n = len(values)
    n_train = int(train_fraction * n)
    n_val = int(val_fraction * n)
    span = (sequence_length - 1) * sampling_rate  # rows from a window's first row to its last
    splits = window_starts(n, n_train, n_val, span, delay)
    checks.not_empty(
        path,
        {split: len(starts) for split, starts in splits.items()},
        f": its {n} rows are too few for windows of dataset.sequence_length={sequence_length} x "
        f"dataset.sampling_rate={sampling_rate} plus dataset.delay={delay}, in the splits of "
        f"dataset.train_fraction={train_fraction} and dataset.val_fraction={val_fraction}",
    )
    series = torch.from_numpy(values)
    data = SeriesData(
        standardize(series, slice(0, n_train)),
        series[:, columns.index(target)].clone(),
        splits,
        sequence_length,
        sampling_rate,
        delay,
        batch_size,
        eval_batch_size,
    )
    data.name = "jena_climate"
    data.root = path.parent
    data.columns = columns
    return data

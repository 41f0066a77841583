"""The Jena climate record (Max Planck Institute for Biogeochemistry): 14 weather measurements every 10 minutes, 2009-2016.

As in Chollet's temperature-forecasting chapter: a sample is 5 days of hourly measurements
(120 steps, every 6th row), the target the temperature 24 hours after the window's last row;
train, validation and test are the first 50%, the next 25% and the rest of the record, in time
order, and the inputs are standardised with the training rows' mean and std. The target stays
in degrees Celsius, so the MAE reads in degrees.
"""

from datetime import datetime

import numpy as np
import torch

from dlpy.data.files import reading
from dlpy.data.tensors import TensorData, find_or_download
from dlpy.data.text import check_task
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS

JENA_URL = "https://s3.amazonaws.com/keras-datasets/jena_climate_2009_2016.csv.zip"
JENA_FILE = "jena_climate_2009_2016.csv"


def read_jena(path):
    """(column names, float32 (rows, columns) values, first two timestamps) of the CSV; "Date Time" is dropped."""
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


def window_rows(starts, sequence_length, sampling_rate, delay):
    """Rows of each window (starts x sequence_length) and of its target: `delay` rows after its last row."""
    rows = starts[:, None] + torch.arange(sequence_length, device=starts.device) * sampling_rate
    return rows, rows[:, -1] + delay


class SeriesData(TensorData):
    """One standardised series; windows are cut per batch from their start rows (no copy per sample)."""

    def __init__(
        self,
        series,
        target,
        splits,
        sequence_length,
        sampling_rate,
        delay,
        batch_size,
        eval_batch_size,
    ):
        super().__init__({k: len(v) for k, v in splits.items()}, batch_size, eval_batch_size)
        self.series, self.target = series, target
        self.train_starts, self.val_starts, self.test_starts = (
            splits["train"],
            splits["val"],
            splits["test"],
        )
        self.sequence_length, self.sampling_rate, self.delay = sequence_length, sampling_rate, delay

    def batch(self, split, idx):
        """(inputs, target, naive forecast): the naive forecast is the target variable at the window's last row."""
        rows, target_rows = window_rows(
            getattr(self, f"{split}_starts")[idx],
            self.sequence_length,
            self.sampling_rate,
            self.delay,
        )
        return self.series[rows], self.target[target_rows], self.target[rows[:, -1]]


@DATASETS.register("jena_climate")
def jena_climate(
    *,
    root,
    download=True,
    task="regression",
    num_features=14,
    num_classes=1,
    target="T (degC)",
    sampling_rate=6,
    sequence_length=120,
    delay=144,
    train_fraction=0.5,
    val_fraction=0.25,
    batch_size=256,
    eval_batch_size=1024,
):
    """Jena climate 2009-2016: 5 days of hourly weather -> the temperature 24 h later (Chollet's forecasting chapter)."""
    check_task(task, "regression")
    if num_classes != 1:
        raise DlpyError(
            f"dataset.num_classes is {num_classes}; a temperature forecast is one number (1)"
        )
    for key, value in (
        ("sampling_rate", sampling_rate),
        ("sequence_length", sequence_length),
        ("delay", delay),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DlpyError(f"dataset.{key} must be a positive integer, got {value!r}")
    if not (0 < train_fraction and 0 < val_fraction and train_fraction + val_fraction < 1):
        raise DlpyError(
            f"dataset.train_fraction ({train_fraction}) and dataset.val_fraction ({val_fraction}) "
            "must be positive and leave rows for the test split"
        )
    path = find_or_download("Jena climate", root, JENA_FILE, JENA_URL, download, unpack="zip")
    columns, values, stamps = read_jena(path)
    if target not in columns:
        raise DlpyError(
            f"dataset.target: {target!r} is not a column of {path}; columns: {', '.join(columns)}"
        )
    if values.shape[1] != num_features:
        raise DlpyError(
            f"dataset.num_features is {num_features}, but {path} has {values.shape[1]} measurements"
        )
    if len(stamps) == 2 and (stamps[1] - stamps[0]).total_seconds() != 600:
        raise DlpyError(
            f"{path}: rows are {stamps[1] - stamps[0]} apart, not 10 minutes: "
            "dataset.sampling_rate and dataset.delay count 10-minute rows"
        )
    n = len(values)
    n_train, n_val = int(train_fraction * n), int(val_fraction * n)
    series = torch.from_numpy(values)
    mean, std = series[:n_train].mean(0), series[:n_train].std(0).clamp_min(1e-8)
    span = (sequence_length - 1) * sampling_rate  # rows from a window's first row to its last
    splits = {}
    for name, (a, b) in {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n),
    }.items():
        # a window lies inside its split; its target (delay rows on) may reach into the next one, as in the book
        splits[name] = torch.arange(a, max(a, min(b - span, n - span - delay)))
    if not len(splits["train"]):
        raise DlpyError(
            f"{path}: {n} rows are too few for windows of dataset.sequence_length={sequence_length} "
            f"x dataset.sampling_rate={sampling_rate} plus dataset.delay={delay}"
        )
    data = SeriesData(
        (series - mean) / std,
        series[:, columns.index(target)].clone(),
        splits,
        sequence_length,
        sampling_rate,
        delay,
        batch_size,
        eval_batch_size,
    )
    data.name, data.root, data.columns = "jena_climate", path.parent, columns
    return data

"""Boston housing (Harrison & Rubinfeld, 1978): 506 suburbs, 13 features, the median home price.

Prices are in $1000s. Read from Keras's boston_housing.npz (arrays x and y) and split as Keras
does: shuffled with seed 113, the first 80% train (404) and the rest test (102). With so few
samples the book (Chollet, 1st ed. 3.6) validates by K-fold: fold k of the training set is the
validation split, the other folds train, and the features are standardised with the training
folds' statistics only.
"""

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
from dlpy.schema import Count, Range, Size

BOSTON_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/boston_housing.npz"


def kfold(n: int, folds: int, fold: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices of fold `fold`, contiguous as in the book.

    The val folds of k = 0..folds-1 cover 0..n-1 once each; the last fold takes the remainder.
    """
    size = n // folds
    stop = n if fold == folds - 1 else (fold + 1) * size
    val = torch.arange(fold * size, stop)
    return torch.cat([torch.arange(0, fold * size), torch.arange(stop, n)]), val


class TableData(TensorData):
    """Rows of standardised features and their targets; a split is a set of row indices."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        splits: dict[str, torch.Tensor],
        batch_size: int,
        eval_batch_size: int,
    ) -> None:
        super().__init__(splits, batch_size, eval_batch_size)
        self.x = x
        self.y = y

    def batch(self, split: str, idx: torch.Tensor) -> Batch:
        rows = self.splits[split][idx]
        return self.x.index_select(0, rows), self.y.index_select(0, rows)  # whole rows: fast

    def shapes(self) -> Shapes:
        return {"num_features": self.x.shape[1], "num_classes": 1}  # one number regressed


def check_folds(folds: int, fold: int | None) -> None:
    """dataset.folds and dataset.fold: one fold of at least two, chosen by the caller."""
    check_number("dataset.folds", folds, at_least=2, integer=True)
    if fold is None:
        raise DlpyError(
            "dataset.fold is null: `dlpy train` runs every fold itself; "
            "to train one, set dataset.fold=K"
        )
    if not (isinstance(fold, int) and 0 <= fold < folds):
        raise DlpyError(f"dataset.fold must be in [0, {folds}), got {fold!r}")


def read_boston(path: Path, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as float32 arrays of Keras's boston_housing.npz: a row of x and a price per house."""
    # no pickles: a downloaded file runs no code
    with reading(path), np.load(path, allow_pickle=False) as f:
        if not {"x", "y"} <= set(f.files):
            raise DlpyError(f"{path}: expected arrays x and y, found {', '.join(f.files)}")
        x = f["x"].astype(np.float32)
        y = f["y"].astype(np.float32)
    if x.ndim != 2 or x.shape[1] != num_features:
        raise DlpyError(
            f"dataset.num_features is {num_features}, but {path} has x of shape {x.shape}"
        )
    checks.same_length(path, x=x, y=y)
    checks.finite(path, "x", x, lambda i: f"house {i[0]}, feature {i[1]}")
    checks.finite(path, "y", y, lambda i: f"house {i[0]}")
    return x, y


@DATASETS.register("boston_housing")
def boston_housing(
    *,
    root: str | Path,
    download: bool = True,
    task: Literal["regression"] = "regression",
    num_features: Size = 13,
    num_classes: Size = 1,
    folds: Annotated[int, Range(ge=2)] = 4,
    fold: Count | None = None,
    test_split: Annotated[float, Range(gt=0, lt=1)] = 0.2,
    shuffle_seed: Count = 113,
    batch_size: Size = 16,
    eval_batch_size: Size = 512,
) -> TableData:
    """Boston housing (1978): 13 features -> median price; K-fold validation on 404 houses.

    Which fold validates is dataset.fold; `dlpy train` with dataset.fold=null runs them all.
    """
    check_task(task, "regression")
    if num_classes != 1:
        raise DlpyError(f"dataset.num_classes is {num_classes}; a price is one number (1)")
    check_folds(folds, fold)
    path = find_or_download("Boston housing", root, "boston_housing.npz", BOSTON_URL, download)
    x, y = read_boston(path, num_features)
    order = np.arange(len(x))
    np.random.RandomState(shuffle_seed).shuffle(order)  # keras.datasets.boston_housing.load_data
    x = torch.from_numpy(x[order])
    y = torch.from_numpy(y[order])
    n_train = int(len(x) * (1 - test_split))
    if n_train < folds:
        raise DlpyError(f"dataset.folds is {folds}, but only {n_train} houses train")
    train, val = kfold(n_train, folds, fold)
    splits = {"train": train, "val": val, "test": torch.arange(n_train, len(x))}
    sizes = {split: len(idx) for split, idx in splits.items()}
    checks.not_empty(path, sizes, f" with dataset.test_split={test_split} of {len(x)} houses")
    data = TableData(standardize(x, train), y, splits, batch_size, eval_batch_size)
    data.name = "boston_housing"
    data.root = path.parent
    return data

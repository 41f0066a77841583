"""Boston housing (Harrison & Rubinfeld, 1978): 506 suburbs, 13 features, the median home price in $1000s.

Read from Keras's boston_housing.npz (arrays x and y) and split as Keras does: shuffled with
seed 113, the first 80% train (404) and the rest test (102). With so few samples the book
validates by K-fold: fold k of the training set is the validation split, the other folds
train, and the features are standardised with the training folds' statistics only.
"""

import numpy as np
import torch

from dlpy.data.files import reading
from dlpy.data.tensors import TensorData, find_or_download
from dlpy.data.text import check_task
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS

BOSTON_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/boston_housing.npz"


def kfold(n, folds, fold):
    """(train, val) indices of fold `fold`: the val folds of k = 0..folds-1 cover 0..n-1 once each (contiguous, as the book)."""
    size = n // folds
    stop = n if fold == folds - 1 else (fold + 1) * size
    val = torch.arange(fold * size, stop)
    return torch.cat([torch.arange(0, fold * size), torch.arange(stop, n)]), val


class TableData(TensorData):
    def __init__(self, x, y, splits, batch_size, eval_batch_size):
        super().__init__({k: len(v) for k, v in splits.items()}, batch_size, eval_batch_size)
        self.x, self.y = x, y
        self.train_idx, self.val_idx, self.test_idx = splits["train"], splits["val"], splits["test"]

    def batch(self, split, idx):
        rows = getattr(self, f"{split}_idx")[idx]
        return self.x[rows], self.y[rows]


@DATASETS.register("boston_housing")
def boston_housing(
    *,
    root,
    download=True,
    task="regression",
    num_features=13,
    num_classes=1,
    folds=4,
    fold=None,
    test_split=0.2,
    shuffle_seed=113,
    batch_size=16,
    eval_batch_size=512,
):
    """Boston housing (1978): 13 features -> median price; K-fold validation on the 404 training houses."""
    check_task(task, "regression")
    if num_classes != 1:
        raise DlpyError(f"dataset.num_classes is {num_classes}; a price is one number (1)")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise DlpyError(f"dataset.folds must be an integer >= 2, got {folds!r}")
    if fold is None:
        raise DlpyError(
            "dataset.fold is null: `dlpy train` runs every fold itself; to train one, set dataset.fold=K"
        )
    if not (isinstance(fold, int) and 0 <= fold < folds):
        raise DlpyError(f"dataset.fold must be in [0, {folds}), got {fold!r}")
    path = find_or_download("Boston housing", root, "boston_housing.npz", BOSTON_URL, download)
    with (
        reading(path),
        np.load(path, allow_pickle=False) as f,
    ):  # no pickles: a downloaded file runs no code
        if not {"x", "y"} <= set(f.files):
            raise DlpyError(f"{path}: expected arrays x and y, found {', '.join(f.files)}")
        x, y = f["x"].astype(np.float32), f["y"].astype(np.float32)
    if x.ndim != 2 or x.shape[1] != num_features:
        raise DlpyError(
            f"dataset.num_features is {num_features}, but {path} has x of shape {x.shape}"
        )
    order = np.arange(len(x))
    np.random.RandomState(shuffle_seed).shuffle(order)  # keras.datasets.boston_housing.load_data
    x, y = torch.from_numpy(x[order]), torch.from_numpy(y[order])
    n_train = int(len(x) * (1 - test_split))
    if n_train < folds:
        raise DlpyError(f"dataset.folds is {folds}, but only {n_train} houses train")
    train, val = kfold(n_train, folds, fold)
    mean, std = (
        x[train].mean(0),
        x[train].std(0).clamp_min(1e-8),
    )  # training folds only: val stays unseen
    data = TableData(
        (x - mean) / std,
        y,
        {"train": train, "val": val, "test": torch.arange(n_train, len(x))},
        batch_size,
        eval_batch_size,
    )
    data.name, data.root = "boston_housing", path.parent
    return data

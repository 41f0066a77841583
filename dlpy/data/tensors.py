"""Non-image data held in memory as tensors: tables, texts and series.

`TensorData` is the counterpart of ImageData for sequences and tables: every split is a set
of sample indices, and a subclass turns a batch of indices into tensors (`batch`), so windows
over a long series or a text are cut per batch instead of stored one by one.
"""

from collections.abc import Iterator
from pathlib import Path

import torch

from dlpy.data.base import Batch, Shapes, Shuffled
from dlpy.errors import DlpyError, check_number


class TensorData(Shuffled):
    """Splits of sample indices plus the batch recipe; the trainer's interface, as ImageData's.

    `splits` maps train, val and test to their sample indices: rows of a table, reviews, or the
    start positions of windows. Every tensor attribute moves with the data (`to`).
    """

    def __init__(
        self, splits: dict[str, torch.Tensor], batch_size: int, eval_batch_size: int
    ) -> None:
        check_number("dataset.batch_size", batch_size, at_least=1, integer=True)
        check_number("dataset.eval_batch_size", eval_batch_size, at_least=1, integer=True)
        super().__init__()
        self.splits = splits
        self.sizes = {split: len(idx) for split, idx in splits.items()}
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.name: str | None = None  # set by the builder, as ImageData's
        self.root: Path | None = None

    def batch(self, split: str, idx: torch.Tensor) -> Batch:
        """The tensors of samples `idx` of `split`: (inputs, targets[, extra])."""
        raise NotImplementedError

    def shapes(self) -> Shapes:
        """The sizes of a sample and its target (dlpy/data/base.py's SHAPES)."""
        raise NotImplementedError

    def tensors(self) -> dict[str, torch.Tensor]:
        """The data's tensor attributes (inputs, targets, word vectors), to move them together."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    @property
    def device(self) -> torch.device:
        return self.splits["train"].device

    def to(self, device: torch.device | str) -> "TensorData":
        for key, value in self.tensors().items():
            setattr(self, key, value.to(device))
        self.splits = {split: idx.to(device) for split, idx in self.splits.items()}
        self.move_generator(device)
        return self

    def steps_per_epoch(self) -> int:
        return -(-self.sizes["train"] // self.batch_size)  # a last, smaller batch counts too

    def train_batches(self) -> Iterator[Batch]:
        for idx in self.shuffled_batches(self.sizes["train"], self.batch_size):
            yield self.batch("train", self.part(idx))

    def eval_batches(self, split: str) -> Iterator[Batch]:
        for idx in torch.arange(self.sizes[split], device=self.device).split(self.eval_batch_size):
            yield self.batch(split, self.part(idx))


def standardize(x: torch.Tensor, train: torch.Tensor | slice) -> torch.Tensor:
    """x standardised with the mean and std of its training rows only: val and test stay unseen."""
    mean = x[train].mean(0)
    std = x[train].std(0).clamp_min(1e-8)
    return (x - mean) / std


def check_task(task: str, want: str) -> None:
    """dataset.task must be what the targets are: a price is not a class."""
    if task != want:
        raise DlpyError(f"dataset.task is {task!r}, but this dataset's targets call for {want!r}")

"""The data interface the trainer and the tasks use, and what every in-memory data set shares.

`DataSet` declares the interface; the kinds in dlpy/data (`ImageData`, `TensorData` and its
subclasses, `EnvData`) each implement all of it. What only one kind has (pixels to draw, an
environment to play, word vectors) the tasks reach through that kind's class, by `isinstance`.
Each also declares its sizes once built (`shapes`), so that a model's options can be checked
against the data itself, not against the config that asked for it (dlpy/shapes.py).
"""

from collections.abc import Iterator
from typing import Any, Protocol

import torch

Batch = tuple[torch.Tensor, ...]  # (inputs, targets, ...) for one step, on the data's device
# A data set's sizes, as `DataSet.shapes` declares them: only the keys that apply, named as the
# dataset config keys that ask for them (SHAPES).
Shapes = dict[str, int | str]
SHAPES = {
    "channels": "the channels of an image",
    "image_size": "the height and width of an image",
    "scaling": "the pixel scaling of the network's inputs (vision.SCALINGS: their range)",
    "num_classes": "the classes of the targets; 1 for a number regressed",
    "num_features": "the numbers in a row of a table, in one step of a series, or multi-hot words",
    "sequence_length": "the steps of a sequence sample",
    "vocab_size": "the tokens a sample's indices are drawn from",
    "num_actions": "an environment's discrete actions (num_features: what it observes)",
}


class DataSet(Protocol):
    """What `Trainer.fit` and the tasks call on a data set."""

    def to(self, device: torch.device | str) -> "DataSet":
        """Move the data (or the observations) to the training device; returns the data set."""
        ...

    def seed(self, seed: int) -> None:
        """Seed the generator that orders and augments the batches (or starts the episodes)."""
        ...

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch: the trainer's progress, schedules and limits count them."""
        ...

    def train_batches(self) -> Iterator[Batch]:
        """One epoch's training batches, shuffled and augmented."""
        ...

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """The batches of split `val` or `test`, in order."""
        ...

    def shard(self, rank: int, world: int) -> None:
        """Data-parallel training: this process takes its slice of every batch."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps so that a resumed run draws the batches it would have drawn."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what `state_dict` returned."""
        ...

    def shapes(self) -> Shapes:
        """The sizes a model must agree with, read from the data as built (the keys of SHAPES
        that apply to it)."""
        ...


class Shuffled:
    """Holds `self.generator`: seeded per run, moved with the data, saved for exact resume.

    In data-parallel training every process holds all the data, draws the same order from the same
    generator, and takes its part of each batch (`shard`), so the processes together see what one
    process would. A subclass says where its tensors are (`device`).
    """

    device: torch.device

    def __init__(self) -> None:
        self.generator = torch.Generator()
        self.rank = 0
        self.world = 1

    def shard(self, rank: int, world: int) -> None:
        self.rank = rank
        self.world = world

    def part(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's slice of a batch: the whole batch outside data-parallel training."""
        return batch if self.world == 1 else batch.tensor_split(self.world)[self.rank]

    def shuffled_batches(self, n: int, batch_size: int) -> list[torch.Tensor]:
        """The sample indices of each training batch in a fresh random order.

        A last batch too small to give every process a sample is left out (an empty slice would
        make a NaN loss).
        """
        order = torch.randperm(n, device=self.device, generator=self.generator)
        return [idx for idx in order.split(batch_size) if len(idx) >= self.world]

    def move_generator(self, device: torch.device | str) -> None:
        """A generator on `device`: a CPU one keeps its state, another device's is seeded anew."""
        state = self.generator.get_state()
        self.generator = torch.Generator(device)
        if self.generator.device.type == "cpu":
            self.generator.set_state(state)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

"""Image classification data held as uint8 tensors on the training device.

Files are read once through torchvision's dataset classes, so they sit in the standard
layout; each split then lives on the device as one uint8 tensor, and whole batches are
augmented and normalised there. On 2 CPU cores this makes an epoch of a small CNN about
40% faster than a DataLoader with per-sample transforms (scripts/benchmark.py).
"""

import copy
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from dlpy.data import checks
from dlpy.data.augment import Augmentation
from dlpy.data.base import Batch, Shapes, Shuffled
from dlpy.data.sources import Images, load_torchvision
from dlpy.errors import DlpyError, check_choice, check_number
from dlpy.registry import DATASETS
from dlpy.schema import Count, Positive, Real, Size

# The most a normalised float32 copy of the training images may take (Fashion-MNIST's: 173 MB,
# CIFAR-10's: 553 MB); a larger set is normalised batch by batch from its uint8 pixels.
NORMALIZED_BYTES = 2**30

# Pixel scalings, as (scale, shift) of the uint8 values: classifiers take standardised inputs;
# Bernoulli decoders (BCE) want [0, 1]; tanh generators want [-1, 1].
SCALINGS = {
    "standardize": lambda mean, std: (1.0 / (255.0 * std), -mean / std),  # (x / 255 - mean) / std
    "unit": lambda mean, std: (torch.full_like(std, 1 / 255), torch.zeros_like(mean)),
    "symmetric": lambda mean, std: (torch.full_like(std, 2 / 255), -torch.ones_like(mean)),
}


class Split:
    """The images and labels of one split, kept together so they move and index together."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x  # uint8 (N, C, H, W)
        self.y = y  # int64 (N,)

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


class ImageData(Shuffled):
    """Train/val/test splits plus the batch recipe: shuffle, augment, normalise."""

    def __init__(
        self,
        train: Split,
        val: Split,
        test: Split,
        classes: list[str],
        mean: list[float],
        std: list[float],
        batch_size: int,
        eval_batch_size: int,
        augment: Mapping | Sequence | None = None,
        scaling: str = "standardize",
    ) -> None:
        check_choice("dataset.scaling", scaling, SCALINGS)
        super().__init__()
        self.train = train
        self.val = val
        self.test = test
        self.classes = classes
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.augmentation = Augmentation(augment, train.x.shape[-2:], len(classes))
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        # x * scale + shift, one multiply-add on the uint8 pixels
        self.scaling = scaling
        self.scale, self.shift = SCALINGS[scaling](self.mean, self.std)
        self.scaling = scaling
        self.normalized: torch.Tensor | None = None  # normalized_train's, made on first use
        self.name: str | None = None  # set by the builder; the FID feature cache uses them
        self.root: Path | None = None

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    def to(self, device: torch.device | str) -> "ImageData":
        self.train = self.train.to(device)
        self.val = self.val.to(device)
        self.test = self.test.to(device)
        self.scale = self.scale.to(device)
        self.shift = self.shift.to(device)
        self.normalized = None
        self.normalized_train()  # now, with the data's loading, not inside the first step
        self.move_generator(device)
        return self

    def rescaled(self, scaling: str) -> "ImageData":
        """The same splits (no copy) with another pixel scaling and a fresh shuffling generator."""
        other = copy.copy(self)
        other.scaling = scaling
        scale, shift = SCALINGS[scaling](self.mean, self.std)
        other.scale = scale.to(self.device)
        other.shift = shift.to(self.device)
        other.scaling = scaling
        other.normalized = None
        other.generator = torch.Generator(self.device)
        return other

    def steps_per_epoch(self) -> int:
        return -(-len(self.train) // self.batch_size)  # a last, smaller batch counts too

    def value_range(self) -> tuple[float, float]:
        """The least and the greatest value a normalised pixel can take, over the channels."""
        ends = torch.cat([self.shift, 255 * self.scale + self.shift]).flatten()
        return float(ends.min()), float(ends.max())

    def shapes(self) -> Shapes:
        _, channels, height, _ = self.train.x.shape
        return {
            "channels": channels,
            "image_size": height,
            "num_classes": len(self.classes),
            "scaling": self.scaling,
        }

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        # one new float tensor, scaled in place: half the time of x.float() * scale + shift
        return x.to(torch.float32, copy=True).mul_(self.scale).add_(self.shift)

    def to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of normalize: network inputs or outputs back to displayable pixels."""
        return ((x.float() - self.shift) / self.scale).round().clamp(0, 255).to(torch.uint8)

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The configured augmentations of a whole batch of uint8 images (dlpy/data/augment.py).

        Drawn for the whole batch from the data's generator (or `generator`), so that
        data-parallel processes draw the same random numbers and take their part afterwards.
        """
        return self.augmentation.pixels(x, generator or self.generator)

    def train_batches(self) -> Iterator[Batch]:
        normalized = self.normalized_train()
        for idx in self.shuffled_batches(len(self.train), self.batch_size):
            # index_select copies whole rows: 4-9x faster than x[idx], which indexes per element
            y = self.train.y.index_select(0, idx)
            if normalized is not None:
                yield self.part(normalized.index_select(0, idx)), self.part(y)
                continue
            x = self.augment(self.train.x.index_select(0, idx))
            if self.augmentation.mixes:  # MixUp, CutMix: the whole batch, then this process's part
                x, y = self.augmentation.mix(self.normalize(x), y, self.generator)
                yield self.part(x), self.part(y)
            else:
                yield self.normalize(self.part(x)), self.part(y)

    def normalized_train(self) -> torch.Tensor | None:
        """The training images normalised once, in float32, where no augmentation redraws them
        each epoch and they take at most NORMALIZED_BYTES: a batch is then one index_select, as
        in a plain loop over tensors (scripts/benchmark.py), not a gather and a normalisation."""
        if self.augmentation or self.train.x.numel() * 4 > NORMALIZED_BYTES:
            return None
        if self.normalized is None:
            self.normalized = self.normalize(self.train.x)
        return self.normalized

    def eval_batches(self, split: str) -> Iterator[Batch]:
        data = getattr(self, split)
        for start in range(0, len(data), self.eval_batch_size):
            end = start + self.eval_batch_size
            yield self.normalize(self.part(data.x[start:end])), self.part(data.y[start:end])


def check_images(name: str, train: Images, want: dict[str, int], mean: list, std: list) -> None:
    """The files must hold what the config says, and mean and std give one number per channel."""
    got = {
        "channels": train.x.shape[1],
        "image_size": train.x.shape[2],
        "num_classes": len(train.classes),
    }
    for key, value in want.items():
        if got[key] != value:
            raise DlpyError(f"dataset.{key} is {value}, but the {name} files have {got[key]}")
    channels = want["channels"]
    if len(mean) != channels or len(std) != channels:
        raise DlpyError(
            f"dataset.mean and dataset.std need one number per channel ({channels}), "
            f"got {mean} and {std}"
        )


def check_options(
    batch_size: int,
    eval_batch_size: int,
    augment: Mapping | Sequence | None,
    size: int,
    classes: int,
) -> None:
    """The options that need no files, checked before the files are read."""
    check_number("dataset.batch_size", batch_size, at_least=1, integer=True)
    check_number("dataset.eval_batch_size", eval_batch_size, at_least=1, integer=True)
    Augmentation(augment, (size, size), classes)  # builds and throws away: it checks the options


def hold_out(train: Images, val_size: int, split_seed: int) -> tuple[Split, Split]:
    """(train, val): val is held out of train with its own fixed seed, the same for every run."""
    n = len(train.y)
    if not 0 <= val_size < n:
        raise DlpyError(f"dataset.val_size must be in [0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx = perm[:val_size]
    train_idx = perm[val_size:]
    # index_select copies whole images: twice as fast as train.x[train_idx]
    kept = Split(train.x.index_select(0, train_idx), train.y.index_select(0, train_idx))
    held_out = Split(train.x.index_select(0, val_idx), train.y.index_select(0, val_idx))
    return kept, held_out


def keep_classes(files: Images, classes: list | None, num_classes: int) -> Images:
    """The images of `classes` alone (dataset.classes), relabelled 0, 1, ... in that order: a
    data set split in two for transfer learning (docs/transfer.md)."""
    if classes is None:
        return files
    known = len(files.classes)
    whole = all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < known for c in classes)
    if not classes or not whole or len(set(classes)) < len(classes):
        raise DlpyError(
            f"dataset.classes must be distinct class numbers in [0, {known}), got {classes}"
        )
    if num_classes != len(classes):
        raise DlpyError(
            f"dataset.classes keeps {len(classes)} classes: set dataset.num_classes={len(classes)}"
        )
    kept = torch.tensor(classes)
    mask = torch.isin(files.y, kept)
    y = (files.y[mask].unsqueeze(1) == kept).int().argmax(1)
    return Images(files.x[mask], y, [files.classes[c] for c in classes])


def per_class_subset(split: Split, per_class: int, seed: int) -> Split:
    """The first `per_class` images of each class in a fixed shuffle (dataset.per_class; 0: all):
    a few-shot training set."""
    if not per_class:
        return split
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    rank = torch.zeros(len(split), dtype=torch.long)
    for label in split.y.unique():
        of_label = order[split.y[order] == label]
        rank[of_label] = torch.arange(len(of_label))
    keep = order[rank[order] < per_class]
    return Split(split.x[keep], split.y[keep])


def check_labels(name: str, train: Split, test: Split, num_classes: int, root: str | Path) -> None:
    """No label at or above the class count: it would index past the network's outputs."""
    labels = int(max(train.y.max(), test.y.max()))
    if labels >= num_classes:
        raise DlpyError(
            f"the {name} label files hold class {labels}, but there are {num_classes} "
            f"classes: a label file under {root} is corrupted"
        )


def labelled_images(
    class_name: str,
    *,
    root: str | Path,
    system_dir: str | None = None,
    download: bool = True,
    val_size: Count = 5000,
    split_seed: Count = 0,
    batch_size: Size = 128,
    eval_batch_size: Size = 1000,
    mean: list[Real],
    std: list[Positive],
    channels: Size,
    image_size: Size,
    num_classes: Size,
    augment: Mapping | Sequence | None = None,
    scaling: Literal[tuple(SCALINGS)] = "standardize",
    classes: list[Count] | None = None,
    per_class: Count = 0,
) -> ImageData:
    """A labelled torchvision data set (`class_name`, registered below); val is cut from train."""
    check_options(batch_size, eval_batch_size, augment, image_size, num_classes)
    from torchvision import datasets  # a second to import: only for the runs that read images

    cls = getattr(datasets, class_name)
    train_files, test_files = load_torchvision(cls, root, system_dir, download)
    train_files = keep_classes(train_files, classes, num_classes)
    test_files = keep_classes(test_files, classes, num_classes)
    want = {"channels": channels, "image_size": image_size, "num_classes": num_classes}
    check_images(cls.__name__, train_files, want, mean, std)
    check_labels(cls.__name__, train_files, test_files, num_classes, root)
    train, val = hold_out(train_files, val_size, split_seed)
    train = per_class_subset(train, per_class, split_seed)
    how = f": a label file under {root} is corrupted, or dataset.val_size took them all"
    checks.every_class(f"the {cls.__name__} training split", train_files.classes, train.y, how)
    data = ImageData(
        train,
        val,
        Split(test_files.x, test_files.y),
        train_files.classes,
        mean,
        std,
        batch_size,
        eval_batch_size,
        augment,
        scaling=scaling,
    )
    data.name = cls.__name__
    data.root = Path(root).expanduser()
    return data


# The books' and the course's image data sets: MNIST is Chollet's first network, Fashion-MNIST the
# TF2 course's, CIFAR-10 that of the ResNets of "Advanced Deep Learning with Keras".
for _name, _class, _doc in [
    ("mnist", "MNIST", "MNIST handwritten digits (LeCun et al., 1998): 28x28 grey, 10 classes"),
    (
        "fashion_mnist",
        "FashionMNIST",
        "Fashion-MNIST (Xiao et al., 2017): 28x28 grey garments, 10 classes",
    ),
    ("cifar10", "CIFAR10", "CIFAR-10 (Krizhevsky, 2009): 32x32 colour, 10 classes"),
    ("cifar100", "CIFAR100", "CIFAR-100 (Krizhevsky, 2009): 32x32 colour, 100 fine classes"),
]:
    DATASETS.register(_name, _doc)(partial(labelled_images, _class))

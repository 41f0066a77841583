"""Image classification data held as uint8 tensors on the training device.

Files are read once through torchvision's dataset classes, so they sit in the standard
layout; each split then lives on the device as one uint8 tensor, and whole batches are
augmented and normalised there. On 2 CPU cores this makes an epoch of a small CNN about
40% faster than a DataLoader with per-sample transforms (scripts/benchmark.py).
"""

import copy
import gzip
import os
import shutil
import zlib
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from dlpy.data.base import Shuffled
from dlpy.data.files import check_idx_files, name_corrupted_file
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS, check_kwargs, check_signs

# Pixel scalings, as (scale, shift) of the uint8 values: classifiers take standardised inputs;
# Bernoulli decoders (BCE) want [0, 1]; tanh generators want [-1, 1].
SCALINGS = {
    "standardize": lambda mean, std: (1.0 / (255.0 * std), -mean / std),  # (x / 255 - mean) / std
    "unit": lambda mean, std: (torch.full_like(std, 1 / 255), torch.zeros_like(mean)),
    "symmetric": lambda mean, std: (torch.full_like(std, 2 / 255), -torch.ones_like(mean)),
}


class Split:
    def __init__(self, x, y):
        self.x, self.y = x, y  # x: uint8 (N, C, H, W); y: int64 (N,)

    def __len__(self):
        return len(self.y)

    def to(self, device):
        return Split(self.x.to(device), self.y.to(device))


class ImageData(Shuffled):
    """Train/val/test splits plus the batch recipe: shuffle, augment, normalise."""

    def __init__(
        self,
        train,
        val,
        test,
        classes,
        mean,
        std,
        batch_size,
        eval_batch_size,
        crop_padding=0,
        hflip=False,
        scaling="standardize",
    ):
        self.train, self.val, self.test, self.classes = train, val, test, classes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.crop_padding, self.hflip = crop_padding, hflip
        if scaling not in SCALINGS:
            raise DlpyError(f"dataset.scaling: unknown {scaling!r}; known: {', '.join(SCALINGS)}")
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        # x * scale + shift, one multiply-add on the uint8 pixels
        self.scale, self.shift = SCALINGS[scaling](self.mean, self.std)
        self.name, self.root = None, None  # set by the builder; the FID feature cache uses them
        super().__init__()

    @property
    def device(self):
        return self.train.x.device

    def to(self, device):
        for name in ("train", "val", "test"):
            setattr(self, name, getattr(self, name).to(device))
        self.scale, self.shift = self.scale.to(device), self.shift.to(device)
        self.move_generator(device)
        return self

    def rescaled(self, scaling):
        """The same splits (no copy) with another pixel scaling and a fresh shuffling generator."""
        other = copy.copy(self)
        other.scale, other.shift = (
            t.to(self.device) for t in SCALINGS[scaling](self.mean, self.std)
        )
        other.generator = torch.Generator(self.device)
        return other

    def steps_per_epoch(self):
        return -(-len(self.train) // self.batch_size)

    def normalize(self, x):
        return x.float() * self.scale + self.shift

    def to_uint8(self, x):
        """The inverse of normalize: network inputs or outputs back to displayable pixels."""
        return ((x.float() - self.shift) / self.scale).round().clamp(0, 255).to(torch.uint8)

    def train_batches(self):
        for idx in self.shuffled_batches(len(self.train), self.batch_size):
            # the whole batch is augmented, so data-parallel processes draw the same random numbers
            x = self.train.x[idx]
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, self.generator)
            if self.hflip:
                flip = torch.rand(len(x), device=x.device, generator=self.generator) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            yield self.normalize(self.part(x)), self.part(self.train.y[idx])

    def eval_batches(self, split):
        data = getattr(self, split)
        for start in range(0, len(data), self.eval_batch_size):
            end = start + self.eval_batch_size
            yield self.normalize(self.part(data.x[start:end])), self.part(data.y[start:end])


def random_crop(x, padding, generator):
    """Pad by `padding` and take one random crop of the original size per image, all at once."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    top, left = torch.randint(0, 2 * padding + 1, (2, n, 1), device=x.device, generator=generator)
    rows = (top + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (left + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    return padded[
        torch.arange(n, device=x.device).view(n, 1, 1, 1),
        torch.arange(c, device=x.device).view(1, c, 1, 1),
        rows,
        cols,
    ]


def load_torchvision(cls, root, system_dir, download):
    """(train, test) as uint8 tensors, from the data folder, else the system folder, else a download.

    The system folder is where Debian/Ubuntu dataset packages put the upstream files
    (`apt-get install dataset-fashion-mnist` -> /usr/share/datasets/fashion-mnist).
    """
    from torchvision.datasets import MNIST

    root, tried = Path(root).expanduser(), []
    for where in (root, system_dir and Path(system_dir)):
        if not where:
            continue
        try:
            if where != root and where.is_dir() and issubclass(cls, MNIST):
                import_idx_files(cls, where, root)  # flat *.gz files -> root/<Class>/raw/
                where = root
            if issubclass(cls, MNIST):
                check_idx_files(cls, where)
            return tuple(
                as_tensors(cls(str(where), train=train, download=False)) for train in (True, False)
            )
        except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found or corrupted"
            name_corrupted_file(
                cls, where
            )  # a file that is there but wrong is an error, not a miss
            tried.append(f"{where}: {err}")
    if download:
        try:
            return tuple(
                as_tensors(cls(str(root), train=train, download=True)) for train in (True, False)
            )
        except Exception as err:  # noqa: BLE001 - any network or file error ends the search
            tried.append(f"download into {root}: {type(err).__name__}: {err}")
    else:
        tried.append("download: disabled (dataset.download=false)")
    raise DlpyError(
        f"{cls.__name__}: no data found. Tried, in order:\n  - "
        + "\n  - ".join(tried)
        + "\nSet dataset.root to a folder holding the files, install the system package, or go online."
    )


def import_idx_files(cls, source, root):
    """Unpack the MNIST-family IDX files of a system folder into torchvision's raw/ layout."""
    raw = Path(root) / cls.__name__ / "raw"
    for url, _ in cls.resources:
        name = os.path.basename(url)
        target = raw / name.removesuffix(".gz")
        if target.exists():
            continue
        found = next(
            (source / n for n in (name, name.removesuffix(".gz")) if (source / n).exists()), None
        )
        if found is None:
            raise RuntimeError(f"{source / name} is missing")
        raw.mkdir(parents=True, exist_ok=True)
        opener = gzip.open if found.suffix == ".gz" else open
        partial_file = target.with_suffix(".partial")
        try:
            with opener(found, "rb") as src, open(partial_file, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:  # a cut or corrupted .gz
            partial_file.unlink(missing_ok=True)
            raise DlpyError(f"{found} cannot be unpacked (truncated or corrupted): {err}") from None
        os.replace(partial_file, target)


def as_tensors(ds):
    x = torch.as_tensor(ds.data)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # MNIST: NHW; CIFAR: NHWC
    return Split(x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)), list(ds.classes)


def labelled_images(
    cls,
    *,
    root,
    system_dir=None,
    download=True,
    val_size=5000,
    split_seed=0,
    batch_size=128,
    eval_batch_size=1000,
    mean: list,
    std: list,
    channels: int,
    image_size: int,
    num_classes: int,
    augment=None,
    scaling="standardize",
):
    for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DlpyError(f"dataset.{key} must be a positive integer, got {value!r}")
    check_kwargs(ImageData, augment or {}, "dataset.augment", key="dataset.augment")
    check_signs(ImageData, augment or {}, "dataset.augment")
    from torchvision import datasets  # a second to import: only for the runs that read images

    cls = getattr(datasets, cls)
    (train, classes), (test, _) = load_torchvision(cls, root, system_dir, download)
    got = {
        "channels": train.x.shape[1],
        "image_size": train.x.shape[2],
        "num_classes": len(classes),
    }
    for key, want in {
        "channels": channels,
        "image_size": image_size,
        "num_classes": num_classes,
    }.items():
        if got[key] != want:
            raise DlpyError(
                f"dataset.{key} is {want}, but the {cls.__name__} files have {got[key]}"
            )
    if len(mean) != channels or len(std) != channels:
        raise DlpyError(
            f"dataset.mean and dataset.std need one number per channel ({channels}), got {mean} and {std}"
        )
    labels = int(max(train.y.max(), test.y.max()))
    if labels >= num_classes:
        raise DlpyError(
            f"the {cls.__name__} label files hold class {labels}, but there are {num_classes} "
            f"classes: a label file under {root} is corrupted"
        )
    if not 0 <= val_size < len(train):
        raise DlpyError(f"dataset.val_size must be in [0, {len(train)}), got {val_size}")
    # The validation split is held out of train with its own fixed seed, the same for every run.
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    data = ImageData(
        Split(train.x[train_idx], train.y[train_idx]),
        Split(train.x[val_idx], train.y[val_idx]),
        test,
        classes,
        mean,
        std,
        batch_size,
        eval_batch_size,
        scaling=scaling,
        **(augment or {}),
    )
    data.name, data.root = cls.__name__, Path(root).expanduser()
    return data


for _name, _cls, _doc in [
    ("mnist", "MNIST", "MNIST handwritten digits (LeCun et al., 1998): 28x28 grey, 10 classes"),
    (
        "fashion_mnist",
        "FashionMNIST",
        "Fashion-MNIST (Xiao et al., 2017): 28x28 grey garments, 10 classes",
    ),
    ("cifar10", "CIFAR10", "CIFAR-10 (Krizhevsky, 2009): 32x32 colour, 10 classes"),
    ("cifar100", "CIFAR100", "CIFAR-100 (Krizhevsky, 2009): 32x32 colour, 100 fine classes"),
]:
    DATASETS.register(_name, _doc)(partial(labelled_images, _cls))

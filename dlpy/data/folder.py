"""Any folder of images: a learner's own photos, or the TF2 course's anime faces for the DCGAN.

The first-level subfolders are the classes (a folder without subfolders is one class, for the
generative models). Splits come from `train/`, `val/` and `test/` subfolders, each holding the
class subfolders, where the folder has them; a split without a folder is held out of the
training images with a fixed seed. Every file PIL can read is an image; each is decoded once,
to `image_size`, into a uint8 cache under the folder (dlpy/data/image_cache.py) that later
epochs and later runs read instead of the files.
"""

import logging
import os
from pathlib import Path
from typing import Literal, NamedTuple

import torch

from dlpy.data import checks
from dlpy.data.image_cache import CACHE_FOLDER, Decoded, decode_cached
from dlpy.data.vision import SCALINGS, ImageData, Split, check_options
from dlpy.errors import DlpyError, check_number
from dlpy.registry import DATASETS
from dlpy.schema import Count, NonNegative, Positive, Real, Size

log = logging.getLogger("dlpy")

# The folder names each split goes by; "valid" and "validation" are common in downloaded sets.
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
SHOW_SKIPPED = 3  # the warning names this many skipped files, and counts the rest
Files = tuple[list[Path], list[int]]  # the image files of a split, and their class indices


def subfolders(folder: Path) -> list[Path]:
    """The visible subfolders, by name: the cache folder and other hidden ones are left out."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(root: Path) -> dict[str, Path]:
    """{split: its folder} when root holds train/ and no folders but split folders; else {}."""
    names = {p.name: p for p in subfolders(root)}
    known = {name for aliases in SPLIT_FOLDERS.values() for name in aliases}
    if "train" not in names or not set(names) <= known:
        return {}
    return {
        split: names[name]
        for split, aliases in SPLIT_FOLDERS.items()
        for name in aliases
        if name in names
    }


def class_names(folder: Path) -> list[str]:
    """The class subfolders' names; a folder without subfolders is one class, named after it."""
    return [p.name for p in subfolders(folder)] or [folder.name]


def folder_classes(root: str) -> int | None:
    """`${dlpy.folder_classes:${.root}}`: the number of classes under root; None if no folder
    (the data set's builder then says so)."""
    path = Path(root).expanduser()
    if not path.is_dir():
        return None
    return len(class_names(split_folders(path).get("train", path)))


def unreadable_folder(err: OSError) -> None:
    """A folder that cannot be listed is named: its images would otherwise be missed silently."""
    raise DlpyError(f"dataset.root: {err.filename} cannot be read: {err.strerror}")


def visible_files(folder: Path) -> list[Path]:
    """The files under folder, at any depth, by path; hidden files and folders left out."""
    found = []
    for top, folders, names in os.walk(folder, onerror=unreadable_folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(top) / name for name in names if not name.startswith(".")]
    return sorted(p for p in found if p.is_file())


def list_split(folder: Path, classes: list[str], train: Path) -> tuple[Files, list[tuple]]:
    """A split folder's images and labels, and the files outside its class folders (skipped)."""
    loose = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if not subfolders(train):  # one class: the files directly in the folder
        return (sorted(loose), [0] * len(loose)), []
    files = []
    labels = []
    for sub in subfolders(folder):
        if sub.name not in classes:
            raise DlpyError(f"dataset.root: {sub} is no class of {train} ({', '.join(classes)})")
        found = visible_files(sub)
        files += found
        labels += [classes.index(sub.name)] * len(found)
    return (files, labels), [(str(p), "outside the class folders") for p in sorted(loose)]


def held_out_count(key: str, size: object, n: int, root: Path) -> int:
    """A count (an integer >= 1) as it is, or a fraction in (0, 1) of the n images."""
    if isinstance(size, float) and 0 < size < 1:
        count = round(size * n)
    elif isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        count = size
    else:
        raise DlpyError(f"{key} must be a count (>= 1) or a fraction in (0, 1), got {size!r}")
    if count == 0:
        raise DlpyError(f"{key}={size} of the {n} images in {root} leaves that split empty")
    return count


def hold_out(train: Files, sizes: dict[str, object], split_seed: int, root: Path) -> dict:
    """The splits that have no folder, drawn from the training files with a fixed seed."""
    files, labels = train
    n = len(files)
    counts = {s: held_out_count(f"dataset.{s}_size", size, n, root) for s, size in sizes.items()}
    if sum(counts.values()) >= n:
        keys = " + ".join(f"dataset.{s}_size" for s in counts)
        raise DlpyError(
            f"{keys} ({sum(counts.values())}) leave no training images of the {n} in {root}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed)).tolist()
    splits = {}
    start = 0
    for split, count in [*counts.items(), ("train", n)]:
        part = perm[start : start + count]
        splits[split] = ([files[i] for i in part], [labels[i] for i in part])
        start += count
    return splits


class Layout(NamedTuple):
    """What the folder tree says: the split folders, the training folder and the classes."""

    folders: dict[str, Path]  # {split: its folder}; {} when root holds no split folders
    train: Path
    classes: list[str]


def find_classes(root: Path) -> Layout:
    """The split folders, the training folder and the class names of the folder root."""
    if not root.is_dir():
        raise DlpyError(f"dataset.root: {root} is not a folder")
    folders = split_folders(root)
    train = folders.get("train", root)
    return Layout(folders, train, class_names(train))


def find_splits(
    root: Path, layout: Layout, sizes: dict[str, object], split_seed: int
) -> tuple[dict[str, Files], list]:
    """({split: Files}, the files skipped as outside the class folders)."""
    folders, train, classes = layout
    splits = {}
    skipped = []
    for split, folder in (folders or {"train": root}).items():
        splits[split], outside = list_split(folder, classes, train)
        skipped += outside
    if not splits["train"][0]:
        raise DlpyError(f"dataset.root: no files found under {train}")
    missing = {split: size for split, size in sizes.items() if split not in splits}
    splits |= hold_out(splits["train"], missing, split_seed, root) if missing else {}
    return splits, skipped


def check_classes(
    root: Path, classes: list[str], num_classes: int | None, model_task: str | None
) -> None:
    """A classifier needs two classes; dataset.num_classes, when typed, must be the folder's."""
    if model_task == "classification":
        checks.classes(f"dataset.root: {root}", classes, how=", a subfolder each")
    if num_classes is not None and num_classes != len(classes):
        raise DlpyError(
            f"dataset.num_classes is {num_classes}, but {root} has {len(classes)} class "
            f"folders ({', '.join(classes)})"
        )


def named(skipped: list[tuple[str, str]], root: Path) -> str:
    """The first few skipped files with why, under root, and how many more there are."""
    files = [f"{Path(path).relative_to(root)} ({reason})" for path, reason in skipped]
    more = f"; and {len(files) - SHOW_SKIPPED} more" if len(files) > SHOW_SKIPPED else ""
    return "; ".join(files[:SHOW_SKIPPED]) + more


def warn_skipped(skipped: list[tuple[str, str]], total: int, root: Path) -> None:
    """One warning line: how many files were skipped, and the first few of them with why."""
    if not skipped:
        return
    log.warning(
        "dataset.root: skipped %d of the %d files under %s: %s",
        len(skipped),
        total,
        root,
        named(skipped, root),
    )


def as_split(decoded: Decoded, labels: list[int], split: str, root: Path) -> Split:
    """The decoded pixels and their labels; a split without one readable image is refused,
    naming the files it does hold and why none of them could be read."""
    if not decoded.kept:
        why = f": {named(decoded.skipped, root)}" if decoded.skipped else ""
        raise DlpyError(f"dataset.root: the {split} split of {root} holds no readable images{why}")
    y = torch.tensor([labels[i] for i in decoded.kept], dtype=torch.int64)
    return Split(torch.from_numpy(decoded.x), y)


def check_readable_classes(
    root: Path, layout: Layout, train: Split, skipped: list[tuple[str, str]]
) -> None:
    """A classifier's every class must keep a readable training image: one whose files were all
    skipped is named with them, one whose images all went to val and test by its name."""
    classes = layout.classes
    counts = torch.bincount(train.y, minlength=len(classes))
    for name in (name for k, name in enumerate(classes) if not counts[k]):
        folder = f"{layout.train / name}{os.sep}"
        unread = [(path, why) for path, why in skipped if path.startswith(folder)]
        if unread:
            raise DlpyError(
                f"dataset.root: no image of class {name!r} could be read: {named(unread, root)}"
            )
    how = ": its images all went to the val and test splits (dataset.val_size, test_size)"
    checks.every_class(f"dataset.root: {root}", classes, train.y, how)


def check_channels(channels: int, mean: object, std: object) -> None:
    """Grey or RGB, with a mean and a std for each channel (the first `channels` are used)."""
    per_channel = (isinstance(v, (list, tuple)) and len(v) >= channels for v in (mean, std))
    if channels not in (1, 3) or not all(per_channel):  # the count first: it may be no number
        raise DlpyError(
            f"dataset.channels must be 1 (grey) or 3 (RGB), with a dataset.mean and dataset.std "
            f"for each; got {channels!r}, {mean!r} and {std!r}"
        )


@DATASETS.register("image_folder")
def image_folder(
    *,
    root: str | Path,
    image_size: Size = 64,
    channels: Literal[1, 3] = 3,
    num_classes: Size | None = None,
    model_task: str | None = None,
    val_size: NonNegative = 0.1,
    test_size: NonNegative = 0.1,
    split_seed: Count = 0,
    batch_size: Size = 128,
    eval_batch_size: Size = 500,
    mean: tuple[Real, ...] = (0.5, 0.5, 0.5),
    std: tuple[Positive, ...] = (0.5, 0.5, 0.5),
    scaling: Literal[tuple(SCALINGS)] = "standardize",
    augment: dict | None = None,
) -> ImageData:
    """Any folder of images, decoded once: subfolders are classes; train/ val/ test/, splits."""
    check_number("dataset.image_size", image_size, at_least=1, integer=True)
    check_channels(channels, mean, std)
    root = Path(root).expanduser()
    sizes = {"val": val_size, "test": test_size}
    layout = find_classes(root)
    classes = layout.classes
    check_classes(root, classes, num_classes, model_task)  # before the hold-out can fail on sizes
    splits, skipped = find_splits(root, layout, sizes, split_seed)
    # the augmentations' options, once the classes are known (MixUp and CutMix need their count)
    check_options(batch_size, eval_batch_size, augment, image_size, len(classes))
    decoded = {
        s: decode_cached(root, s, files, image_size, channels) for s, (files, _) in splits.items()
    }
    skipped += [pair for d in decoded.values() for pair in d.skipped]
    warn_skipped(skipped, len(skipped) + sum(len(d.kept) for d in decoded.values()), root)
    parts = {s: as_split(decoded[s], splits[s][1], s, root) for s in ("train", "val", "test")}
    if model_task == "classification":
        check_readable_classes(root, layout, parts["train"], skipped)
    data = ImageData(
        parts["train"],
        parts["val"],
        parts["test"],
        classes,
        list(mean)[:channels],
        list(std)[:channels],
        batch_size,
        eval_batch_size,
        scaling=scaling,
        augment=augment,
    )
    # the FID network trained on these images is cached under data.root / "dlpy-fid": in the hidden
    # cache folder, where it is never taken for a class, and named by the size it was trained at
    data.name = f"image_folder-{root.name}-{channels}x{image_size}"
    data.root = root / CACHE_FOLDER
    return data

"""Any folder of images, as in the TF2 course's anime-faces DCGAN: resized, centre-cropped, uint8.

The first-level subfolders are the classes (a flat folder is one class); the val and test
images are drawn at random with a fixed seed, as the folder has no splits of its own.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dlpy.data.vision import ImageData, Split
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image(path: Path, image_size: int, channels: int) -> torch.Tensor:
    """uint8 (channels, image_size, image_size): shorter side scaled to image_size, centre kept."""
    with Image.open(path) as image:
        image = image.convert("RGB" if channels == 3 else "L")
        scale = image_size / min(image.size)
        width = max(image_size, round(image.width * scale))
        height = max(image_size, round(image.height * scale))
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        left = (image.width - image_size) // 2
        top = (image.height - image_size) // 2
        array = np.asarray(image.crop((left, top, left + image_size, top + image_size)))
    return torch.from_numpy(array.reshape(image_size, image_size, channels).copy()).permute(2, 0, 1)


def find_images(root: Path) -> list[Path]:
    """The image files under root, searched recursively, in a fixed order."""
    files = []
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise DlpyError(
            f"dataset.root: no images ({', '.join(sorted(EXTENSIONS))}) found under {root}"
        )
    return files


def class_of(path: Path, root: Path) -> str:
    """The first-level subfolder holding the image, or "." for one directly under root."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else "."


def read_images(files: list[Path], image_size: int, channels: int) -> torch.Tensor:
    """uint8 (N, channels, image_size, image_size); a file that is no image is named."""
    images = []
    for path in files:
        try:
            images.append(read_image(path, image_size, channels))
        except OSError as err:
            raise DlpyError(f"{path}: not a readable image ({err})") from None
    return torch.stack(images)


def draw_splits(
    n: int, val_size: int, test_size: int, split_seed: int, root: Path
) -> dict[str, torch.Tensor]:
    """The indices of each split, drawn with a fixed seed: a folder has no splits of its own."""
    if val_size + test_size >= n:
        raise DlpyError(
            f"dataset.val_size + dataset.test_size ({val_size + test_size}) leave no training "
            f"images of the {n} in {root}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return {
        "train": perm[val_size + test_size :],
        "val": perm[:val_size],
        "test": perm[val_size : val_size + test_size],
    }


@DATASETS.register("image_folder")
def image_folder(
    *,
    root: str | Path,
    image_size: int = 64,
    channels: int = 3,
    num_classes: int | None = None,
    val_size: int = 1000,
    test_size: int = 1000,
    split_seed: int = 0,
    batch_size: int = 128,
    eval_batch_size: int = 500,
    mean: tuple[float, ...] = (0.5, 0.5, 0.5),
    std: tuple[float, ...] = (0.5, 0.5, 0.5),
    scaling: str = "standardize",
    augment: dict | None = None,
) -> ImageData:
    """Any folder of images (searched recursively), resized; first-level subfolders are classes."""
    root = Path(root).expanduser()
    files = find_images(root)
    labels = [class_of(p, root) for p in files]
    classes = sorted(set(labels))
    if num_classes is not None and num_classes != len(classes):
        raise DlpyError(
            f"dataset.num_classes is {num_classes}, but {root} has {len(classes)} class folders"
        )
    splits = draw_splits(len(files), val_size, test_size, split_seed, root)
    x = read_images(files, image_size, channels)
    y = torch.tensor([classes.index(label) for label in labels])
    parts = {split: Split(x[idx], y[idx]) for split, idx in splits.items()}
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
    data.name = f"image_folder-{root.name}"
    data.root = root
    return data

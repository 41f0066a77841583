"""Any folder of images, as in the course's anime-faces DCGAN: resized, centre-cropped, held as uint8."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dlpy.data.vision import ImageData, Split
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image(path, image_size, channels):
    """Scale the shorter side to image_size, then crop the centre square."""
    with Image.open(path) as image:
        image = image.convert("RGB" if channels == 3 else "L")
        scale = image_size / min(image.size)
        image = image.resize(
            (
                max(image_size, round(image.width * scale)),
                max(image_size, round(image.height * scale)),
            ),
            Image.Resampling.BILINEAR,
        )
        left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
        array = np.asarray(image.crop((left, top, left + image_size, top + image_size)))
    return torch.from_numpy(array.reshape(image_size, image_size, channels).copy()).permute(2, 0, 1)


@DATASETS.register("image_folder")
def image_folder(
    *,
    root,
    image_size=64,
    channels=3,
    num_classes=None,
    val_size=1000,
    test_size=1000,
    split_seed=0,
    batch_size=128,
    eval_batch_size=500,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    scaling="standardize",
    augment=None,
):
    """Any folder of images (searched recursively), resized to image_size; first-level subfolders are classes."""
    root = Path(root).expanduser()
    files = (
        sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS)
        if root.is_dir()
        else []
    )
    if not files:
        raise DlpyError(
            f"dataset.root: no images ({', '.join(sorted(EXTENSIONS))}) found under {root}"
        )
    label_of = {
        p: p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "."
        for p in files
    }
    classes = sorted(set(label_of.values()))
    if num_classes is not None and num_classes != len(classes):
        raise DlpyError(
            f"dataset.num_classes is {num_classes}, but {root} has {len(classes)} class folders"
        )
    if val_size + test_size >= len(files):
        raise DlpyError(
            f"dataset.val_size + dataset.test_size ({val_size + test_size}) leave no training "
            f"images of the {len(files)} in {root}"
        )
    images = []
    for path in files:
        try:
            images.append(read_image(path, image_size, channels))
        except OSError as err:
            raise DlpyError(f"{path}: not a readable image ({err})") from None
    x, y = torch.stack(images), torch.tensor([classes.index(label_of[p]) for p in files])
    perm = torch.randperm(len(files), generator=torch.Generator().manual_seed(split_seed))
    parts = perm[:val_size], perm[val_size : val_size + test_size], perm[val_size + test_size :]
    val, test, train = (Split(x[idx], y[idx]) for idx in parts)
    data = ImageData(
        train,
        val,
        test,
        classes,
        list(mean)[:channels],
        list(std)[:channels],
        batch_size,
        eval_batch_size,
        scaling=scaling,
        **(augment or {}),
    )
    data.name, data.root = f"image_folder-{root.name}", root
    return data

"""Where data files come from: the data folder, a system package's folder, or a download.

A data set that is missing names every place tried, in order, and how to provide the files.
`find_or_download` serves the tensor data sets (one upstream file or archive each);
`load_torchvision` the image data sets torchvision reads, whose files dlpy/data/files.py checks.
"""

import gzip
import os
import shutil
import tarfile
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import torch

from dlpy.data.files import check_idx_files, name_corrupted_file
from dlpy.errors import DlpyError


def find_or_download(
    what: str, root: str | Path, name: str, url: str, download: bool, unpack: str | None = None
) -> Path:
    """root/name if it is there, else download url into root (and unpack it).

    A miss raises one error that names every place tried and both ways to provide the files.
    """
    root = Path(root).expanduser()
    target = root / name
    if target.exists():
        return target
    tried = [f"{target}: not found"]
    if download:
        try:
            download_into(root, url, unpack)
        except Exception as err:  # noqa: BLE001 - any network or file error ends the search
            tried.append(f"download {url} into {root}: {type(err).__name__}: {err}")
        else:
            if target.exists():
                return target
            tried.append(f"download {url}: the download holds no {name}")
    else:
        tried.append("download: disabled (dataset.download=false)")
    raise not_found(what, tried, "or go online")


def not_found(what: str, tried: list[str], ways: str) -> DlpyError:
    """The error of data found nowhere: every place tried, in order, and the ways to provide it."""
    places = "".join(f"\n  - {place}" for place in tried)
    return DlpyError(
        f"{what}: no data found. Tried, in order:{places}\n"
        f"Set dataset.root to a folder holding the files, {ways}."
    )


def download_into(root: Path, url: str, unpack: str | None) -> None:
    """Download url into root and unpack a "tar" or "zip" archive there.

    The bytes go to a .partial file first, so a cut download is never taken for the file.
    """
    root.mkdir(parents=True, exist_ok=True)
    archive = root / url.rsplit("/", 1)[-1]
    partial = archive.with_name(archive.name + ".partial")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    partial.replace(archive)
    if unpack == "tar":
        # the "data" filter refuses links and paths that leave root (Python 3.10.12+, 3.11.4+)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with tarfile.open(archive) as tar:
            tar.extractall(root, **safe)
    elif unpack == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(root)


class Images(NamedTuple):
    """One split of a torchvision data set as read: uint8 (N, C, H, W) images, int64 labels."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]


def load_torchvision(
    cls: type, root: str | Path, system_dir: str | None, download: bool
) -> tuple[Images, Images]:
    """(train, test) from the data folder, else the system folder, else a download.

    The system folder is where Debian/Ubuntu dataset packages put the upstream files
    (`apt-get install dataset-fashion-mnist` -> /usr/share/datasets/fashion-mnist).
    """
    from torchvision.datasets import MNIST  # a second to import: only for the runs that read images

    root = Path(root).expanduser()
    tried = []
    for where in (root, system_dir and Path(system_dir)):
        if not where:
            continue
        try:
            if where != root and where.is_dir() and issubclass(cls, MNIST):
                import_idx_files(cls, where, root)  # flat *.gz files -> root/<Class>/raw/
                where = root
            if issubclass(cls, MNIST):
                check_idx_files(cls, where)
            return read_splits(cls, where, download=False)
        except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found or corrupted"
            # a file that is there but wrong is an error, not a miss
            name_corrupted_file(cls, where)
            tried.append(f"{where}: {err}")
    if download:
        try:
            return read_splits(cls, root, download=True)
        except Exception as err:  # noqa: BLE001 - any network or file error ends the search
            tried.append(f"download into {root}: {type(err).__name__}: {err}")
    else:
        tried.append("download: disabled (dataset.download=false)")
    raise not_found(cls.__name__, tried, "install the system package, or go online")


def read_splits(cls: type, where: Path, download: bool) -> tuple[Images, Images]:
    """The train and test splits of torchvision's class `cls` in folder `where`."""
    train = as_tensors(cls(str(where), train=True, download=download))
    test = as_tensors(cls(str(where), train=False, download=download))
    return train, test


def import_idx_files(cls: type, source: Path, root: str | Path) -> None:
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


def as_tensors(ds: torch.utils.data.Dataset) -> Images:
    """A torchvision data set's images as one uint8 (N, C, H, W) tensor, its labels as int64."""
    x = torch.as_tensor(ds.data)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # MNIST: NHW; CIFAR: NHWC
    return Images(x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long), list(ds.classes))

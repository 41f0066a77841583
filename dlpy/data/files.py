"""Is a data file what it claims to be? A cut download or a corrupted file is named in one line.

Without these checks a bad file surfaces far from its cause: torchvision asserts on an IDX header,
numpy fails on a short CSV row, and only the traceback's last frame hints at which file it was.
"""

import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlpy.errors import DlpyError, first_line

# LeCun's IDX format (the MNIST family): magic 0, 0, element type, number of dimensions; then the
# dimensions as big-endian int32; then the elements. Bytes per element by type:
IDX_ITEM_BYTES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def check_idx(path: str | Path) -> None:
    """An IDX file must be exactly as long as its header says."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(4)
        ok = (
            len(magic) == 4
            and magic[:2] == b"\0\0"
            and magic[2] in IDX_ITEM_BYTES
            and 1 <= magic[3] <= 3
        )
        dims = f.read(4 * magic[3]) if ok else b""
    if not ok or len(dims) != 4 * magic[3]:
        raise DlpyError(
            f"{path} is not an IDX file (truncated or corrupted header); "
            "delete it to fetch it again"
        )
    items = math.prod(struct.unpack(f">{magic[3]}I", dims))
    expected = 4 + len(dims) + items * IDX_ITEM_BYTES[magic[2]]
    if path.stat().st_size != expected:
        raise DlpyError(
            f"{path} is truncated or corrupted: its header announces {expected} bytes, "
            f"the file has {path.stat().st_size}; delete it to fetch it again"
        )


def check_idx_files(cls: type, root: str | Path) -> None:
    """Check the IDX files of a torchvision MNIST-family class found under root/<Class>/raw/."""
    for url, _ in cls.resources:
        path = Path(root) / cls.__name__ / "raw" / os.path.basename(url).removesuffix(".gz")
        if path.is_file():
            check_idx(path)


def name_corrupted_file(cls: type, root: str | Path) -> None:
    """Name a CIFAR file whose MD5 is not upstream's (torchvision says "not found or corrupted").

    The MD5 check is also what makes CIFAR safe to read: its batches are pickles, which torchvision
    loads only after they proved to be the upstream files.
    """
    from torchvision.datasets import cifar  # a second to import: only for the runs that read images

    files = getattr(cls, "train_list", []) + getattr(cls, "test_list", [])
    files += [[cls.meta["filename"], cls.meta["md5"]]] if hasattr(cls, "meta") else []
    for name, md5 in files:
        path = Path(root) / cls.base_folder / name
        if path.is_file() and not cifar.check_integrity(str(path), md5):
            raise DlpyError(
                f"{path} is corrupted or not the upstream file (its MD5 is not {md5}); "
                "delete it to fetch it again"
            )


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Parse a data file; one that cannot be parsed is named, with the parser's complaint."""
    try:
        yield
    # UnicodeDecodeError is a ValueError
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as err:
        raise DlpyError(
            f"{path} cannot be read (truncated, corrupted or not the upstream file): "
            f"{first_line(err)}"
        ) from None

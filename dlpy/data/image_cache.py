"""Decode a list of image files once, to one size, into a uint8 cache that later runs reuse.

A folder of a few thousand photos takes seconds to decode and resize on 2 CPU cores, far longer
than an epoch of a small network on the result; so the pixels are decoded once and kept as raw
uint8 rows in `<folder>/.dlpy-cache/`, keyed by the files' paths, sizes and mtimes and the size
and channels asked for. A changed file changes the key, and the cache is written again. Files
PIL cannot read are skipped and remembered in the cache, so a later run names them without
reading them again. A decompression bomb is not skipped: it stops the run, named.
"""

import hashlib
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from PIL import Image, ImageOps

from dlpy.errors import DlpyError, first_line
from dlpy.io import atomic_write

log = logging.getLogger("dlpy")

CACHE_FOLDER = ".dlpy-cache"  # hidden: the folder listing skips it
# bump when the decoding changes, so that old caches are not reused (2: bombs are no longer
# skipped, so a cache that skipped one must not hide it)
CACHE_VERSION = 2


class Decoded(NamedTuple):
    """The readable files' pixels, which files those are, and why each other file was skipped."""

    x: np.ndarray  # uint8 (N, channels, size, size), memory-mapped when it is large
    kept: list[int]  # indices into the file list of the rows of x
    skipped: list[tuple[str, str]]  # (path, reason)


def read_image(path: Path, image_size: int, channels: int) -> np.ndarray:
    """uint8 (channels, image_size, image_size): shorter side scaled to image_size, centre kept.

    PIL's decompression-bomb warning is raised as an error, as its DecompressionBombError is.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            # a phone's photo stores its rotation in EXIF: upright, as a viewer shows it
            image = ImageOps.exif_transpose(image).convert("RGB" if channels == 3 else "L")
    scale = image_size / min(image.size)
    width = max(image_size, round(image.width * scale))
    height = max(image_size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left = (image.width - image_size) // 2
    top = (image.height - image_size) // 2
    array = np.asarray(image.crop((left, top, left + image_size, top + image_size)))
    return array.reshape(image_size, image_size, channels).transpose(2, 0, 1)


def why_unreadable(
    path: Path, image_size: int, channels: int, refuse_bombs: bool = False
) -> tuple[np.ndarray | None, str]:
    """(pixels, "") for an image; (None, the reason) for a file that is none.

    With `refuse_bombs`, a decompression bomb (a file whose header claims more pixels than
    PIL.Image.MAX_IMAGE_PIXELS) is an error naming it instead: a hostile file, or an image far
    larger than any network here takes, which skipped among a folder's thousands would go unseen.
    """
    if path.stat().st_size == 0:
        return None, "empty file"
    try:
        return read_image(path, image_size, channels), ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        if not refuse_bombs:
            return None, first_line(err)
        raise DlpyError(
            f"dataset.root: {path} is refused as a decompression bomb: {first_line(err)} "
            "(PIL.Image.MAX_IMAGE_PIXELS); shrink it or take it out of the folder"
        ) from None
    # PIL's format plugins raise OSError, SyntaxError, ValueError, struct.error, EOFError, ... for
    # a broken file: each means "skip it"
    except Exception as err:
        return None, first_line(err).replace(f" '{path}'", "")  # the path is named already


def cache_key(files: list[Path], image_size: int, channels: int) -> str:
    """A digest of the files' paths, sizes and mtimes and of the decoding asked for."""
    digest = hashlib.sha256(f"{CACHE_VERSION} {image_size} {channels}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"\n{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def decode_into(
    f: IO[bytes], files: list[Path], image_size: int, channels: int
) -> tuple[list[int], list[tuple[str, str]]]:
    """Write the readable files' pixels to f, row after row: what was kept, and what skipped."""
    kept = []
    skipped = []
    for i, path in enumerate(files):
        pixels, reason = why_unreadable(path, image_size, channels, refuse_bombs=True)
        if pixels is None:
            skipped.append((str(path), reason))
            continue
        f.write(np.ascontiguousarray(pixels).tobytes())
        kept.append(i)
    return kept, skipped


def fits_in_memory(nbytes: int) -> bool:
    """Under a quarter of the machine's RAM: the rest is left to the network and the batches."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return nbytes < ram // 4


def load_cache(pixels: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The cached rows, read into memory, or memory-mapped when they would crowd the RAM.

    Copy-on-write ("c"): the rows are writable in this process, the file is never changed.
    """
    if fits_in_memory(int(np.prod(shape))):
        return np.fromfile(pixels, dtype=np.uint8).reshape(shape)
    return np.memmap(pixels, dtype=np.uint8, mode="c", shape=shape)


def read_cached(folder: Path, name: str, key: str, shape: tuple[int, ...]) -> Decoded | None:
    """The cache `name`-`key` under folder, if it is whole; None if there is none."""
    pixels = folder / f"{name}-{key}.u8"
    index = folder / f"{name}-{key}.json"
    try:
        meta = json.loads(index.read_text())
        size = pixels.stat().st_size
    except (OSError, ValueError):  # none yet, or one from a run killed mid-write
        return None
    shape = (len(meta["kept"]), *shape)
    if size != int(np.prod(shape)):
        return None
    skipped = [tuple(pair) for pair in meta["skipped"]]
    return Decoded(load_cache(pixels, shape), meta["kept"], skipped)


def write_cache(folder: Path, name: str, key: str, decode: "Decoder") -> Decoded:
    """Decode into `name`-`key`.u8, then write its index; a killed run leaves no index."""
    outcome = []  # (kept, skipped), from inside the write
    atomic_write(folder / f"{name}-{key}.u8", lambda f: outcome.extend(decode(f)))
    meta = {"kept": outcome[0], "skipped": outcome[1]}
    atomic_write(folder / f"{name}-{key}.json", lambda f: f.write(json.dumps(meta).encode()))
    for old in folder.glob(f"{name}-*"):  # the same split and size from an older folder state
        if not old.name.startswith(f"{name}-{key}."):
            old.unlink(missing_ok=True)
    return read_cached(folder, name, key, decode.shape)


def since(start: float) -> float:
    return time.perf_counter() - start


class Decoder:
    """decode(f): the files' pixels into f; `shape` is one row's."""

    def __init__(self, files: list[Path], image_size: int, channels: int) -> None:
        self.files = files
        self.image_size = image_size
        self.channels = channels
        self.shape = (channels, image_size, image_size)

    def __call__(self, f: IO[bytes]) -> tuple[list[int], list[tuple[str, str]]]:
        return decode_into(f, self.files, self.image_size, self.channels)


def decode_cached(
    root: Path, name: str, files: list[Path], image_size: int, channels: int
) -> Decoded:
    """The files decoded, from the cache under root when the files have not changed since.

    A folder that cannot be written (a read-only mount) is decoded into memory, with a warning.
    """
    decode = Decoder(files, image_size, channels)
    folder = root / CACHE_FOLDER
    name = f"{name}-{channels}x{image_size}"
    key = cache_key(files, image_size, channels)
    start = time.perf_counter()
    if cached := read_cached(folder, name, key, decode.shape):
        log.info(
            "image_folder %s: %d images read from the cache in %.2fs",
            name,
            len(cached.kept),
            since(start),
        )
        return cached
    try:
        written = write_cache(folder, name, key, decode)
        log.info(
            "image_folder %s: %d images decoded and cached in %.2fs",
            name,
            len(written.kept),
            since(start),
        )
        return written
    except OSError as err:
        log.warning("cannot cache the decoded images in %s (%s): decoding in memory", folder, err)
    buffer = io.BytesIO()
    kept, skipped = decode(buffer)
    x = np.frombuffer(buffer.getbuffer(), dtype=np.uint8).reshape(len(kept), *decode.shape)
    return Decoded(x.copy(), kept, skipped)

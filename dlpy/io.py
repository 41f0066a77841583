"""Files that must never be half-written: write to a temporary file, fsync, rename."""

import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import torch

from dlpy import environ
from dlpy.errors import DlpyError, first_line


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """torch.save, atomically: a kill mid-write leaves the previous checkpoint whole."""
    atomic_write(path, lambda f: torch.save(state, f))


def save_json(obj: Any, path: str | Path) -> None:
    atomic_write(
        path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
    )


def check_output_folder(folder: str | Path, need: int = 0) -> None:
    """Fail before training when `folder` cannot take the run's files: not creatable, read-only
    or full.

    A probe goes the way every checkpoint will (temporary file, fsync, rename), and the free space
    must hold `need` bytes.
    """
    folder = Path(folder)
    probe = folder / f".dlpy-write-probe-{os.getpid()}"  # data-parallel processes share it
    try:
        atomic_write(probe, lambda f: f.write(b"dlpy"))
        probe.unlink()
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise DlpyError(
            f"output folder {folder} cannot be written: {err.strerror or err}"
        ) from None
    if free < need:
        raise DlpyError(
            f"output folder {folder} has {free / 2**20:.1f} MiB free, but this run's checkpoints "
            f"need about {need / 2**20:.1f} MiB"
        )


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a dlpy checkpoint; weights_only=True refuses pickles that would run code."""
    path = Path(path)
    if not path.is_file():
        raise DlpyError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise DlpyError(
            f"checkpoint {path} cannot be read (truncated, corrupted or not a dlpy "
            f"checkpoint): {first_line(err)}"
        ) from None
    if not isinstance(state, dict) or "task" not in state:
        raise DlpyError(f"checkpoint {path} is not a dlpy checkpoint (no 'task' entry)")
    return state


def weights_only() -> AbstractContextManager:
    """Inside, torch.load refuses pickled code even where a library asks it not to: torch.hub's
    load_state_dict_from_url, which torchvision's pretrained weights go through, passes
    weights_only=False, and unpickles whatever file sits in the hub cache under the expected
    name."""
    return environ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")


def torchvision_weights(arch: str, key: str) -> tuple[torch.nn.Module, Any]:
    """torchvision's network `arch` with its default (ImageNet) weights, and the weights' own
    preprocessing (`transforms()`), from torch's hub cache or downloaded there.

    torchvision's code fetches the file; dlpy refuses a pickle that would run code, and offline
    names the URL and the file to put in the cache. `key` begins the message: the option at fault.
    """
    # heavy: kept off the start-up path (torchvision takes about 1.5 s to import)
    from torchvision import models

    weights = models.get_model_weights(arch).DEFAULT
    try:
        with weights_only():  # a file put in the hub cache by hand must not run code
            net = models.get_model(arch, weights=weights)
    except (OSError, RuntimeError, pickle.UnpicklingError) as err:
        # offline (URLError is an OSError), a cut file, or one that carries code
        where = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise DlpyError(
            f"{key}: cannot load {weights} ({first_line(err)}); without a network, download "
            f"{weights.url} elsewhere and put it at {where}"
        ) from None
    return net, weights.transforms()


def resolve_checkpoint(path: str | Path, name: str = "last.pt") -> Path:
    """A run folder stands for its checkpoints/<name>; a file stands for itself."""
    path = Path(path).expanduser()
    return path / "checkpoints" / name if path.is_dir() else path

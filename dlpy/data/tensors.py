"""Non-image data held in memory as tensors, and finding its upstream files.

`TensorData` is the counterpart of ImageData for sequences and tables: every split is a set
of sample indices, and a subclass turns a batch of indices into tensors (`batch`), so windows
over a long series or a text are cut per batch instead of stored one by one.
"""

import shutil
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import torch

from dlpy.data.base import Shuffled
from dlpy.errors import DlpyError


class TensorData(Shuffled):
    """Splits of sample indices plus the batch recipe; the trainer's interface, as ImageData's."""

    def __init__(self, sizes, batch_size, eval_batch_size):
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DlpyError(f"dataset.{key} must be a positive integer, got {value!r}")
        self.sizes, self.batch_size, self.eval_batch_size = sizes, batch_size, eval_batch_size
        super().__init__()
        self.name, self.root = None, None

    def batch(self, split, idx):
        """The tensors of samples `idx` of `split`: (inputs, targets[, extra])."""
        raise NotImplementedError

    def tensors(self):
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    @property
    def device(self):
        return next(iter(self.tensors().values())).device

    def to(self, device):
        for key, value in self.tensors().items():
            setattr(self, key, value.to(device))
        self.move_generator(device)
        return self

    def steps_per_epoch(self):
        return -(-self.sizes["train"] // self.batch_size)

    def train_batches(self):
        for idx in self.shuffled_batches(self.sizes["train"], self.batch_size):
            yield self.batch("train", self.part(idx))

    def eval_batches(self, split):
        for idx in torch.arange(self.sizes[split], device=self.device).split(self.eval_batch_size):
            yield self.batch(split, self.part(idx))


def find_or_download(what, root, name, url, download, unpack=None):
    """root/name if it is there, else download url into root (and unpack it); one error naming both ways."""
    root = Path(root).expanduser()
    target, tried = root / name, []
    if target.exists():
        return target
    tried.append(f"{target}: not found")
    if download:
        try:
            root.mkdir(parents=True, exist_ok=True)
            archive = root / url.rsplit("/", 1)[-1]
            partial = archive.with_name(archive.name + ".partial")
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
            partial.replace(archive)
            if unpack == "tar":
                with tarfile.open(archive) as tar:
                    # the "data" filter refuses links and paths that leave root (Python 3.10.12+, 3.11.4+)
                    tar.extractall(
                        root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {})
                    )
            elif unpack == "zip":
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(root)
            if target.exists():
                return target
            tried.append(f"download {url}: the download holds no {name}")
        except Exception as err:  # noqa: BLE001 - any network or file error ends the search
            tried.append(f"download {url} into {root}: {type(err).__name__}: {err}")
    else:
        tried.append("download: disabled (dataset.download=false)")
    raise DlpyError(
        f"{what}: no data found. Tried, in order:\n  - "
        + "\n  - ".join(tried)
        + "\nSet dataset.root to a folder holding the files, or go online."
    )

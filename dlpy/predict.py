"""`dlpy predict <run> <file|folder|glob>...`: a trained classifier's classes for new files.

An image goes through the run's own preprocessing: converted to the data's channels, its shorter
side scaled to the data's image size and the centre kept (as `dataset=image_folder` reads its
files), then normalised as the training batches were. An IMDB classifier reads text files,
tokenised and indexed against its training vocabulary. Every file gets its top-k classes on one
printed line and in <run>/predictions/predictions.csv; images also get a captioned grid,
predictions.png, and with gradcam=true a grid with Grad-CAM on top, gradcam.png. A file the
network cannot take is named on one line and skipped.
"""

import csv
import io
import sys
from collections.abc import Callable
from glob import glob
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dlpy.data.image_cache import why_unreadable
from dlpy.data.text import ReviewData
from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError, first_line
from dlpy.io import atomic_write
from dlpy.plots import labelled_grid, save_png
from dlpy.runs import class_names, load_run, own_options, paths_and_overrides, typed_options
from dlpy.schema import Option, Size, option
from dlpy.tasks.autoencoder import Reconstruction
from dlpy.tasks.base import Task
from dlpy.tasks.classification import Classification
from dlpy.tasks.gan import GAN
from dlpy.tasks.language_model import CharLanguageModel
from dlpy.tasks.reinforce import Reinforce
from dlpy.trainer import Trainer
from dlpy.visualize import Network
from dlpy.visualize.heatmaps import gradcam_maps, overlay

USAGE = "dlpy predict <run dir> <file|folder|glob> ... [topk=3] [gradcam=true] [key=value ...]"
GRID_LIMIT = 64  # images drawn in the grids; the CSV and the printout have every file
CELL = 112  # pixels of an image in the grids: room for a caption of about 18 characters
GLOB = "*?["
# topk: at most the classes, however many are asked for
PREDICT_OPTIONS = {"topk": option(Size), "gradcam": Option(bool)}
# the files of a folder that predict reads; a file named on the command line is tried whatever
# its suffix (PIL tells an image by its content)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def check_classifier(task: Task, data: object, run_dir: Path) -> None:
    """Only classifiers of images or reviews predict; the others are told what to run instead."""
    trained = f"{run_dir} trained {type(task).__name__}"
    if isinstance(task, (CharLanguageModel, GAN, Reconstruction)):
        raise DlpyError(f"dlpy predict: {trained}, which generates: use dlpy sample {run_dir}")
    if isinstance(task, Reinforce):
        raise DlpyError(f"dlpy predict: {trained}, an agent: dlpy eval {run_dir} record=true")
    if not isinstance(task, Classification):
        raise DlpyError(f"dlpy predict: needs a classifier; {trained}")
    if not isinstance(data, (ImageData, ReviewData)):
        raise DlpyError(
            f"dlpy predict: reads images and IMDB reviews; {run_dir} trained on "
            f"{type(data).__name__}"
        )


def expand(patterns: list[str], suffixes: set[str]) -> tuple[list[Path], list[str]]:
    """(the files the arguments name, one line per argument that names none).

    A folder gives its files with one of `suffixes`, a glob the files it matches (** too); a file
    given by name is taken whatever its suffix.
    """
    files = []
    problems = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes
            )
            files += found
            if not found:
                problems.append(f"{path}: no {' '.join(sorted(suffixes))} files in this folder")
        elif path.exists():
            files.append(path)
        elif any(c in pattern for c in GLOB):
            matches = sorted(Path(p) for p in glob(str(path), recursive=True) if Path(p).is_file())
            files += matches
            if not matches:
                problems.append(f"{pattern}: matches no file")
        else:
            problems.append(f"{path}: no such file")
    return list(dict.fromkeys(files)), problems


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_all(files: list[Path], read: Callable[[Path], object]) -> tuple[list[Path], list]:
    """The files `read` can read and what it read; each other file is named on stderr."""
    kept = []
    contents = []
    for path in files:
        try:
            contents.append(read(path))
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            print(f"dlpy predict: skipped {path}: {first_line(err)}", file=sys.stderr)
            continue
        kept.append(path)
    return kept, contents


def probabilities(trainer: Trainer, x: torch.Tensor) -> torch.Tensor:
    """The classifier's class probabilities for network inputs x, batch by batch, on the CPU."""
    out = []
    with trainer.precision.evaluating(trainer.task):
        for batch in x.split(trainer.data.eval_batch_size):
            (batch,) = trainer.precision.move((batch,))
            out.append(trainer.task.net(batch).float().softmax(1).cpu())
    return torch.cat(out)


def write_csv(
    path: Path, files: list[Path], top: torch.return_types.topk, classes: list[str]
) -> None:
    """One row per file: its name, then class and probability for each of the top k."""
    k = top.values.shape[1]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", *[f"{key}_{r}" for r in range(1, k + 1) for key in ("class", "p")]])
    for file, p, i in zip(files, top.values.tolist(), top.indices.tolist(), strict=True):
        ranked = [value for c, q in zip(i, p, strict=True) for value in (classes[c], f"{q:.6f}")]
        writer.writerow([str(file), *ranked])
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))


def captions(top: torch.return_types.topk, classes: list[str]) -> tuple[list[str], list[bool]]:
    """`Sneaker 97%` under each image, green where the network gives the class at least half."""
    best = top.values[:, 0].tolist()
    names = [f"{classes[i]} {p:.0%}" for i, p in zip(top.indices[:, 0].tolist(), best, strict=True)]
    return names, [p >= 0.5 for p in best]


def write_grids(trainer: Trainer, pixels: torch.Tensor, top, folder: Path, gradcam: bool) -> None:
    """predictions.png: the images as the network saw them, captioned; gradcam.png with Grad-CAM."""
    pixels = pixels[:GRID_LIMIT]
    names, confident = captions(top, class_names(trainer.data))
    scale = max(1, CELL // pixels.shape[-1])
    columns = min(8, len(pixels))  # a few files make one short row, not a wide white one
    grid = labelled_grid(pixels, names, confident, columns, cell=scale * pixels.shape[-1])
    save_png(grid, folder / "predictions.png")
    print(folder / "predictions.png")
    if gradcam:
        network = Network.of_run(trainer)
        layer = network.conv_layers()[-1]
        cam, _ = gradcam_maps(network, network.normalize(pixels.to(network.device)), layer)
        heat = overlay(pixels, cam.cpu(), scale)
        grid = labelled_grid(heat, names, confident, columns, cell=heat.shape[-1])
        save_png(grid, folder / "gradcam.png")
        print(folder / "gradcam.png")


def parse_options(own: dict, data: object) -> tuple[int, bool]:
    """topk= (checked: PREDICT_OPTIONS) at most the classes; gradcam= for images only."""
    topk = own.get("topk", 3)
    gradcam = own.get("gradcam", False)
    if gradcam and not isinstance(data, ImageData):
        raise DlpyError("dlpy predict: gradcam=true applies to image classifiers")
    return min(topk, len(class_names(data))), gradcam


def network_inputs(
    data: ImageData | ReviewData, files: list[Path]
) -> tuple[list[Path], torch.Tensor | None]:
    """(the files read, the network's inputs): images as pixels, reviews as their encoding."""
    if isinstance(data, ReviewData):
        files, texts = read_all(files, read_text)
        return files, data.encode_texts(texts) if texts else None
    _, channels, size, _ = data.test.x.shape
    files, images = read_all(files, lambda path: read_picture(path, size, channels))
    return files, torch.stack(images) if images else None


def read_picture(path: Path, size: int, channels: int) -> torch.Tensor:
    """uint8 (channels, size, size), decoded as an image folder decodes its files (dlpy/data)."""
    pixels, reason = why_unreadable(path, size, channels)
    if pixels is None:
        raise ValueError(reason)
    return torch.from_numpy(np.array(pixels))  # a copy: PIL's pixels are read-only


def predict_command(args: list[str]) -> None:
    """Top-k classes for each file, printed and saved in <run dir>/predictions/."""
    own, rest = own_options(args, PREDICT_OPTIONS)
    own = typed_options(own, PREDICT_OPTIONS)
    paths, overrides = paths_and_overrides(rest)
    if len(paths) < 2:
        raise DlpyError(f"usage: {USAGE}")
    run_dir, _, trainer = load_run([paths[0], *overrides], USAGE)
    data = trainer.data
    check_classifier(trainer.task, data, run_dir)
    topk, gradcam = parse_options(own, data)
    suffixes = {".txt"} if isinstance(data, ReviewData) else IMAGE_SUFFIXES
    files, problems = expand(paths[1:], suffixes)
    for problem in problems:
        print(f"dlpy predict: skipped {problem}", file=sys.stderr)
    files, x = network_inputs(data, files)
    if x is None:
        raise DlpyError("dlpy predict: none of the files given could be read (each is named above)")
    inputs = data.normalize(x.to(data.device)) if isinstance(data, ImageData) else x
    top = probabilities(trainer, inputs).topk(topk, 1)
    classes = class_names(data)
    for file, p, i in zip(files, top.values.tolist(), top.indices.tolist(), strict=True):
        print(f"{file}: " + ", ".join(f"{classes[c]} {q:.1%}" for c, q in zip(i, p, strict=True)))
    folder = run_dir / "predictions"
    folder.mkdir(exist_ok=True)
    write_csv(folder / "predictions.csv", files, top, classes)
    print(folder / "predictions.csv")
    if isinstance(data, ImageData):
        write_grids(trainer, x, top, folder, gradcam)

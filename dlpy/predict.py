"""`dlpy predict <run> <file|folder|glob>...`: a trained classifier's classes for new files.

An image goes through the run's own preprocessing: converted to the data's channels, its shorter
side scaled to the data's image size and the centre kept (as `dataset=image_folder` reads its
files), then normalised as the training batches were. An IMDB classifier reads text files,
tokenised and indexed against its training vocabulary. Every file gets its top-k classes on one
printed line and in <run>/predictions/predictions.csv; images also get a captioned grid,
predictions.png, and with gradcam=true a grid with Grad-CAM on top, gradcam.png. A file the
network cannot take is named on one line and skipped. A multi-head network (model=multi_head)
gives each head's top k, by the head's name: `class: Shirt 81%, ... | group: tops 99%, ...`.
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
from dlpy.tasks.multi_output import MultiOutput
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
    if not isinstance(task, (Classification, MultiOutput)):
        raise DlpyError(f"dlpy predict: needs a classifier; {trained}")
    if isinstance(task, MultiOutput) and task.inputs:
        # the extra inputs are mapped from each sample's label (Chollet 7.1.2), which a new file
        # does not have
        raise DlpyError(
            f"dlpy predict: {run_dir} also takes the inputs {', '.join(task.inputs)} "
            "(model.task.inputs), which come from labels that new files do not have"
        )
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


def head_names(task: Task, data: object) -> dict[str, list[str]]:
    """The names of each head's classes, by head: a classifier's one head is named ''."""
    classes = class_names(data)
    if isinstance(task, MultiOutput):
        return {name: task.target_names(name, classes) for name in task.heads}
    return {"": classes}


def probabilities(trainer: Trainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each head's class probabilities for network inputs x, batch by batch, on the CPU."""
    task = trainer.task
    out: dict[str, list[torch.Tensor]] = {}
    with trainer.precision.evaluating(task):
        for batch in x.split(trainer.data.eval_batch_size):
            (batch,) = trainer.precision.move((batch,))
            if isinstance(task, MultiOutput):
                # log_probabilities: a binary head's one logit becomes its two classes' odds
                logits = task.net(batch)
                heads = {n: task.log_probabilities(z.float(), n).exp() for n, z in logits.items()}
            else:
                heads = {"": task.net(batch).float().softmax(1)}
            for name, p in heads.items():
                out.setdefault(name, []).append(p.cpu())
    return {name: torch.cat(parts) for name, parts in out.items()}


def write_csv(
    path: Path,
    files: list[Path],
    tops: dict[str, torch.return_types.topk],
    names: dict[str, list[str]],
) -> None:
    """One row per file: its name, then class and probability for each of the top k, head by
    head; a multi-head network's columns carry the head's name (`group/class_1`)."""
    header = ["file"]
    for head, top in tops.items():
        prefix = f"{head}/" if head else ""
        ranks = range(1, top.values.shape[1] + 1)
        header += [f"{prefix}{key}_{r}" for r in ranks for key in ("class", "p")]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for row, file in enumerate(files):
        ranked = []
        for head, top in tops.items():
            pairs = zip(top.indices[row].tolist(), top.values[row].tolist(), strict=True)
            ranked += [value for c, q in pairs for value in (names[head][c], f"{q:.6f}")]
        writer.writerow([str(file), *ranked])
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))


def ranked_line(row: int, tops: dict[str, torch.return_types.topk], names: dict) -> str:
    """`Shirt 81.0%, T-shirt/top 9.2%`; a multi-head network's heads by name, ` | ` apart."""
    parts = []
    for head, top in tops.items():
        pairs = zip(top.indices[row].tolist(), top.values[row].tolist(), strict=True)
        ranked = ", ".join(f"{names[head][c]} {q:.1%}" for c, q in pairs)
        parts.append(f"{head}: {ranked}" if head else ranked)
    return " | ".join(parts)


def captions(
    tops: dict[str, torch.return_types.topk], names: dict[str, list[str]]
) -> tuple[list[str], list[bool]]:
    """`Sneaker 97%` under each image (`Shirt 81% / tops 99%` for several heads), green where
    the network gives every head's first class at least half."""
    per_head = []
    for head, top in tops.items():
        pairs = zip(top.indices[:, 0].tolist(), top.values[:, 0].tolist(), strict=True)
        per_head.append([f"{names[head][c]} {p:.0%}" for c, p in pairs])
    least = torch.stack([top.values[:, 0] for top in tops.values()]).amin(0)
    return [" / ".join(parts) for parts in zip(*per_head, strict=True)], (least >= 0.5).tolist()


def write_grids(
    trainer: Trainer,
    pixels: torch.Tensor,
    tops: dict[str, torch.return_types.topk],
    folder: Path,
    gradcam: bool,
) -> None:
    """predictions.png: the images as the network saw them, captioned; gradcam.png with Grad-CAM."""
    pixels = pixels[:GRID_LIMIT]
    names, confident = captions(tops, head_names(trainer.task, trainer.data))
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


def parse_options(own: dict, task: Task, data: object) -> tuple[int, bool]:
    """topk= (checked: PREDICT_OPTIONS; each head gives at most its classes); gradcam= for
    single-head image classifiers: Grad-CAM follows one score."""
    topk = own.get("topk", 3)
    gradcam = own.get("gradcam", False)
    if gradcam and not isinstance(data, ImageData):
        raise DlpyError("dlpy predict: gradcam=true applies to image classifiers")
    if gradcam and isinstance(task, MultiOutput):
        raise DlpyError("dlpy predict: gradcam=true applies to networks of one head")
    return topk, gradcam


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
    topk, gradcam = parse_options(own, trainer.task, data)
    suffixes = {".txt"} if isinstance(data, ReviewData) else IMAGE_SUFFIXES
    files, problems = expand(paths[1:], suffixes)
    for problem in problems:
        print(f"dlpy predict: skipped {problem}", file=sys.stderr)
    files, x = network_inputs(data, files)
    if x is None:
        raise DlpyError("dlpy predict: none of the files given could be read (each is named above)")
    inputs = data.normalize(x.to(data.device)) if isinstance(data, ImageData) else x
    heads = probabilities(trainer, inputs)
    tops = {head: p.topk(min(topk, p.shape[1]), 1) for head, p in heads.items()}
    names = head_names(trainer.task, data)
    for row, file in enumerate(files):
        print(f"{file}: {ranked_line(row, tops, names)}")
    folder = run_dir / "predictions"
    folder.mkdir(exist_ok=True)
    write_csv(folder / "predictions.csv", files, tops, names)
    print(folder / "predictions.csv")
    if isinstance(data, ImageData):
        write_grids(trainer, x, tops, folder, gradcam)

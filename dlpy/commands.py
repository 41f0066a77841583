"""The subcommands that read what a run left: `dlpy eval`, `sample`, `visualize`, `predict`,
`export`, `report`, `list`; and `dlpy lr_find` (dlpy/lr_find.py), which trains a few steps and
keeps nothing of them.

Each takes a run folder (or a sweep folder), rebuilds the run's data and task from its saved
config (dlpy/runs.py), loads the best checkpoint, and writes or prints what was asked; predict
and export live in dlpy/predict.py and dlpy/export.py, ensembles in dlpy/ensemble.py. dlpy/cli.py
imports this module only when one of them runs: it imports torch, which `dlpy --help` does
without.
"""

import difflib
from pathlib import Path
from typing import Annotated

import torch
from torch.utils.tensorboard import SummaryWriter

from dlpy import visualize
from dlpy.ensemble import evaluate_ensemble
from dlpy.errors import DlpyError, unknown
from dlpy.export import export_command
from dlpy.io import load_checkpoint, resolve_checkpoint
from dlpy.plots import save_png
from dlpy.precision import resolve_device
from dlpy.predict import predict_command
from dlpy.report import write_report
from dlpy.runs import class_names, load_run, own_options, paths_and_overrides, typed_options
from dlpy.schema import Option, Positive, Range, option
from dlpy.tasks.classification import Classification
from dlpy.tasks.conditional_gan import Labelled
from dlpy.tasks.language_model import CharLanguageModel
from dlpy.tasks.multi_output import MultiOutput
from dlpy.tasks.reinforce import EvalEpisodes, Reinforce

# The commands' own options, checked (dlpy/runs.py typed_options) before any run is read.
EVAL_OPTIONS = {"episodes": option(EvalEpisodes), "record": Option(bool)}  # see EvalEpisodes
SAMPLE_OPTIONS = {
    # Images in the grids: 1024 Fashion-MNIST images are a 32 x 32 grid of 900 pixels a side,
    # generated in one batch; past that the grid is too small to read and the batch too big.
    "n": option(Annotated[int, Range(ge=1, le=1024)]),
    # Characters per text: 25 times the book's 400 (Chollet 8.1). Each is one pass of the network
    # over the last 60 characters, about 7 ms for the book's LSTM on one core: 10,000 are a
    # minute, shown by a bar.
    "length": option(Annotated[int, Range(ge=1, le=10_000)]),
    # Each log-probability is divided by the temperature (Chollet 8.1): 0 and less mean nothing.
    "temperature": option(list[Positive]),
    # Classes of a conditioned GAN's rows, by name or number: checked against the run's classes.
    "label": Option(str),
}


def announce_checkpoint(args: list[str]) -> int:
    """Print which checkpoint `dlpy eval` evaluates, before the data load (the slow part); its
    step is returned. Without a readable run folder, load_run names what is missing."""
    config = Path(args[0]) / ".hydra" / "config.yaml" if args else None
    if config is None or not config.is_file():
        return 0
    path = resolve_checkpoint(args[0], "best.pt")
    state = load_checkpoint(path)
    monitor = (state.get("config") or {}).get("trainer", {}).get("monitor")
    best = state.get("callbacks", {}).get("Checkpoint", {}).get("best")
    line = f"evaluating {path}: epoch {state.get('epoch')}, step {state.get('step')}"
    print(line + (f" (best {monitor} {best:.4f})" if best is not None else ""), flush=True)
    return state.get("step", 0)


def eval_command(args: list[str]) -> None:
    """The best checkpoint on the test split; an agent plays `episodes` greedy and sampled
    episodes instead, and with record=true also writes one greedy episode to
    <run dir>/episode.gif. Several runs are evaluated as an ensemble (dlpy/ensemble.py).
    A classifier's errors are analysed too (dlpy/analysis.py): <run dir>/eval/, and each head's
    of a multi-head network in <run dir>/eval/<head>/."""
    own, rest = own_options(args, EVAL_OPTIONS)
    own = typed_options(own, EVAL_OPTIONS)
    runs, overrides = paths_and_overrides(rest)
    if len(runs) > 1:
        if own:
            raise DlpyError("dlpy eval: episodes= and record= apply to one agent, not an ensemble")
        evaluate_ensemble(runs, overrides)
        return
    usage = (
        "dlpy eval <run dir> [<run dir> ...] [key=value ...] "
        "(an agent also: episodes=20 record=true)"
    )
    step = announce_checkpoint(rest)
    run_dir, _, trainer = load_run(rest, usage)
    task = trainer.task
    if own and not isinstance(task, Reinforce):
        raise DlpyError(
            "dlpy eval: episodes= and record= apply to agents (model=reinforce); "
            f"{run_dir} trained {type(task).__name__}"
        )
    if isinstance(task, Reinforce):
        task.eval_episodes = own.get("episodes", task.eval_episodes)
        task.show_progress = True
    for key, value in trainer.test().items():
        print(f"{key:12s} {value:.4f}")
    classes = class_names(trainer.data)
    if isinstance(task, Classification) and classes is not None:
        from dlpy.analysis import error_analysis  # matplotlib takes a second to import: if drawn

        error_analysis(trainer, run_dir, classes, step)
    if isinstance(task, MultiOutput):  # each head's errors, with its own targets' names
        from dlpy.analysis import heads_analysis  # matplotlib, as above: only when drawn

        heads_analysis(trainer, run_dir, classes, step)
    if own.get("record"):
        frames = task.record(run_dir / "episode.gif")
        print(f"{run_dir / 'episode.gif'}  ({frames} frames)")


def sample_options(own: dict, trained: str, text: bool) -> dict:
    """`dlpy sample`'s n=, length= and temperature= (checked) as the task's examples()
    arguments; a character model takes n= for length= too."""
    if not text and ("length" in own or "temperature" in own):
        raise DlpyError(f"dlpy sample: length= and temperature= apply to text models; {trained}")
    kwargs = {} if text else {"n": 64}
    if "n" in own or "length" in own:
        kwargs["n"] = own.get("length", own.get("n"))
    if "temperature" in own:
        kwargs["temperatures"] = own["temperature"]
    return kwargs


def sample_labels(value: str, classes: list[str]) -> list[int]:
    """`label=Sneaker,Bag` (class names, any case, or numbers) as class indices, in that order."""
    known = {name.lower(): i for i, name in enumerate(classes)}
    labels = []
    for word in value.split(","):
        word = word.strip()
        if word.isdigit() and int(word) < len(classes):
            labels.append(int(word))
        elif word.lower() in known:
            labels.append(known[word.lower()])
        else:
            close = difflib.get_close_matches(word, classes, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            listed = ", ".join(f"{i} {name}" for i, name in enumerate(classes))
            raise DlpyError(f"dlpy sample: label {word!r} is not a class.{hint} Classes: {listed}")
    return labels


def sample_command(args: list[str]) -> None:
    """The task's examples from the best checkpoint: images as PNGs, texts printed and saved,
    in <run dir>/samples/. A class-conditioned GAN draws the classes of label= (a row each)."""
    own, rest = own_options(args, SAMPLE_OPTIONS)
    own = typed_options(own, SAMPLE_OPTIONS)
    usage = "dlpy sample <run dir> [n=64 | label=Sneaker,Bag | length=400 temperature=0.2,1.0]"
    run_dir, _, trainer = load_run(rest, usage)
    text = isinstance(trainer.task, CharLanguageModel)
    trained = f"{run_dir} trained {type(trainer.task).__name__}"
    kwargs = sample_options(own, trained, text)
    if text:
        trainer.task.show_progress = True  # a text is written a character at a time: a bar
    if "label" in own:
        if not isinstance(trainer.task, Labelled):
            raise DlpyError(f"dlpy sample: label= applies to model=cgan and acgan; {trained}")
        kwargs["labels"] = sample_labels(own["label"], class_names(trainer.data))
    trainer.task.eval()
    with torch.inference_mode():
        examples = trainer.task.examples(trainer.data, **kwargs)
    folder = run_dir / "samples"
    folder.mkdir(exist_ok=True)
    for key, value in examples.items():
        name = key.split("/")[-1]
        if key.startswith("text/"):
            (folder / f"{name}.txt").write_text(value, encoding="utf-8")
            print(f"--- {name.replace('_', ' ')} ---\n{value}\n")
        else:
            save_png(value, folder / f"{name}.png")
            print(folder / f"{name}.png")


def visualize_command(args: list[str]) -> None:
    """What a convnet sees (dlpy/visualize/): PNGs in <run dir>/visualize/ and the same images
    in TensorBoard."""
    usage = f"dlpy visualize <run dir> kind={'|'.join(visualize.KINDS)} [option=value ...]"
    names = {"kind"} | {key for kind in visualize.KINDS for key in visualize.options(kind)}
    own, rest = own_options(args, names)
    kind = own.pop("kind", None)
    if kind not in visualize.KINDS:
        if kind:
            raise DlpyError(unknown("kind", kind, visualize.KINDS))
        raise DlpyError(f"kind= is required; usage: {usage}")
    kwargs = visualize.typed(kind, own)
    if "weights" in kwargs:  # a torchvision network: the folder only receives the images
        if len(rest) != 1 or rest[0].startswith("-"):
            raise DlpyError(
                f"usage: dlpy visualize <output dir> kind={kind} weights=... (no run overrides)"
            )
        run_dir = Path(rest[0])
        data = None
        network = visualize.pretrained(kwargs.pop("weights"), resolve_device("auto"))
    else:
        run_dir, _, trainer = load_run(rest, usage)
        network = visualize.Network.of_run(trainer)
        data = trainer.data
    images = visualize.KINDS[kind](network, data, **kwargs)
    write_images(images, run_dir)


def write_images(images: dict[str, torch.Tensor], run_dir: Path) -> None:
    """uint8 (3, H, W) images as <run dir>/visualize/<name>.png and as visualize/<name> in the
    run's TensorBoard."""
    folder = run_dir / "visualize"
    folder.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(run_dir))
    for name, image in images.items():
        save_png(image, folder / f"{name}.png")
        writer.add_image(f"visualize/{name}", image, 0)
        print(folder / f"{name}.png")
    writer.close()


def lr_find_command(args: list[str]) -> None:
    """The learning-rate range test of a config (dlpy/lr_find.py)."""
    from dlpy import lr_find  # matplotlib and Hydra take a second to import: for this one only

    lr_find.lr_find_command(args)


def report_command(args: list[str]) -> None:
    if len(args) != 1 or args[0].startswith("-"):
        raise DlpyError("usage: dlpy report <sweep dir>")
    sweep = Path(args[0])
    print(write_report(sweep), end="")
    print(f"\nsaved: {sweep / 'report.csv'} (by configuration), {sweep / 'jobs.csv'} (every job)")


COMMANDS = {
    "eval": eval_command,
    "sample": sample_command,
    "visualize": visualize_command,
    "predict": predict_command,
    "export": export_command,
    "report": report_command,
    "lr_find": lr_find_command,
}

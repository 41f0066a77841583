"""`dlpy train|eval|sample|visualize|predict|export|report|list`: the command line.

Whatever goes wrong with the input, the user reads one line, `dlpy: error: ...`, naming the key,
override or file at fault, and the exit status is non-zero; tracebacks are for dlpy's own bugs.
This module stays light (no torch), so `dlpy --help` and a sweep's driver start at once; the
commands that read a run live in dlpy/commands.py.
"""

import os
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from dlpy import CONF_DIR, environ, groups, presets
from dlpy.errors import DlpyError, report, unknown
from dlpy.signals import handling, raise_interrupted

HYDRA_PRINTS = ("-h", "--help", "--hydra-help", "--version", "-sc", "--shell-completion")

USAGE = """usage: dlpy <command> [arguments]

commands:
  train [overrides]        train; Hydra overrides such as model=resnet optimizer.lr=1e-3
                           (dlpy train --help lists the config groups; -m runs a sweep)
  eval <run dir> [k=v]     evaluate a run's best checkpoint on the test split; an agent plays
                           episodes=20 (1 to 10000) greedy and sampled episodes; record=true
                           writes episode.gif;
                           several run dirs: each classifier and their ensemble (mean probability)
  sample <run dir> [n=64]  write the images of a run's best checkpoint (samples, reconstructions,
                           predictions; n up to 1024) as PNGs into <run dir>/samples/; for a
                           character model, print text: length=400 (up to 10000)
                           temperature=0.2,0.5,1.0,1.2
  visualize <run dir> kind=activations|filters|gradcam|deepdream|style_transfer [k=v]
                           what a convnet sees, as PNGs in <run dir>/visualize/ and in
                           TensorBoard: activations|filters [layer=a,b index=0], gradcam
                           [layer= index=0 n=16 target=<class>], deepdream image=FILE,
                           style_transfer image=FILE style=FILE; the last two also on
                           weights=vgg16|vgg19|inception_v3 (ImageNet)
  predict <run dir> <file|folder|glob> ... [topk=3] [gradcam=true]
                           a classifier's top classes for image files (text files for IMDB),
                           printed and saved in <run dir>/predictions/: predictions.csv and a
                           captioned grid, predictions.png (gradcam.png with gradcam=true)
  export <run dir> format=onnx|torchscript
                           an image classifier with its preprocessing as <run dir>/export/
                           model.onnx or model.torchscript (input: uint8 pixels NCHW), checked
                           against PyTorch on the test split (export.json)
  report <sweep dir>       every job's overrides and final metrics, mean and std over seeds,
                           best first; also saved as report.csv (by configuration) and jobs.csv
                           in the sweep folder
  summary [overrides]      the configured model, not trained: per-layer output shape, parameters
                           and MACs (torchinfo), trainable and frozen counts, the layers
                           dlpy visualize layer= takes; depth=3 levels of layers
  plot <run|sweep dir> [metric=loss]
                           learning curves as PNGs in <dir>/plots/: train against validation
                           (history.csv); a sweep: one curve per configuration, mean and 95%
                           interval over seeds
  lr_find [overrides] [min_lr=1e-7 max_lr=10 steps=100]
                           the learning-rate range test (Smith 2015) from the run's seeded start,
                           nothing of it kept: loss against rate as lr_find.png in
                           outputs/lr_find/<date>/<time>/, the suggested rate and its override
  list [name ...]          registered datasets, models, tasks, optimizers, schedulers, and presets;
                           with names, each builder's options: type, range and default
"""


COMMANDS = (
    "train",
    "eval",
    "sample",
    "visualize",
    "predict",
    "export",
    "report",
    "summary",
    "plot",
    "lr_find",
    "list",
)


def main(argv: list[str] | None = None) -> int:
    """`dlpy <command> ...`: the exit status (0, or the error's own status after one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command = argv[0]
    rest = argv[1:]
    try:
        if command not in COMMANDS:
            raise DlpyError(unknown("command", command, COMMANDS))
        if command == "train":
            train_command(rest)
        elif command == "summary":
            from dlpy.summary import summary_command  # heavy (torch, torchinfo)

            summary_command(rest)
        elif command == "plot":
            from dlpy.curves import plot_command  # heavy (matplotlib)

            plot_command(rest)
        elif command == "list":
            from dlpy import listing  # light: its cache spares torch's import

            listing.list_command(rest)
        else:
            from dlpy import commands  # heavy (torch): `dlpy train` and --help start without it

            # SIGTERM too ends a long evaluation with one line and 128 + the signal, as Ctrl-C
            with handling(raise_interrupted):
                commands.COMMANDS[command](rest)
        return 0
    except (Exception, KeyboardInterrupt) as err:
        if report(err) is None:
            raise  # a bug in dlpy: the traceback is for its authors
        line, status = report(err)
        print(line, file=sys.stderr)
        return status


def train_command(args: list[str]) -> None:
    """Hydra's run (or sweep, with -m) of dlpy/job.py, after dlpy's own checks of the arguments."""
    if "-h" in args or "--help" in args:
        print(train_help(args), end="")
        return
    # Hydra and its plugins take a while to import: `dlpy --help` and `dlpy list` do without them
    from dlpy import job, sweep

    check_flags(args)
    check_group_choices(args)
    sweep.check_plugins(args, CONF_DIR)
    multirun = "-m" in args or "--multirun" in args
    args += sweep.multirun_args(args) if multirun else run_dir_for_resume(args)
    if "RANK" in os.environ:  # torchrun's: those of rank > 0 leave no run folder of their own
        from dlpy.distributed import worker_args  # heavy (torch): needed under torchrun only

        args += worker_args(args)

    if not any(arg.lstrip("+~").startswith("hydra.mode") for arg in args):
        skip_mode_probe()
    sys.argv = ["dlpy train", *args]
    with handling(raise_interrupted), config_errors_in_one_line():
        job.main()
    if multirun:
        sweep.check_jobs()


def skip_mode_probe() -> None:
    """Hydra composes the whole config once only to read hydra.mode, then again to run it. No
    dlpy config sets hydra.mode, so the answer is the -m flag's, which Hydra takes itself when
    the probe returns None (hydra/_internal/utils.py, _run_app): a quarter second less start-up.
    """
    from hydra._internal.hydra import Hydra  # imported by job.main anyway

    Hydra.get_mode = lambda self, config_name, overrides: None


def train_help(args: list[str]) -> str:
    """`dlpy train --help`: the config groups with their presets, then the config the other
    arguments compose.

    Hydra's own --help lists the same, but builds a config repository for every option of every
    group, Hydra's own groups included: 2 s on 2 cores. This reads the presets from conf/ and
    composes once (`--hydra-help` still shows Hydra's flags).
    """
    from hydra import compose, initialize_config_dir  # Hydra's: for the help, not for dlpy -h
    from omegaconf import OmegaConf, open_dict

    check_group_choices(args)
    overrides = [arg for arg in args if not arg.startswith("-")]
    with config_errors_in_one_line(), initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides, return_hydra_config=True)
    header = cfg.hydra.help.header
    with open_dict(cfg):
        del cfg["hydra"]
    lines = [header, "", "== Config groups == (group=preset; dlpy list describes each)", ""]
    lines += [f"{group}: {', '.join(presets(group))}" for group in groups()]
    lines += ["", "== Config == (override anything: key=value, +new.key=value, ~key)", ""]
    lines += [OmegaConf.to_yaml(cfg), "Hydra's own flags: dlpy train --hydra-help", ""]
    return "\n".join(lines)


def check_flags(args: list[str]) -> None:
    """Hydra's command-line flags, parsed as Hydra parses them, but a mistake is one line
    instead of a usage screen."""
    from hydra._internal.utils import get_args_parser  # the parser hydra.main itself uses

    if any(arg in HYDRA_PRINTS for arg in args):
        return  # Hydra prints these itself
    parser = get_args_parser()

    def error(message: str) -> None:
        raise DlpyError(f"dlpy train: {message} (dlpy train --help lists the options)")

    parser.error = error
    parser.parse_args(args)


def config_errors_in_one_line() -> AbstractContextManager:
    """Hydra prints a malformed override or a missing key itself, on several lines, unless
    HYDRA_FULL_ERROR=1: with it set the error reaches `main`, which prints it on one line."""
    return environ("HYDRA_FULL_ERROR", "1")


def check_group_choices(args: list[str]) -> None:
    """`model=nosuch` fails here with the known presets and the closest match, before Hydra
    starts."""
    known = set(groups())
    for arg in args:
        key, sep, value = arg.lstrip("+~").partition("=")
        if sep and not key.partition("@")[0]:
            raise DlpyError(f"override {arg!r} names no key: write key=value")
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]  # several presets at once: logger=[tensorboard,mlflow]
        if not sep or key not in known or any(c in value for c in "()[]{}"):
            continue  # not a group choice, or a sweep function Hydra expands itself
        for choice in value.split(","):
            if choice not in presets(key) and choice != "null":
                raise DlpyError(
                    unknown(f"{key} preset", choice, presets(key)) + f" (conf/{key}/*.yaml)"
                )


def run_dir_for_resume(args: list[str]) -> list[str]:
    """A resumed run keeps writing into its own folder: trainer.resume=DIR sets hydra.run.dir=DIR.

    trainer.resume=auto stands for the newest run folder made by the same overrides, if any.
    """
    if any(a.startswith("hydra.run.dir=") for a in args):
        return []
    for arg in args:
        if arg == "trainer.resume=auto":
            from dlpy.sweep import earlier_output  # Hydra's: imported when training only

            earlier = earlier_output(args, multirun=False)
            if earlier:
                print(
                    f"trainer.resume=auto: continuing the run in {earlier.resolve()}",
                    file=sys.stderr,
                )
            return [f"hydra.run.dir='{earlier.resolve()}'"] if earlier else []
        if arg.startswith("trainer.resume="):
            path = Path(arg.partition("=")[2]).expanduser()
            if not path.exists():
                raise DlpyError(f"trainer.resume: {path} does not exist")
            run_dir = path if path.is_dir() else path.parent.parent  # <run>/checkpoints/last.pt
            return [f"hydra.run.dir='{run_dir.resolve()}'"]
    return []


if __name__ == "__main__":
    raise SystemExit(main())

"""`dlpy train|eval|sample|visualize|report|list`: the command line.

Whatever goes wrong with the input, the user reads one line, `dlpy: error: ...`, naming the key,
override or file at fault, and the exit status is non-zero; tracebacks are for dlpy's own bugs.
"""

import os
import sys
from pathlib import Path

from dlpy import CONF_DIR, environ
from dlpy.errors import DlpyError, report, unknown
from dlpy.signals import handling, raise_interrupted

USAGE = """usage: dlpy <command> [arguments]

commands:
  train [overrides]        train; Hydra overrides such as model=resnet optimizer.lr=1e-3
                           (dlpy train --help lists the config groups; -m runs a sweep)
  eval <run dir> [k=v]     evaluate a run's best checkpoint on the test split; an agent plays
                           episodes=20 greedy and sampled episodes; record=true writes episode.gif
  sample <run dir> [n=64]  write the images of a run's best checkpoint (samples, reconstructions,
                           predictions) as PNGs into <run dir>/samples/; for a character model,
                           print text: length=400 temperature=0.2,0.5,1.0,1.2
  visualize <run dir> kind=activations|filters|gradcam|deepdream|style_transfer [k=v]
                           what a convnet sees, as PNGs in <run dir>/visualize/ and in TensorBoard:
                           activations|filters [layer=a,b index=0], gradcam [layer= index=0 n=16
                           target=<class>], deepdream image=FILE, style_transfer image=FILE style=FILE;
                           the last two also on weights=vgg16|vgg19|inception_v3 (ImageNet)
  report <sweep dir>       every job's overrides and final metrics, mean and std over seeds, best first;
                           also saved as report.csv (by configuration) and jobs.csv in the sweep folder
  list                     registered datasets, models, tasks, optimizers, schedulers, and presets
"""


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    commands = {
        "train": train_command,
        "eval": eval_command,
        "sample": sample_command,
        "visualize": visualize_command,
        "report": report_command,
        "list": list_command,
    }
    command, rest = argv[0], argv[1:]
    try:
        if command not in commands:
            raise DlpyError(unknown("command", command, commands))
        return commands[command](rest) or 0
    except (Exception, KeyboardInterrupt) as err:
        if report(err) is None:
            raise  # a bug in dlpy: the traceback is for its authors
        line, status = report(err)
        print(line, file=sys.stderr)
        return status


def train_command(args):
    from dlpy import sweep

    check_flags(args)
    check_group_choices(args)
    sweep.check_plugins(args, CONF_DIR)
    multirun = "-m" in args or "--multirun" in args
    args += sweep.multirun_args(args) if multirun else run_dir_for_resume(args)
    if (
        "RANK" in os.environ
    ):  # a process of torchrun's: those of rank > 0 leave no run folder of their own
        from dlpy.distributed import worker_args

        args += worker_args(args)
    from dlpy import job  # light: torch is imported by the jobs themselves

    sys.argv = ["dlpy train", *args]
    with handling(raise_interrupted), config_errors_in_one_line():
        job.main()


def check_flags(args):
    """Hydra's command-line flags, parsed as Hydra parses them, but a mistake is one line instead of a usage screen."""
    from hydra._internal.utils import get_args_parser  # the parser hydra.main itself uses

    if any(
        arg in ("-h", "--help", "--hydra-help", "--version", "-sc", "--shell-completion")
        for arg in args
    ):
        return  # Hydra prints these itself
    parser = get_args_parser()

    def error(message):
        raise DlpyError(f"dlpy train: {message} (dlpy train --help lists the options)")

    parser.error = error
    parser.parse_args(args)


def config_errors_in_one_line():
    """Hydra prints a malformed override or a missing key itself, on several lines, unless HYDRA_FULL_ERROR=1:
    with it set the error reaches `main`, which prints it on one line."""
    return environ("HYDRA_FULL_ERROR", "1")


def presets(group):
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def check_group_choices(args):
    """`model=nosuch` fails here with the known presets and the closest match, before Hydra starts."""
    groups = {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()}
    for arg in args:
        key, sep, value = arg.lstrip("+~").partition("=")
        if sep and not key.partition("@")[0]:
            raise DlpyError(f"override {arg!r} names no key: write key=value")
        if not sep or key not in groups or any(c in value for c in "()[]{}"):
            continue  # not a group choice, or a sweep function Hydra expands itself
        for choice in value.split(","):
            if choice not in presets(key) and choice != "null":
                raise DlpyError(
                    unknown(f"{key} preset", choice, presets(key)) + f" (conf/{key}/*.yaml)"
                )


def run_dir_for_resume(args):
    """A resumed run keeps writing into its own folder: trainer.resume=DIR sets hydra.run.dir=DIR.

    trainer.resume=auto stands for the newest run folder made by the same overrides, if there is one.
    """
    if any(a.startswith("hydra.run.dir=") for a in args):
        return []
    for arg in args:
        if arg == "trainer.resume=auto":
            from dlpy.sweep import earlier_output

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


def load_run(args, usage):
    """A run folder's config (with key=value overrides) and a trainer holding its best weights."""
    if not args or args[0].startswith("-"):
        raise DlpyError(f"usage: {usage}")
    from omegaconf import OmegaConf

    from dlpy.io import load_checkpoint, resolve_checkpoint
    from dlpy.train import build_data, build_task
    from dlpy.trainer import Trainer

    run_dir = Path(args[0])
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise DlpyError(f"{config_file} not found: is {run_dir} a dlpy run folder?")
    cfg = OmegaConf.merge(OmegaConf.load(config_file), OmegaConf.from_dotlist(args[1:]))
    opts = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer = Trainer(
        device=opts["device"], precision=opts["precision"], channels_last=opts["channels_last"]
    )
    data = build_data(cfg).to(trainer.device)
    data.seed(cfg.seed)  # an agent then plays the episodes its run was evaluated on
    trainer.setup(build_task(cfg), data)
    checkpoint = resolve_checkpoint(run_dir, "best.pt")
    trainer.task.load_state_dict(load_checkpoint(checkpoint, trainer.device)["task"])
    return run_dir, cfg, trainer


def eval_command(args):
    """The best checkpoint on the test split; an agent plays `episodes` greedy and sampled episodes instead,
    and with record=true also writes one greedy episode to <run dir>/episode.gif."""
    own, rest = own_options(args, ("episodes", "record"))
    run_dir, _, trainer = load_run(
        rest, "dlpy eval <run dir> [key=value ...] (an agent also: episodes=20 record=true)"
    )
    task = trainer.task
    if own and not hasattr(task, "record"):
        raise DlpyError(
            f"dlpy eval: episodes= and record= apply to agents (model=reinforce); {run_dir} trained "
            f"{type(task).__name__}"
        )
    if "episodes" in own:
        if not own["episodes"].isdigit() or int(own["episodes"]) < 1:
            raise DlpyError(
                f"dlpy eval: episodes takes a positive whole number, got {own['episodes']!r}"
            )
        task.eval_episodes = int(own["episodes"])
    for key, value in trainer.test().items():
        print(f"{key:12s} {value:.4f}")
    if own.get("record", "false").lower() in ("true", "1", "yes"):
        frames = task.record(run_dir / "episode.gif")
        print(f"{run_dir / 'episode.gif'}  ({frames} frames)")


def own_options(args, names):
    """The command's own key=value options, apart from the config overrides of the run."""
    own, rest = {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in names:
            own[key] = value
        else:
            rest.append(arg)
    return own, rest


def sample_command(args):
    """The task's examples from the best checkpoint: images as PNGs, texts printed and saved, in <run dir>/samples/."""
    import inspect

    import torch

    from dlpy.plots import save_png

    own, rest = own_options(args, ("n", "length", "temperature"))
    run_dir, _, trainer = load_run(
        rest, "dlpy sample <run dir> [n=64 | length=400 temperature=0.2,0.5,1.0,1.2]"
    )
    text = "temperatures" in inspect.signature(trainer.task.examples).parameters
    kwargs = {} if text else {"n": 64}
    try:
        if "n" in own or "length" in own:
            kwargs["n"] = int(own.get("length", own.get("n")))
        if "temperature" in own:
            kwargs["temperatures"] = [float(t) for t in own["temperature"].split(",")]
    except ValueError as err:
        raise DlpyError(f"dlpy sample: n, length and temperature take numbers ({err})") from None
    if "temperatures" in kwargs and not text:
        raise DlpyError(
            f"dlpy sample: temperature= applies to text models; {run_dir} trained "
            f"{type(trainer.task).__name__}"
        )
    trainer.task.eval()
    with torch.inference_mode():
        examples = trainer.task.examples(trainer.data, **kwargs)
    (run_dir / "samples").mkdir(exist_ok=True)
    for key, value in examples.items():
        name = key.split("/")[-1]
        if key.startswith("text/"):
            (run_dir / "samples" / f"{name}.txt").write_text(value, encoding="utf-8")
            print(f"--- {name.replace('_', ' ')} ---\n{value}\n")
        else:
            save_png(value, run_dir / "samples" / f"{name}.png")
            print(run_dir / "samples" / f"{name}.png")


def visualize_command(args):
    """What a convnet sees (dlpy/visualize.py): PNGs in <run dir>/visualize/ and the same images in TensorBoard."""
    from dlpy import visualize

    usage = f"dlpy visualize <run dir> kind={'|'.join(visualize.KINDS)} [option=value ...]"
    own, rest = own_options(
        args, {"kind"} | {key for kind in visualize.KINDS for key in visualize.options(kind)}
    )
    kind = own.pop("kind", None)
    if kind not in visualize.KINDS:
        raise DlpyError(
            unknown("kind", kind, visualize.KINDS) if kind else f"kind= is required; usage: {usage}"
        )
    kwargs = visualize.typed(kind, own)
    if "weights" in kwargs:  # a torchvision network: the folder only receives the images
        if len(rest) != 1 or rest[0].startswith("-"):
            raise DlpyError(
                f"usage: dlpy visualize <output dir> kind={kind} weights=... (no run overrides)"
            )
        from dlpy.trainer import resolve_device

        run_dir, data = Path(rest[0]), None
        network = visualize.pretrained(kwargs.pop("weights"), resolve_device("auto"))
    else:
        run_dir, _, trainer = load_run(rest, usage)
        network, data = visualize.Network.of_run(trainer), trainer.data
    images = visualize.KINDS[kind](network, data, **kwargs)
    write_images(images, run_dir)


def write_images(images, run_dir):
    """uint8 (3, H, W) images as <run dir>/visualize/<name>.png and as visualize/<name> in the run's TensorBoard."""
    from torch.utils.tensorboard import SummaryWriter

    from dlpy.plots import save_png

    (run_dir / "visualize").mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(run_dir))
    for name, image in images.items():
        save_png(image, run_dir / "visualize" / f"{name}.png")
        writer.add_image(f"visualize/{name}", image, 0)
        print(run_dir / "visualize" / f"{name}.png")
    writer.close()


def report_command(args):
    from dlpy.report import write_report

    if len(args) != 1 or args[0].startswith("-"):
        raise DlpyError("usage: dlpy report <sweep dir>")
    print(write_report(args[0]), end="")
    print(
        f"\nsaved: {Path(args[0]) / 'report.csv'} (by configuration), {Path(args[0]) / 'jobs.csv'} (every job)"
    )


def list_command(args):
    from dlpy.registry import ALL

    for registry in ALL:
        print(f"{registry.kind}s:")
        for name, description in registry.items():
            print(f"  {name:16s} {description}")
    print("\nconfig presets (dlpy train <group>=<preset>):")
    for group in sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()):
        print(f"  {group}:")
        for name in presets(group):
            text = (Path(CONF_DIR) / group / f"{name}.yaml").read_text()
            comments = [
                line
                for line in text.splitlines()
                if line.startswith("#") and not line.startswith("# @")
            ]
            about = comments[0].lstrip("# ") if comments else ""
            print(f"    {name:22s} {about}")


if __name__ == "__main__":
    raise SystemExit(main())

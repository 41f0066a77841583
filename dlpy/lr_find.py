"""`dlpy lr_find <overrides>`: the learning-rate range test (dlpy/range_test.py) of the config
the overrides compose, from the start `dlpy train` with them would make (same seed, so the same
weights, data order and optimizer); its plot, its suggested rate and the override that sets it.
"""

import math
import time
from pathlib import Path

from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from dlpy import CONF_DIR
from dlpy.build import build_data, build_task, resolved
from dlpy.checkpointing import seed_everything
from dlpy.cli import check_group_choices, config_errors_in_one_line
from dlpy.data.env import EnvData
from dlpy.errors import DlpyError, check_number
from dlpy.figures import new_figure, save_figure
from dlpy.io import atomic_write, save_json
from dlpy.range_test import Curve, Options, RangeTrainer, minimum, range_test, steepest, suggestion
from dlpy.runs import own_options
from dlpy.shapes import check_sizes, probe
from dlpy.train import check_seed

USAGE = (
    "dlpy lr_find [overrides] [min_lr=1e-7 max_lr=10 steps=100 stop_factor=4 beta=0.98 "
    "suggest=steepest|minimum]"
)
MAX_STEPS = 100_000
TRAINER_KEYS = ("device", "precision", "grad_clip", "channels_last", "deterministic", "threads")


def parse_options(own: dict[str, str]) -> Options:
    """The command's own options, checked: one line names the one at fault."""
    options = Options()
    for key, value in own.items():
        kind = type(getattr(options, key))
        try:
            setattr(options, key, kind(value))
        except ValueError:
            raise DlpyError(f"dlpy lr_find: {key} takes {kind.__name__}, got {value!r}") from None
    check_number("min_lr", options.min_lr, at_least=1e-30)
    check_number("max_lr", options.max_lr, at_least=options.min_lr * (1 + 1e-9))
    # fastai's range test takes 100 steps; past MAX_STEPS the rate grows by under 0.02% a step
    # from 1e-7 to 10, and a mistyped count would run for hours before it said anything
    check_number("steps", options.steps, at_least=2, at_most=MAX_STEPS, integer=True)
    check_number("stop_factor", options.stop_factor, at_least=1)
    if not 0 <= options.beta < 1:
        raise DlpyError(f"beta must be in [0, 1), got {options.beta!r}")
    if options.suggest not in ("steepest", "minimum"):
        raise DlpyError(f"suggest must be steepest or minimum, got {options.suggest!r}")
    return options


def compose_config(overrides: list[str]) -> DictConfig:
    """The training config the overrides compose, as `dlpy train` composes it."""
    from hydra import compose, initialize_config_dir  # Hydra's: imported for this command only

    check_group_choices(overrides)
    with config_errors_in_one_line(), initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides)


def prepare(cfg: DictConfig) -> RangeTrainer:
    """Trainer, data and task as `dlpy train` builds them, in its order and from its seed, with
    the task's optimizer; agents and tasks of several optimizers are refused."""
    if cfg.trainer.strategy != "single":
        raise DlpyError("dlpy lr_find runs in one process: leave trainer.strategy=single")
    check_seed(cfg.seed)
    seed_everything(cfg.seed)
    opts = resolved(cfg.trainer, "trainer")
    trainer = RangeTrainer(**{key: opts[key] for key in TRAINER_KEYS})
    data = build_data(cfg).to(trainer.device)
    if isinstance(data, EnvData):
        raise DlpyError(
            f"dlpy lr_find: {data.id} is an environment: an agent's steps play its episodes, "
            "and the range test needs a loss on batches of data"
        )
    data.seed(cfg.seed)
    check_sizes(cfg, data)
    task = build_task(cfg)
    probe(task, cfg, data)
    trainer.setup(task, data)
    trainer.optimizers = trainer.task.configure_optimizers()
    trainer.schedulers = [None] * len(trainer.optimizers)  # the test sets the rate itself
    if len(trainer.optimizers) != 1:
        raise DlpyError(
            f"dlpy lr_find: {type(trainer.task).__name__} (model.task.name="
            f"{cfg.model.task.name}) steps {len(trainer.optimizers)} optimizers; the range test "
            "sweeps the rate of one"
        )
    return trainer


def plot(curve: Curve, rate: float, method: str, options: Options) -> Figure:
    """Loss against learning rate (log x), the suggestion marked."""
    figure = new_figure(8, 5)
    ax = figure.add_subplot()
    ax.plot(curve.lrs, curve.losses, color="0.7", linewidth=1, label="loss")
    ax.plot(curve.lrs, curve.smoothed, color="tab:blue", label=f"smoothed (beta {options.beta})")
    ax.set_xscale("log")
    at = min(range(len(curve.lrs)), key=lambda i: abs(math.log(curve.lrs[i] / rate)))
    ax.axvline(rate, color="tab:red", linestyle="--", linewidth=1)
    ax.plot([rate], [curve.smoothed[at]], "o", color="tab:red", label=f"suggested {rate:.2g}")
    if rate != (tenth := minimum(curve)):
        ax.axvline(tenth, color="tab:orange", linestyle=":", label=f"fastai's minimum {tenth:.2g}")
    finite = [v for v in curve.smoothed if math.isfinite(v)]
    low = min(finite + [v for v in curve.losses if math.isfinite(v)])
    ax.set_ylim(low * 0.95, max(finite[0], options.stop_factor * min(finite)) * 1.05)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(f"learning-rate range test; suggested: {method}", fontsize=9)
    ax.legend()
    return figure


def write_csv(curve: Curve, path: Path) -> None:
    lines = ["step,lr,loss,smoothed"]
    for i, row in enumerate(zip(curve.lrs, curve.losses, curve.smoothed, strict=True)):
        lines.append(f"{i}," + ",".join(f"{value:.6g}" for value in row))
    atomic_write(path, lambda f: f.write(("\n".join(lines) + "\n").encode()))


def output_folder(args: list[str]) -> tuple[Path, list[str]]:
    """hydra.run.dir=DIR if given, else outputs/lr_find/<date>/<time>; and the other args."""
    for arg in args:
        if arg.startswith("hydra.run.dir="):
            return Path(arg.partition("=")[2]), [a for a in args if a != arg]
    return Path("outputs", "lr_find", time.strftime("%Y-%m-%d"), time.strftime("%H-%M-%S")), args


def lr_find_command(args: list[str]) -> None:
    """The range test of the composed config; prints the suggestion and the override to use."""
    if "-h" in args or "--help" in args:
        print(f"usage: {USAGE}\n(docs/lr_find.md; the overrides are those of dlpy train --help)")
        return
    if any(arg.startswith("-") for arg in args):
        raise DlpyError(f"dlpy lr_find takes overrides, not flags; usage: {USAGE}")
    own, rest = own_options(args, tuple(Options.__dataclass_fields__))
    options = parse_options(own)
    folder, overrides = output_folder(rest)
    cfg = compose_config(overrides)
    lr = cfg.optimizer.get("lr")
    check_number("optimizer.lr", lr, at_least=1e-30)
    trainer = prepare(cfg)
    print(
        f"lr_find: {cfg.model.name} on {cfg.dataset.name}, {cfg.optimizer.name}, up to "
        f"{options.steps} steps from lr {options.min_lr:g} to {options.max_lr:g}",
        flush=True,
    )
    curve = range_test(trainer, options, lr)
    rate, method = suggestion(curve, options.suggest)
    ended = f"stopped at step {len(curve.lrs)}: {curve.stopped}" if curve.stopped else "all steps"
    print(f"{len(curve.lrs)} steps ({ended})")
    print(f"suggested learning rate: {rate:.2g}, the {method}")
    if options.suggest == "steepest" and steepest(curve) is not None:
        print(f"fastai's minimum (a tenth of the rate of lowest loss): {minimum(curve):.2g}")
    override = f"optimizer.lr={rate:.2g}"
    print(f"train with: dlpy train {' '.join([*overrides, override])}")
    write_csv(curve, folder / "lr_find.csv")
    save_figure(plot(curve, rate, method, options), folder / "lr_find.png")
    save_json({"lr": rate, "method": method, "override": override}, folder / "suggestion.json")
    atomic_write(
        folder / "config.yaml", lambda f: f.write(OmegaConf.to_yaml(cfg, resolve=True).encode())
    )
    print(f"saved: {folder / 'lr_find.png'}, lr_find.csv, suggestion.json, config.yaml")

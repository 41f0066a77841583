"""The recipe: compose config -> build data, model, task, trainer -> fit -> test -> metrics.json."""

import inspect
import json
import logging
import sys
import time
from functools import partial
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationKeyError, MissingMandatoryValue

from dlpy import CONF_DIR, STARTED, callbacks, distributed
from dlpy.errors import Diverged, DlpyError, Interrupted, first_line, report
from dlpy.io import check_output_folder, save_json
from dlpy.registry import (
    CALLBACKS,
    DATASETS,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    TASKS,
    check_kwargs,
    check_signs,
)
from dlpy.trainer import Trainer, seed_everything

log = logging.getLogger("dlpy")


def train(cfg, run_dir):
    """One run, or one run per fold; the monitored metric (the objective of a sweep) is returned."""
    return fit_and_test(cfg, run_dir).get(cfg.trainer.monitor)


def fit_and_test(cfg, run_dir):
    """The run's metrics, as metrics.json holds them (every process of a data-parallel run returns them)."""
    # trainer.resume=auto: skip a finished run, continue an unfinished one from its last checkpoint
    if cfg.trainer.resume == "auto" and (done := finished_metrics(run_dir)):
        log.info("trainer.resume=auto: %s has finished, skipping it", run_dir)
        return done
    if cfg.dataset.get("folds") and "fold" in cfg.dataset and cfg.dataset.fold is None:
        return cross_validate(cfg, run_dir)  # each fold decides for itself in its own folder
    if cfg.trainer.resume == "auto":
        last = Path(run_dir) / "checkpoints" / "last.pt"
        cfg.trainer.resume = (
            str(last) if last.is_file() else None
        )  # None: it never saved one, start afresh
    start = time.perf_counter()
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed < 2**32:
        raise DlpyError(
            f"seed must be a whole number in [0, 2**32) (numpy's range), got {cfg.seed!r}"
        )
    seed_everything(cfg.seed)
    trainer = build_trainer(cfg, run_dir)
    data = build_data(cfg).to(trainer.device)
    data.seed(cfg.seed)
    task = build_task(cfg)
    # last.pt, best.pt and the temporary copy of one of them while it is replaced, each with the weights
    # and up to two optimizer moments per weight (Adam): a full disk fails now, not after an epoch
    weights = sum(t.numel() * t.element_size() for t in task.state_dict().values())
    check_output_folder(run_dir, need=3 * 3 * weights)

    try:
        trainer.fit(task, data)
    except (Interrupted, Diverged) as stop:
        if not (
            isinstance(stop, Interrupted) and stop.step is None
        ):  # None: a signal before the loop saved nothing
            stop.args = (f"{stop}; {what_is_kept(stop, run_dir)}",)
        raise
    metrics = trainer.test(checkpoint=Path(run_dir) / "checkpoints" / "best.pt")

    metrics |= {
        "time/total_s": time.perf_counter() - start,
        "time/train_s": trainer.train_time,
        "train/samples_per_s": trainer.train_samples / max(trainer.train_time, 1e-9),
        "time/startup_s": (trainer.first_step_at or time.time()) - STARTED,
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "nan_skipped": trainer.nan_skipped,
        "status": "finished",
    } | task.summary()
    if trainer.is_main:  # data-parallel runs: rank 0 writes
        save_json(metrics, Path(run_dir) / "metrics.json")
    log.info(
        "test: %s",
        "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("test/", "eval/"))),
    )
    log.info("run folder: %s", run_dir)
    return metrics


def what_is_kept(stop, run_dir):
    """For a run that stopped early: what its checkpoint holds, and how to go on."""
    last = Path(run_dir) / "checkpoints" / "last.pt"
    if isinstance(stop, Interrupted):
        return f"checkpoint saved to {last}; resume with: dlpy train trainer.resume={run_dir}"
    return (
        f"the last good checkpoint is {last}"
        if last.is_file()
        else "no checkpoint had been saved yet"
    )


def cross_validate(cfg, run_dir):
    """K-fold validation (Chollet 3.6): one run per fold in <run>/fold<k>/, then the mean of their numbers.

    Each fold is a whole run with dataset.fold=k, so a fold can also be trained alone or swept with -m.
    """
    start, runs = time.perf_counter(), []
    for k in range(cfg.dataset.folds):
        fold_cfg = cfg.copy()
        fold_cfg.dataset.fold = k
        log.info("fold %d of %d", k + 1, cfg.dataset.folds)
        runs.append(
            fit_and_test(fold_cfg, Path(run_dir) / f"fold{k}")
        )  # not read back: only rank 0 writes files
    scores = [
        key
        for key, value in runs[0].items()
        if key.startswith(("val/", "test/")) and isinstance(value, float)
    ]
    metrics = {key: sum(run[key] for run in runs) / len(runs) for key in scores}
    metrics |= {
        f"fold{k}/{key}": run[key]
        for k, run in enumerate(runs)
        for key in scores
        if key.startswith("val/")
    }
    metrics |= {
        "folds": len(runs),
        "time/total_s": time.perf_counter() - start,
        "status": "finished",
    }
    if distributed.rank() == 0:
        save_json(metrics, Path(run_dir) / "metrics.json")
    log.info("%d-fold means: %s", len(runs), "  ".join(f"{k} {metrics[k]:.4f}" for k in scores))
    return metrics


def finished_metrics(run_dir):
    """The metrics of a run that finished, else None (failed, interrupted, or never started).

    A diverged run counts as finished: resumed from its last good checkpoint it would diverge again.
    """
    metrics = read_metrics(run_dir)
    return metrics if metrics.get("status") in ("finished", "diverged") else None


def read_metrics(run_dir):
    """A run folder's metrics.json; {} when there is none or it cannot be read (a run killed before writing it)."""
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def resolved(node, key=None):
    """A config node as plain containers; a value left to give, or one that refers to nothing, names its key."""
    where = f"{key}." if key else ""
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise DlpyError(
            f"{where}{err.full_key} is required: set it on the command line ({where}{err.full_key}=...)"
        ) from None
    except InterpolationKeyError as err:
        raise DlpyError(
            f"{where}{err.full_key}: {str(err).splitlines()[0]}; does the model fit the dataset "
            "(dlpy list shows both)?"
        ) from None


def options(node, key):
    """A config node's builder name and the rest as keyword arguments."""
    kwargs = resolved(node, key)
    if "name" not in kwargs:
        raise DlpyError(f"{key}.name is missing: it names the builder to use")
    return kwargs.pop("name"), kwargs


def build_data(cfg):
    name, kwargs = options(cfg.dataset, "dataset")
    return DATASETS.build(name, key="dataset", **kwargs)


def build_task(cfg):
    name, kwargs = options(cfg.model, "model")
    task_name, task_kwargs = options(OmegaConf.create(kwargs.pop("task")), "model.task")
    net = MODELS.build(name, key="model", **kwargs)
    return TASKS.build(
        task_name, net, key="model.task", optimizer=optimizer_factory(cfg), **task_kwargs
    )


def optimizer_factory(cfg):
    """A function of the parameters: the task decides which parameters each optimizer gets."""
    name, kwargs = options(cfg.optimizer, "optimizer")
    check_kwargs(
        OPTIMIZERS.get(name, "optimizer"), kwargs, f"optimizer ({name!r})", key="optimizer"
    )
    if not isinstance(kwargs.get("lr"), (int, float)) or kwargs["lr"] < 0:
        raise DlpyError(f"optimizer.lr must be a number >= 0, got {kwargs.get('lr')!r}")
    factory = partial(OPTIMIZERS.get(name), **kwargs)
    trial(lambda: factory([torch.zeros(1, requires_grad=True)]), "optimizer", name, kwargs)
    check_signs(OPTIMIZERS.get(name), kwargs, "optimizer")
    return factory


def scheduler_factory(cfg):
    name, kwargs = options(cfg.scheduler, "scheduler")
    check_kwargs(
        SCHEDULERS.get(name, "scheduler"), kwargs, f"scheduler ({name!r})", key="scheduler"
    )
    factory = partial(SCHEDULERS.get(name), **kwargs)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    trial(
        lambda: factory(optimizer, total_steps=100, steps_per_epoch=10), "scheduler", name, kwargs
    )
    check_signs(SCHEDULERS.get(name), kwargs, "scheduler")
    return factory


def trial(build, key, name, kwargs):
    """Build once on a stand-in parameter, so options torch refuses fail now, not when training starts."""
    try:
        build()
    except (
        TypeError,
        ValueError,
        LookupError,
        RuntimeError,
    ) as err:  # torch's message may not name the option
        given = ", ".join(f"{key}.{k}={v!r}" for k, v in kwargs.items())
        raise DlpyError(
            f"{key} ({name!r}) cannot be built from {given}: {first_line(err)}"
        ) from None


def build_trainer(cfg, run_dir):
    """The trainer of cfg.trainer, with the callbacks of cfg.callbacks."""
    opts = OmegaConf.to_container(cfg.trainer, resolve=True)
    config = resolved(cfg)
    cbs = build_callbacks(config.get("callbacks"), run_dir, hparams=flatten(config))
    check_kwargs(Trainer, opts, "trainer", key="trainer")
    return Trainer(**opts, scheduler=scheduler_factory(cfg), callbacks=cbs, config=config)


def build_callbacks(entries, run_dir, hparams):
    """The callbacks of the config's `callbacks` group (resolved), built through CALLBACKS.

    A builder that takes `run_dir` (a str) or `hparams` (the flat config) gets them from dlpy, not
    from the config. Checkpoint runs last wherever its entry stands: it saves the others' state.
    """
    given = {"run_dir": str(run_dir), "hparams": hparams}
    built = []
    for entry, value in (entries or {}).items():
        key = f"callbacks.{entry}"
        if value is None:
            continue  # `callbacks.<entry>: null` turns one off where `~` cannot: in a preset
        if not isinstance(value, dict):
            raise DlpyError(f"{key} must be a mapping such as {{name: {entry}}}, got {value!r}")
        if "name" not in value:
            raise DlpyError(f"{key}.name is missing: it names the callback (dlpy list shows them)")
        kwargs = dict(value)
        name = kwargs.pop("name")
        if clash := sorted(given.keys() & kwargs.keys()):
            raise DlpyError(f"{key}.{clash[0]} is dlpy's to give (the run), not the config's")
        takes = inspect.signature(CALLBACKS.get(name, key)).parameters
        callback = CALLBACKS.build(
            name, key=key, **kwargs, **{k: v for k, v in given.items() if k in takes}
        )
        if callback is not None:  # None: off with these options (early stopping at patience 0)
            built.append(callback)
    return sorted(built, key=lambda callback: isinstance(callback, callbacks.Checkpoint))


def flatten(config, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become strings (TensorBoard hparams take scalars)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = (
                value if isinstance(value, (int, float, str, bool)) else str(value)
            )
    return flat


def record_failure(run_dir, err):
    """A run that did not finish says so in metrics.json (keeping what it had measured), so it never looks finished.

    Its status is the error's own (interrupted by a signal, diverged on a NaN loss), else failed.
    """
    path = Path(run_dir) / "metrics.json"
    if distributed.rank() > 0:  # data-parallel runs: rank 0 writes
        return (str(err).splitlines() or [""])[0]
    metrics = read_metrics(run_dir)
    reason = (str(err).splitlines() or [""])[0] or type(err).__name__
    error = (
        reason
        if isinstance(err, (DlpyError, KeyboardInterrupt))
        else f"{type(err).__name__}: {reason}"
    )
    status = getattr(
        err, "status", "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
    )
    try:
        save_json(metrics | {"status": status, "error": error}, path)
    except OSError as write_error:  # the folder itself is what failed: the message says so already
        log.error("cannot record the failure in %s: %s", path, write_error)
    return error


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg):
    """Hydra's entry point, called by `dlpy train` (dlpy.cli): an error is recorded and printed on one line."""
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        return train(cfg, run_dir)
    except (Exception, KeyboardInterrupt) as err:
        if not isinstance(
            err, (Interrupted, Diverged)
        ):  # those two, every process of a ddp run stops at together
            distributed.leave_at_once()
        error = record_failure(run_dir, err)
        if HydraConfig.get().mode == RunMode.MULTIRUN and not isinstance(err, KeyboardInterrupt):
            # One broken job must not sink a sweep: it is recorded as failed and the launcher goes on.
            # Ctrl-C or SIGTERM stops the whole sweep, though.
            log.error(
                "job %s: %s (run folder %s); the sweep goes on",
                getattr(err, "status", "failed"),
                error,
                run_dir,
            )
            return float("nan")
        if isinstance(err, KeyboardInterrupt) or report(err) is None:
            raise  # Hydra lets a signal through to dlpy.cli; a bug shows its traceback
        # printed here: an exception would make Hydra print "Error executing job" before it
        line, status = report(err)
        print(line, file=sys.stderr)
        raise SystemExit(status) from None

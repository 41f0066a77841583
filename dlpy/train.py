"""The recipe: compose config -> build data, model, task, trainer -> fit -> test -> metrics.json."""
import json
import logging
import sys
import time
from functools import partial
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationKeyError, MissingMandatoryValue

from dlpy import CONF_DIR, STARTED, callbacks
from dlpy.errors import DlpyError
from dlpy.io import save_json
from dlpy.registry import DATASETS, MODELS, OPTIMIZERS, SCHEDULERS, TASKS, check_kwargs
from dlpy.trainer import Trainer, seed_everything

log = logging.getLogger("dlpy")


def train(cfg, run_dir):
    # trainer.resume=auto: skip a finished run, continue an unfinished one from its last checkpoint
    if cfg.trainer.resume == "auto" and (done := finished_metrics(run_dir)):
        log.info("trainer.resume=auto: %s has finished, skipping it", run_dir)
        return done.get(cfg.trainer.monitor)
    if cfg.dataset.get("folds") and "fold" in cfg.dataset and cfg.dataset.fold is None:
        return cross_validate(cfg, run_dir)  # each fold decides for itself in its own folder
    if cfg.trainer.resume == "auto":
        last = Path(run_dir) / "checkpoints" / "last.pt"
        cfg.trainer.resume = str(last) if last.is_file() else None  # None: it never saved one, start afresh
    start = time.perf_counter()
    seed_everything(cfg.seed)
    trainer = build_trainer(cfg, run_dir)
    data = build_data(cfg).to(trainer.device)
    data.seed(cfg.seed)
    task = build_task(cfg)

    trainer.fit(task, data)
    metrics = trainer.test(checkpoint=Path(run_dir) / "checkpoints" / "best.pt")

    metrics |= {"time/total_s": time.perf_counter() - start, "time/train_s": trainer.train_time,
                "train/samples_per_s": trainer.train_samples / max(trainer.train_time, 1e-9),
                "time/startup_s": (trainer.first_step_at or time.time()) - STARTED,
                "epochs": trainer.epoch, "steps": trainer.step, "status": "finished"} | task.summary()
    if trainer.is_main:  # data-parallel runs: rank 0 writes
        save_json(metrics, Path(run_dir) / "metrics.json")
    log.info("test: %s", "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("test/", "eval/"))))
    log.info("run folder: %s", run_dir)
    return metrics.get(cfg.trainer.monitor)


def cross_validate(cfg, run_dir):
    """K-fold validation (Chollet 3.6): one run per fold in <run>/fold<k>/, then the mean of their numbers.

    Each fold is a whole run with dataset.fold=k, so a fold can also be trained alone or swept with -m.
    """
    start, runs = time.perf_counter(), []
    for k in range(cfg.dataset.folds):
        fold_cfg = cfg.copy()
        fold_cfg.dataset.fold = k
        log.info("fold %d of %d", k + 1, cfg.dataset.folds)
        train(fold_cfg, Path(run_dir) / f"fold{k}")
        runs.append(json.loads((Path(run_dir) / f"fold{k}" / "metrics.json").read_text()))
    scores = [key for key, value in runs[0].items() if key.startswith(("val/", "test/")) and isinstance(value, float)]
    metrics = {key: sum(run[key] for run in runs) / len(runs) for key in scores}
    metrics |= {f"fold{k}/{key}": run[key] for k, run in enumerate(runs) for key in scores if key.startswith("val/")}
    metrics |= {"folds": len(runs), "time/total_s": time.perf_counter() - start, "status": "finished"}
    save_json(metrics, Path(run_dir) / "metrics.json")
    log.info("%d-fold means: %s", len(runs), "  ".join(f"{k} {metrics[k]:.4f}" for k in scores))
    return metrics.get(cfg.trainer.monitor)


def finished_metrics(run_dir):
    """The metrics of a run that finished, else None (failed, interrupted, or never started)."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return None
    return metrics if metrics.get("status") == "finished" else None


def resolved(node, key=None):
    """A config node as plain containers; a value left to give, or one that refers to nothing, names its key."""
    where = f"{key}." if key else ""
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise DlpyError(f"{where}{err.full_key} is required: set it on the command line ({where}{err.full_key}=...)") from None
    except InterpolationKeyError as err:
        raise DlpyError(f"{where}{err.full_key}: {str(err).splitlines()[0]}; does the model fit the dataset "
                        "(dlpy list shows both)?") from None


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
    return TASKS.build(task_name, net, key="model.task", optimizer=optimizer_factory(cfg), **task_kwargs)


def optimizer_factory(cfg):
    """A function of the parameters: the task decides which parameters each optimizer gets."""
    name, kwargs = options(cfg.optimizer, "optimizer")
    check_kwargs(OPTIMIZERS.get(name), kwargs, f"optimizer ({name!r})")
    if not isinstance(kwargs.get("lr"), (int, float)) or kwargs["lr"] < 0:
        raise DlpyError(f"optimizer.lr must be a number >= 0, got {kwargs.get('lr')!r}")
    return partial(OPTIMIZERS.get(name), **kwargs)


def scheduler_factory(cfg):
    name, kwargs = options(cfg.scheduler, "scheduler")
    check_kwargs(SCHEDULERS.get(name), kwargs, f"scheduler ({name!r})")
    return partial(SCHEDULERS.get(name), **kwargs)


def build_trainer(cfg, run_dir):
    opts = OmegaConf.to_container(cfg.trainer, resolve=True)
    patience, progress = opts.pop("early_stopping_patience", 0), opts.pop("progress_bar", True)
    config = resolved(cfg)
    cbs = [callbacks.ProgressBar(enabled=progress), callbacks.TensorBoard(run_dir, hparams=flatten(config)),
           callbacks.ImageFiles(run_dir)]
    cbs += [callbacks.EarlyStopping(patience)] if patience else []
    cbs.append(callbacks.Checkpoint(run_dir))  # last: the checkpoint holds the other callbacks' state
    check_kwargs(Trainer, opts, "trainer")
    return Trainer(**opts, scheduler=scheduler_factory(cfg), callbacks=cbs, config=config)


def flatten(config, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become strings (TensorBoard hparams take scalars)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def record_failure(run_dir, err):
    """A run that failed says so in metrics.json (keeping what it had measured), so it never looks finished."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        metrics = {}
    reason = (str(err).splitlines() or [""])[0]
    error = reason if isinstance(err, DlpyError) else f"{type(err).__name__}: {reason}"
    save_json(metrics | {"status": "failed", "error": error}, path)
    return error


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg):
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        return train(cfg, run_dir)
    except Exception as err:
        error = record_failure(run_dir, err)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # One broken job must not sink a sweep: it is recorded as failed and the launcher goes on.
            log.error("job failed: %s (run folder %s); the sweep goes on", error, run_dir)
            return float("nan")
        if not isinstance(err, DlpyError):
            raise
        print(f"dlpy: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None

"""The recipe: compose config -> build data, model, task, trainer -> fit -> test -> metrics.json.

The model is checked against the data between the builds: its sizes against the data's, then one
rehearsed step (dlpy/shapes.py).

dlpy/job.py is Hydra's entry point; it calls `run` once per job (a run, or a job of a sweep).
"""

import logging
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from dlpy import STARTED, distributed
from dlpy.build import build_data, build_task, build_trainer, check_config
from dlpy.checkpointing import seed_everything
from dlpy.data.base import DataSet
from dlpy.errors import Diverged, DlpyError, Interrupted, first_line, report
from dlpy.io import check_output_folder, save_json
from dlpy.precision import native_bf16
from dlpy.run_folder import (
    FolderRefused,
    Metrics,
    claim,
    finished_metrics,
    read_metrics,
    record_config,
)
from dlpy.shapes import check_sizes, probe
from dlpy.summary import example_inputs, log_summary
from dlpy.tasks.base import Task
from dlpy.trainer import Trainer

log = logging.getLogger("dlpy")


def train(cfg: DictConfig, run_dir: str | Path) -> float | None:
    """One run, or one run per fold; the monitored metric (the objective of a sweep) is returned."""
    return fit_and_test(cfg, run_dir).get(cfg.trainer.monitor)


def fit_and_test(cfg: DictConfig, run_dir: str | Path) -> Metrics:
    """The run's metrics, as metrics.json holds them (every process of a data-parallel run
    returns them)."""
    check_config(cfg)  # every option against its declared range, before anything is built
    # trainer.resume=auto: skip a finished run, continue an unfinished one from its last checkpoint
    if cfg.trainer.resume == "auto" and (done := finished_metrics(run_dir)):
        log.info("trainer.resume=auto: %s has finished, skipping it", run_dir)
        return done
    if cfg.dataset.get("folds") and "fold" in cfg.dataset and cfg.dataset.fold is None:
        return cross_validate(cfg, run_dir)  # each fold decides for itself in its own folder
    if cfg.trainer.resume == "auto":
        last = Path(run_dir) / "checkpoints" / "last.pt"
        cfg.trainer.resume = str(last) if last.is_file() else None  # None: start afresh
    start = job_start()
    check_seed(cfg.seed)
    seed_everything(cfg.seed)
    trainer = build_trainer(cfg, run_dir)
    if trainer.is_main:
        announce(cfg, trainer, run_dir)
    data = build_data(cfg).to(trainer.device)
    data.seed(cfg.seed)
    check_sizes(cfg, data)  # the model's sizes are the data's, before a model is built of them
    task = build_task(cfg)
    probe(task, cfg, data)  # one step's forward pass and loss on a few samples, kept from the run
    sizes = model_summary(task, cfg, data) if trainer.is_main else {}
    check_output_folder(run_dir, need=checkpoint_bytes(task, averaged=bool(cfg.trainer.ema)))
    try:
        trainer.fit(task, data)
    except (Interrupted, Diverged) as stop:
        if trainer.is_main:  # data-parallel runs: rank 0 saves, and knows what it saved
            stop.args = (f"{stop}; {what_is_kept(stop, run_dir)}",)
        raise
    metrics = trainer.test(checkpoint=Path(run_dir) / "checkpoints" / "best.pt")
    metrics |= run_numbers(trainer, start) | task.summary() | sizes
    if trainer.is_main:  # data-parallel runs: rank 0 writes
        save_json(metrics, Path(run_dir) / "metrics.json")
    tested = {k: v for k, v in metrics.items() if k.startswith(("test/", "eval/"))}
    log.info("test: %s", "  ".join(f"{k} {v:.4f}" for k, v in tested.items()))
    log.info("run folder: %s", run_dir)
    return metrics


def announce(cfg: DictConfig, trainer: Trainer, run_dir: str | Path) -> None:
    """The run's first line, before the data load: what trains where, and where it is kept."""
    model, dataset = cfg.model.name, cfg.dataset.name
    device, precision = trainer.device, trainer.precision.name
    log.info("training %s on %s: %s, %s; run folder %s", model, dataset, device, precision, run_dir)
    unit = native_bf16(device)
    if precision == "fp32" and unit:
        log.info(
            "%s runs bf16 natively: trainer.precision=bf16 (or auto) trains up to 2x faster "
            "(docs/performance.md)",
            unit,
        )
    if precision == "bf16" and device.type == "cpu" and not unit:
        # Without AMX or AVX512-BF16 the kernels convert to fp32 and back around every op: on an
        # AVX2 Zen 3 a fashion_mnist_multi_head step took about 10x as long as in fp32.
        log.warning(
            "this CPU has neither AMX nor AVX512-BF16: bf16 is emulated and several times slower "
            "than fp32 here; trainer.precision=auto picks fp32 (docs/performance.md)"
        )


def model_summary(task: Task, cfg: DictConfig, data: DataSet) -> Metrics:
    """The model's summary in the log (dlpy/summary.py), and its sizes for metrics.json; a model
    torchinfo cannot follow trains without them."""
    try:
        return log_summary(task, example_inputs(cfg, data))
    except DlpyError as err:
        log.warning("no model summary: %s", err)
        return {}


def check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DlpyError(f"seed must be a whole number in [0, 2**32) (numpy's range), got {seed!r}")


def checkpoint_bytes(task: Task, averaged: bool = False) -> int:
    """Room for last.pt, best.pt and the temporary copy of one of them while it is replaced, each
    with the weights and up to two optimizer moments per weight (Adam): a full disk fails now,
    not after an epoch."""
    weights = sum(t.numel() * t.element_size() for t in task.state_dict().values())
    return 3 * (4 if averaged else 3) * weights  # trainer.ema keeps one more copy of the weights


_jobs_started = 0  # the jobs this process ran: a sweep's basic launcher runs them one by one


def job_start() -> float:
    """When this job started, as time.time() reads: the process's start for its first job (so
    the interpreter and the imports count), else now."""
    global _jobs_started
    _jobs_started += 1
    return STARTED if _jobs_started == 1 else time.time()


def run_numbers(trainer: Trainer, start: float) -> Metrics:
    """The run's own numbers beside the evaluation: times, counts, the status. Both total and
    start-up count from the job's start, so the total is never the smaller."""
    return {
        "time/total_s": time.time() - start,
        "time/train_s": trainer.train_time,
        "train/samples_per_s": trainer.train_samples / max(trainer.train_time, 1e-9),
        "time/startup_s": (trainer.first_step_at or time.time()) - start,
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "nan_skipped": trainer.nan_skipped,
        "status": "finished",
    }


def what_is_kept(stop: Interrupted | Diverged, run_dir: str | Path) -> str:
    """For a run that stopped early: which checkpoint it leaves, and how to go on.

    Only a checkpoint that is on disk is claimed saved: the one the trainer wrote at the stop
    (`Interrupted.checkpoint`), else an earlier one. A signal that came before the run's first
    step (while a GAN's FID feature network trained, say) saved nothing.
    """
    last = Path(run_dir) / "checkpoints" / "last.pt"
    resume = f"resume with: dlpy train trainer.resume={run_dir}"
    if isinstance(stop, Interrupted) and stop.checkpoint is not None:
        return f"checkpoint saved to {stop.checkpoint}; {resume}"
    if not last.is_file():
        return "no checkpoint had been saved yet"
    if isinstance(stop, Interrupted):
        return f"no checkpoint was saved at this stop; the last one is {last}; {resume}"
    return f"the last good checkpoint is {last}"


def cross_validate(cfg: DictConfig, run_dir: str | Path) -> Metrics:
    """K-fold validation (Chollet 3.6): one run per fold in <run>/fold<k>/, then the mean of
    their numbers.

    Each fold is a whole run with dataset.fold=k, so a fold can also be trained alone or swept
    with -m. The folds' metrics come back from fit_and_test in every process (only rank 0 writes
    files, so they are not read back).
    """
    start = time.perf_counter()
    runs = []
    for k in range(cfg.dataset.folds):
        fold_cfg = cfg.copy()
        fold_cfg.dataset.fold = k
        log.info("fold %d of %d", k + 1, cfg.dataset.folds)
        runs.append(fit_and_test(fold_cfg, Path(run_dir) / f"fold{k}"))
    first = runs[0]
    scores = [
        k for k, v in first.items() if k.startswith(("val/", "test/")) and isinstance(v, float)
    ]
    metrics = {key: sum(run[key] for run in runs) / len(runs) for key in scores}
    for k, run in enumerate(runs):
        metrics |= {f"fold{k}/{key}": run[key] for key in scores if key.startswith("val/")}
    metrics |= {key: value for key, value in first.items() if key.startswith("model/")}
    metrics["folds"] = len(runs)
    metrics["time/total_s"] = time.perf_counter() - start
    metrics["status"] = "finished"
    if distributed.rank() == 0:
        save_json(metrics, Path(run_dir) / "metrics.json")
    log.info("%d-fold means: %s", len(runs), "  ".join(f"{k} {metrics[k]:.4f}" for k in scores))
    return metrics


def record_failure(run_dir: str | Path, err: BaseException) -> str:
    """A run that did not finish says so in metrics.json (keeping what it had measured), so it
    never looks finished; returns the error's line.

    Its status is the error's own (interrupted by a signal, diverged on a NaN loss), else failed.
    """
    path = Path(run_dir) / "metrics.json"
    reason = first_line(err)
    if distributed.rank() > 0:  # data-parallel runs: rank 0 writes
        return reason
    expected = isinstance(err, (DlpyError, KeyboardInterrupt))
    error = reason if expected else f"{type(err).__name__}: {reason}"
    default = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
    status = getattr(err, "status", default)
    try:
        save_json(read_metrics(run_dir) | {"status": status, "error": error}, path)
    except OSError as write_error:  # the folder itself is what failed: the message says so already
        log.error("cannot record the failure in %s: %s", path, write_error)
    return error


def run(cfg: DictConfig) -> float | None:
    """One Hydra job (dlpy/job.py): the run in Hydra's output folder; an error is recorded in its
    metrics.json and printed on one line."""
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        # before anything is written: no run writes over another (rank 0 alone writes files)
        if distributed.rank() == 0 and claim(cfg, run_dir):
            record_config(cfg, run_dir)  # a failed run's config too: dlpy report lists it
        return train(cfg, run_dir)
    except (Exception, KeyboardInterrupt) as err:
        # Interrupted and Diverged stop every process of a ddp run together; others may not
        if not isinstance(err, (Interrupted, Diverged)):
            distributed.leave_at_once()
        refused = isinstance(err, FolderRefused)  # the folder may be another run's: no line changes
        error = first_line(err) if refused else record_failure(run_dir, err)
        if HydraConfig.get().mode == RunMode.MULTIRUN and not isinstance(err, KeyboardInterrupt):
            # One broken job must not sink a sweep: it is recorded as failed and the launcher
            # goes on. Ctrl-C or SIGTERM stops the whole sweep, though. (A refused job's line
            # is printed: its log file is the other run's.)
            line = f"job {getattr(err, 'status', 'failed')}: {error} (run folder {run_dir})"
            if refused:
                print(f"dlpy: {line}; the sweep goes on", file=sys.stderr)
            else:
                log.error("%s; the sweep goes on", line)
            return float("nan")
        if isinstance(err, KeyboardInterrupt) or report(err) is None:
            raise  # Hydra lets a signal through to dlpy.cli; a bug shows its traceback
        # printed here: an exception would make Hydra print "Error executing job" before it
        line, status = report(err)
        print(line, file=sys.stderr)
        raise SystemExit(status) from None

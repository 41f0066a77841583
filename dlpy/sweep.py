"""Sweeps: job folders named by what varies, the sweep's record at its root, and finding it again.

Hydra runs the sweep (its basic sweeper or the Optuna sweeper) and its jobs (in this process, or
through the joblib, submitit or Ray launcher plugins); dlpy only names the folders, keeps the
sweep's config and report beside them, and finds an interrupted sweep when the same command is
run again with trainer.resume=auto.
"""

import hashlib
import importlib.util
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlpy.errors import RAN, DlpyError
from dlpy.report import read_jobs, write_report

log = logging.getLogger("dlpy")

UNSAFE = re.compile(r"[\\/:*?\"<>|'\s]")  # characters some file system or shell would stumble on
NAME_MAX = 200  # bytes; file systems allow 255, and long names end in a hash of the whole


class Plugin(NamedTuple):
    """A Hydra plugin that dlpy's presets use."""

    module: str  # what Hydra imports
    package: str  # what pip installs
    extra: str  # the dlpy extra that installs it


# The launcher's or sweeper's name in a config -> its plugin
PLUGINS = {
    "optuna": Plugin("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "sweep"),
    "joblib": Plugin("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "sweep"),
    "submitit_local": Plugin(
        "hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"
    ),
    "submitit_slurm": Plugin(
        "hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"
    ),
    "ray": Plugin("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "ray_aws": Plugin("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
}


def job_dirname(num: int, overrides: str | None) -> str:
    """`model=mlp,seed=1`: a job's folder, named by the sweep's varying overrides.

    These are Hydra's override_dirname. Characters a file system or shell would trip over become
    `_`; a sweep where nothing varies names its jobs by number, as Hydra does.
    """
    name = UNSAFE.sub("_", str(overrides or "")) or str(num)
    if len(name.encode()) > NAME_MAX:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name.encode()[: NAME_MAX - 9].decode(errors="ignore") + "_" + digest
    return name


def threads_per_job() -> int:
    """CPU threads for each of a launcher's parallel jobs: the cores shared out, at least one.

    A submitit job has its own `cpus_per_task`; joblib runs `n_jobs` jobs at once on this
    machine's cores (-1: one per core, -2: all but one). Outside a sweep: 0, torch's default.
    """
    if not HydraConfig.initialized():
        return 0
    launcher = HydraConfig.get().launcher
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    cores = usable_cores()
    jobs = int(launcher.get("n_jobs") or 1)
    jobs = jobs if jobs > 0 else max(1, cores + 1 + jobs)
    return max(1, cores // jobs)


def usable_cores() -> int:
    """The cores this process may use, counted as joblib's launcher counts them.

    joblib heeds the affinity mask and cgroup quotas; without joblib, the affinity mask alone.
    """
    try:
        from joblib import cpu_count  # optional: the sweep extra installs it
    except ImportError:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cpu_count()


def task_overrides(args: list[str]) -> list[str]:
    """The config overrides among command-line arguments.

    No flags, no hydra.* settings, no trainer.resume.
    """
    skipped = ("-", "hydra.", "hydra/", "+hydra", "~hydra", "trainer.resume=")
    return [a for a in args if not a.startswith(skipped)]


def multirun_args(args: list[str]) -> list[str]:
    """Hydra settings a sweep gets from `dlpy train -m`.

    Its folders are named by the swept keys alone; on trainer.resume=auto, the earlier sweep of
    the same overrides is the sweep folder.
    """
    check_sweep_dir(args)
    extra = []
    if not any(a.startswith("hydra.job.config.override_dirname.exclude_keys=") for a in args):
        extra.append(exclude_fixed_keys(args))
    if "trainer.resume=auto" in args and not any(a.startswith("hydra.sweep.dir=") for a in args):
        earlier = earlier_output(args, multirun=True)
        if earlier:
            print(
                f"trainer.resume=auto: continuing the sweep in {earlier.resolve()}", file=sys.stderr
            )
            extra.append(f"hydra.sweep.dir='{earlier.resolve()}'")
    return extra


def check_sweep_dir(args: list[str]) -> None:
    """A sweep folder named on the command line that holds a sweep is refused, in one line and
    before anything in it is written, unless the new sweep continues it (trainer.resume) or
    replaces its jobs (trainer.overwrite=true). Otherwise its multirun.yaml and report would
    become the new sweep's, and the report would mix both sweeps' jobs. (The default folder is
    new for every sweep.)"""
    given = [a.split("=", 1)[1] for a in args if a.startswith("hydra.sweep.dir=")]
    if not given or any(a.startswith(("trainer.resume=", "trainer.overwrite=true")) for a in args):
        return
    root = Path(given[-1].strip("'\""))
    if (root / "multirun.yaml").is_file():
        raise DlpyError(
            f"sweep folder {root} holds a sweep already (multirun.yaml): continue it with "
            "trainer.resume=auto, write elsewhere (hydra.sweep.dir=...), or replace the jobs "
            "it runs with trainer.overwrite=true"
        )


def exclude_fixed_keys(args: list[str]) -> str:
    """The override leaving out of the job folders' names the keys that do not vary."""
    try:
        parsed = OverridesParser.create().parse_overrides(task_overrides(args))
    except HydraException:
        parsed = []  # Hydra reports the bad override itself
    fixed = sorted(
        {o.key_or_group for o in parsed if not o.is_sweep_override()} | {"trainer.resume"}
    )
    keys = ",".join(f"'{k}'" for k in fixed)
    return f"hydra.job.config.override_dirname.exclude_keys=[{keys}]"


def earlier_output(args: list[str], multirun: bool) -> Path | None:
    """The newest folder under ./outputs that the same overrides made (trainer.resume aside).

    A sweep keeps its overrides in <sweep>/multirun.yaml, a run in <run>/.hydra/overrides.yaml;
    the folders are named by date and time, so the last in sorted order is the newest. None when
    there is none.
    """
    mine = sorted(task_overrides(args))
    pattern = (
        "outputs/multirun/*/*/multirun.yaml" if multirun else "outputs/*/*/.hydra/overrides.yaml"
    )
    for record in sorted(Path().glob(pattern), reverse=True):
        try:
            saved = yaml.safe_load(record.read_text())
            saved = saved["hydra"]["overrides"]["task"] if multirun else saved
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            continue
        if sorted(task_overrides(saved or [])) == mine:
            return record.parent if multirun else record.parent.parent
    return None


def check_plugins(args: list[str], conf_dir: str | Path) -> None:
    """A launcher or sweeper whose plugin is missing fails here, naming the extra to install.

    It may be chosen outright (`hydra/launcher=ray`) or by a preset of dlpy's configs.
    """
    wanted = []
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        preset = Path(conf_dir) / key / f"{value}.yaml"
        if key in ("hydra/launcher", "hydra/sweeper"):
            wanted.append((arg, value))
        elif "/" not in key + value and preset.is_file():
            text = preset.read_text()
            chosen = re.findall(r"override /hydra/(?:launcher|sweeper): *(\w+)", text)
            wanted += [(arg, name) for name in chosen]
    for arg, name in wanted:
        plugin = PLUGINS.get(name)
        if plugin and not installed(plugin.module):
            raise DlpyError(
                f"{arg} needs the Hydra plugin {plugin.package}, which is not installed: "
                f"pip install 'dlpy[{plugin.extra}]' (or pip install {plugin.package})"
            )


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # not even the hydra_plugins namespace is there
        return False


class SweepFailed(DlpyError):
    """Jobs of the sweep failed: the sweep ran the others to the end and reported them all."""

    exit_code = 1


class SweepRecord(Callback):
    """The sweep's config at its root whichever sweeper runs it, and its report when it ends.

    Hydra's basic sweeper alone writes multirun.yaml; the report is that of `dlpy report`.
    """

    # The last sweep this process drove, and its failed jobs' folders, for `dlpy train -m` to exit
    # non-zero on (`check_jobs`): Hydra hands a sweep's results to no one after its callbacks.
    root = ""
    jobs = 0
    failed: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(config.hydra.sweep.dir)
        SweepRecord.root = str(root)
        SweepRecord.jobs = 0
        SweepRecord.failed = []
        root.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, root / "multirun.yaml")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            jobs = read_jobs(Path(config.hydra.sweep.dir))
        except DlpyError as err:
            log.warning("no sweep report: %s", err)
            return
        log.info("sweep report:\n%s", write_report(config.hydra.sweep.dir, jobs))
        SweepRecord.jobs = len(jobs)
        # any other ending (failed, interrupted, no metrics.json) fails the sweep
        SweepRecord.failed = [job["folder"] for job in jobs if job["status"] not in RAN]


def check_jobs() -> None:
    """After a sweep: SweepFailed, naming the jobs, if any failed, so that a script running
    `dlpy train -m ... && dlpy plot ...` stops there, as after a failed run."""
    failed = SweepRecord.failed
    if failed:
        names = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise SweepFailed(
            f"sweep {SweepRecord.root}: {len(failed)} of {SweepRecord.jobs} jobs failed ({names}); "
            "each one's error is in the report above and in its metrics.json"
        )


class StopJoblibWorkers(Callback):
    """launcher=joblib: stop the worker processes when the sweep ends.

    joblib keeps them for reuse, and left to it they idle until this process exits, whose exit
    handler then waits for each to unload torch: about a second of a sweep's wall time, and a
    worker could outlive the sweep.
    """

    def on_multirun_end(self, config: DictConfig | None, **kwargs: Any) -> None:
        # optional: only the joblib preset, which needs joblib, names this callback
        from joblib.externals.loky import reusable_executor

        executor = getattr(reusable_executor, "_executor", None)  # None: no worker ever started
        if executor is not None:
            # every job has returned: nothing is lost
            executor.shutdown(wait=True, kill_workers=True)

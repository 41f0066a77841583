"""Sweeps: job folders named by what varies, the sweep's record at its root, and finding it again.

Hydra runs the sweep (its basic sweeper or the Optuna sweeper) and its jobs (in this process, or
through the joblib, submitit or Ray launcher plugins); dlpy only names the folders, keeps the
sweep's config and report beside them, and finds an interrupted sweep when the same command is run
again with trainer.resume=auto.
"""

import hashlib
import importlib.util
import logging
import os
import re
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from dlpy.errors import DlpyError

log = logging.getLogger("dlpy")

UNSAFE = re.compile(r"[\\/:*?\"<>|'\s]")  # characters some file system or shell would stumble on
NAME_MAX = 200  # bytes; file systems allow 255, and long names end in a hash of the whole

# Hydra plugins dlpy's presets use: the option's name -> (the plugin's module, the dlpy extra that installs it)
PLUGINS = {
    "optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "sweep"),
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "sweep"),
    "submitit_local": (
        "hydra_plugins.hydra_submitit_launcher",
        "hydra-submitit-launcher",
        "cluster",
    ),
    "submitit_slurm": (
        "hydra_plugins.hydra_submitit_launcher",
        "hydra-submitit-launcher",
        "cluster",
    ),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "ray_aws": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
}


def job_dirname(num, overrides):
    """`model=mlp,seed=1`: a job's folder, named by the sweep's varying overrides (Hydra's override_dirname).

    Characters a file system or shell would trip over become `_`; a sweep where nothing varies names
    its jobs by number, as Hydra does.
    """
    name = UNSAFE.sub("_", str(overrides or "")) or str(num)
    if len(name.encode()) > NAME_MAX:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name.encode()[: NAME_MAX - 9].decode(errors="ignore") + "_" + digest
    return name


def threads_per_job():
    """CPU threads for each of a launcher's parallel jobs: the cores shared out among them, at least one.

    A submitit job has its own `cpus_per_task`; joblib runs `n_jobs` jobs at once on this machine's cores
    (-1: one per core, -2: all but one). Outside a sweep: 0, torch's default.
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 0
    launcher = HydraConfig.get().launcher
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    cores = usable_cores()
    jobs = int(launcher.get("n_jobs") or 1)
    jobs = jobs if jobs > 0 else max(1, cores + 1 + jobs)
    return max(1, cores // jobs)


def usable_cores():
    """The cores this process may use: joblib counts them as its launcher does (affinity and cgroup quotas)."""
    try:
        from joblib import cpu_count
    except ImportError:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cpu_count()


def task_overrides(args):
    """The config overrides among command-line arguments: no flags, no hydra.* settings, no trainer.resume."""
    return [
        a
        for a in args
        if not a.startswith(("-", "hydra.", "hydra/", "+hydra", "~hydra", "trainer.resume="))
    ]


def multirun_args(args):
    """Hydra settings a sweep gets from `dlpy train -m`: folder names of the swept keys alone; on
    trainer.resume=auto, the earlier sweep of the same overrides as the sweep folder."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    extra = []
    if not any(a.startswith("hydra.job.config.override_dirname.exclude_keys=") for a in args):
        try:
            parsed = OverridesParser.create().parse_overrides(task_overrides(args))
        except HydraException:
            parsed = []  # Hydra reports the bad override itself
        fixed = sorted(
            {o.key_or_group for o in parsed if not o.is_sweep_override()} | {"trainer.resume"}
        )
        extra.append(
            "hydra.job.config.override_dirname.exclude_keys=["
            + ",".join(f"'{k}'" for k in fixed)
            + "]"
        )
    if "trainer.resume=auto" in args and not any(a.startswith("hydra.sweep.dir=") for a in args):
        earlier = earlier_output(args, multirun=True)
        if earlier:
            print(
                f"trainer.resume=auto: continuing the sweep in {earlier.resolve()}", file=sys.stderr
            )
            extra.append(f"hydra.sweep.dir='{earlier.resolve()}'")
    return extra


def earlier_output(args, multirun):
    """The newest folder under ./outputs that the same overrides made (trainer.resume aside), or None.

    A sweep keeps its overrides in <sweep>/multirun.yaml, a run in <run>/.hydra/overrides.yaml; the
    folders are named by date and time, so the last in sorted order is the newest.
    """
    import yaml

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


def check_plugins(args, conf_dir):
    """`hydra/launcher=ray` or a preset that selects a missing plugin fails here, naming the extra to install."""
    wanted = []
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        if key in ("hydra/launcher", "hydra/sweeper"):
            wanted.append((arg, value))
        elif (
            "/" not in key + value and (Path(conf_dir) / key / f"{value}.yaml").is_file()
        ):  # a preset
            text = (Path(conf_dir) / key / f"{value}.yaml").read_text()
            wanted += [
                (arg, m) for m in re.findall(r"override /hydra/(?:launcher|sweeper): *(\w+)", text)
            ]
    for arg, name in wanted:
        module, package, extra = PLUGINS.get(name, (None, None, None))
        if module and not installed(module):
            raise DlpyError(
                f"{arg} needs the Hydra plugin {package}, which is not installed: "
                f"pip install 'dlpy[{extra}]' (or pip install {package})"
            )


def installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # not even the hydra_plugins namespace is there
        return False


class SweepRecord(Callback):
    """The sweep's config at its root whichever sweeper runs it (Hydra's basic sweeper alone writes
    multirun.yaml), and when the sweep ends, its report (dlpy report) beside it."""

    def on_multirun_start(self, config, **kwargs):
        from omegaconf import OmegaConf

        root = Path(config.hydra.sweep.dir)
        root.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, root / "multirun.yaml")

    def on_multirun_end(self, config, **kwargs):
        from dlpy.report import write_report

        try:
            log.info("sweep report:\n%s", write_report(config.hydra.sweep.dir))
        except DlpyError as err:
            log.warning("no sweep report: %s", err)


class StopJoblibWorkers(Callback):
    """launcher=joblib: stop the worker processes when the sweep ends. joblib keeps them for reuse, and
    left to it they idle until this process exits, whose exit handler then waits for each to unload
    torch: about a second of a sweep's wall time, and a worker could outlive the sweep."""

    def on_multirun_end(self, config, **kwargs):
        from joblib.externals.loky import reusable_executor

        executor = getattr(reusable_executor, "_executor", None)  # None: no worker was ever started
        if executor is not None:
            executor.shutdown(
                wait=True, kill_workers=True
            )  # every job has returned: nothing is lost

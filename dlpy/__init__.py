"""dlpy: the classic deep-learning experiments, one Hydra-configured command each."""

import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def process_start() -> float:
    """When this process started, as time.time() reads: from /proc on Linux (so start-up counts
    the interpreter's own start and its imports before dlpy's), else now."""
    try:
        ticks = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
        uptime = Path("/proc/uptime").read_text().split()[0]
        age = float(uptime) - int(ticks) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()
    return time.time() - max(age, 0.0)


STARTED = process_start()  # for time/startup_s: seconds from start-up to the first training step

__version__ = "0.1.0"

# The config groups: shipped inside the package when installed (pyproject maps conf/ to
# dlpy/conf), read straight from the checkout's conf/ in an editable install.
_here = Path(__file__).resolve().parent
CONF_DIR = str(_here / "conf" if (_here / "conf").is_dir() else _here.parent / "conf")


@contextmanager
def environ(name: str, value: str) -> Iterator[None]:
    """The environment variable `name` set to `value` inside the block, and as it was after it."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def groups() -> list[str]:
    """The config groups: the folders of conf/, by name."""
    return sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir())


def presets(group: str) -> list[str]:
    """The presets of a config group: conf/<group>/*.yaml, by name."""
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


# The resolvers' modules are imported when a config first uses them, not with the package:
# dlpy.data.env brings torch and gymnasium, dlpy.sweep brings Hydra.


def _env_shape(env_id: str, key: str, allow_import: bool = False) -> int:
    """`${dlpy.env:CartPole-v1,num_actions,false}` in a config: the sizes an environment has;
    an id it cannot play fails naming dataset.id (allow_import: dataset.allow_import)."""
    from dlpy.data.env import env_shape  # heavy: torch and gymnasium

    return env_shape(env_id, allow_import)[key]


def _folder_classes(root: str) -> int | None:
    """`${dlpy.folder_classes:${.root}}`: the class folders of an image folder (None: no folder)."""
    from dlpy.data.folder import folder_classes  # heavy: torch and PIL, for image-folder runs only

    return folder_classes(root)


def _job_dirname(num: int, overrides: str) -> str:
    from dlpy.sweep import job_dirname  # Hydra's: when a sweep names its jobs' folders

    return job_dirname(num, overrides)


def _new_dir(path: str) -> str:
    """`${dlpy.new_dir:outputs/<date>/<time>}`, a run's folder or a sweep's: that folder, made
    now; if a run started in the same second has it already, the first free of <time>_01,
    <time>_02, ... (each sorts after the one before, and before the next second's). Made with
    mkdir, which fails on a folder that exists, so two processes never get the same one.

    Here, not in dlpy/run_folder.py, which imports torch: the process that drives a joblib
    sweep names the sweep's folder and would pay torch's import (about 3 s) for nothing.
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        folder = base.with_name(f"{base.name}_{n:02d}") if n else base
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return str(folder)
    raise AssertionError("unreachable")  # itertools.count never ends


def _threads_per_job() -> int:
    from dlpy.sweep import threads_per_job  # Hydra's: when a launcher preset is resolved

    return threads_per_job()


def _direction(mode: str) -> str:
    """hparams_search presets: Optuna's direction from trainer.mode."""
    return {"max": "maximize", "min": "minimize"}[mode]


def _register_resolvers() -> None:
    from omegaconf import OmegaConf  # here, so that STARTED above counts its import time too

    OmegaConf.register_new_resolver("dlpy.env", _env_shape, replace=True)
    OmegaConf.register_new_resolver("dlpy.folder_classes", _folder_classes, replace=True)
    OmegaConf.register_new_resolver("dlpy.job_dirname", _job_dirname, replace=True)
    # cached, as Hydra's `now` is: the folder is made once per run however often it is read
    OmegaConf.register_new_resolver("dlpy.new_dir", _new_dir, replace=True, use_cache=True)
    OmegaConf.register_new_resolver("dlpy.threads_per_job", _threads_per_job, replace=True)
    OmegaConf.register_new_resolver("dlpy.direction", _direction, replace=True)


_register_resolvers()

"""dlpy: the classic deep-learning experiments, one Hydra-configured command each."""

import os
import time
from contextlib import contextmanager
from pathlib import Path

STARTED = time.time()  # for time/startup_s: seconds from start-up to the first training step

__version__ = "0.1.0"

# The config groups: shipped inside the package when installed (pyproject maps conf/ to
# dlpy/conf), read straight from the checkout's conf/ in an editable install.
_here = Path(__file__).resolve().parent
CONF_DIR = str(_here / "conf" if (_here / "conf").is_dir() else _here.parent / "conf")


@contextmanager
def environ(name, value):
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


def _env_shape(env_id, key):
    """`${dlpy.env:CartPole-v1,num_actions}` in a config: the sizes an environment has (None if it cannot say)."""
    from dlpy.data.env import env_shape

    shape = env_shape(env_id)
    return shape[key] if shape else None


def _job_dirname(num, overrides):
    from dlpy.sweep import job_dirname

    return job_dirname(num, overrides)


def _threads_per_job():
    from dlpy.sweep import threads_per_job

    return threads_per_job()


def _register_resolvers():
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("dlpy.env", _env_shape, replace=True)
    OmegaConf.register_new_resolver(
        "dlpy.job_dirname", _job_dirname, replace=True
    )  # hydra.sweep.subdir
    OmegaConf.register_new_resolver(
        "dlpy.threads_per_job", _threads_per_job, replace=True
    )  # launcher presets
    # hparams_search presets: Optuna's direction from trainer.mode
    OmegaConf.register_new_resolver(
        "dlpy.direction", lambda mode: {"max": "maximize", "min": "minimize"}[mode], replace=True
    )


_register_resolvers()

"""`dlpy train`'s one Hydra entry point, light on purpose.

It imports the recipe (dlpy/train.py, with torch) only when a job runs, so the process that
drives a sweep whose jobs run elsewhere (the joblib, submitit and Ray launchers) starts in a
fraction of a second instead of importing torch for nothing.
"""

import hydra
from omegaconf import DictConfig

from dlpy import CONF_DIR


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """One job: the run's monitored metric (a sweep's objective), NaN for a failed sweep job."""
    from dlpy import train  # heavy (torch): kept off the start-up path of a sweep's driver

    return train.run(cfg)

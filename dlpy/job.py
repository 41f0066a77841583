"""`dlpy train`'s Hydra entry point, light on purpose: it imports the recipe (dlpy/train.py, with torch)
only when a job runs, so the process that drives a sweep whose jobs run elsewhere (the joblib, submitit
and Ray launchers) starts in a fraction of a second instead of importing torch for nothing."""

import hydra

from dlpy import CONF_DIR


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg):
    from dlpy import train

    return train.main.__wrapped__(
        cfg
    )  # the recipe's own Hydra task, under the Hydra run already going

"""The Trainer's options (conf/trainer/), each checked with an error naming its full key."""

from typing import Any

from dlpy import distributed
from dlpy.ema import check_decay
from dlpy.errors import DlpyError, check_choice, check_number
from dlpy.precision import CHOICES, CLIP_MODES

ON_NAN = ("stop", "skip")  # a NaN or infinite loss: stop the run (diverged), or skip the batch
NUMBERS = ("max_epochs", "max_steps", "grad_clip", "limit_train_batches", "limit_eval_batches")
NUMBERS += ("log_every_n_steps", "threads", "grad_clip_value")  # the options that are numbers >= 0
COUNTS = ("val_every_n_epochs", "accumulate")  # whole numbers >= 1


def check_options(options: dict[str, Any]) -> None:
    """The Trainer's arguments, each error naming its full key (trainer.max_epochs ...)."""
    for key in NUMBERS:
        check_number(f"trainer.{key}", options[key])
    for key in COUNTS:
        check_number(f"trainer.{key}", options[key], at_least=1, integer=True)
    check_decay(options["ema"])
    if not options["max_epochs"] and not options["max_steps"]:
        raise DlpyError(
            "trainer.max_epochs and trainer.max_steps are both 0: the run would never train"
        )
    check_choice("trainer.precision", options["precision"], CHOICES)
    check_choice("trainer.mode", options["mode"], ("min", "max"))
    check_choice("trainer.on_nan", options["on_nan"], ON_NAN)
    check_choice("trainer.grad_clip_mode", options["grad_clip_mode"], CLIP_MODES)
    distributed.check_strategy(options["strategy"])

"""The Trainer's options (conf/trainer/), each checked with an error naming its full key.

Each option's type and range is declared in `Trainer.__init__`'s signature (dlpy/schema.py); what
is left here are the relations between options and the process's surroundings.
"""

from collections.abc import Callable
from typing import Any

from dlpy import distributed, schema
from dlpy.errors import DlpyError

ON_NAN = ("stop", "skip")  # a NaN or infinite loss: stop the run (diverged), or skip the batch


def check_options(init: Callable[..., None], options: dict[str, Any]) -> None:
    """The Trainer's arguments as given to `init`, each error naming its full key."""
    schema.check(init, options, "trainer")
    if not options["max_epochs"] and not options["max_steps"]:
        raise DlpyError(
            "trainer.max_epochs and trainer.max_steps are both 0: the run would never train"
        )
    distributed.check_strategy(options["strategy"])

"""How a run ends when it does not finish: the CLI prints the message on one line, exits non-zero.

metrics.json records the ending as `status` (failed, diverged, interrupted), so a folder never
looks finished. The helpers below write the messages every module shares: the first line of an
error, an unknown name with the closest match, a number out of its range. This module imports
nothing from dlpy, so any module can import it.
"""

import difflib
import math
import signal
from collections.abc import Iterable
from pathlib import Path

# The statuses of a run that ran its values to the end: a diverged run is a result (a learning
# rate too high; resumed, it would diverge again), not a failure to run.
RAN = ("finished", "diverged")


class DlpyError(Exception):
    """A user-facing error: the message names the config key or file at fault."""

    status = "failed"
    exit_code = 2


class Diverged(DlpyError):
    """A NaN or infinite loss stopped the run; its checkpoints hold the last good weights."""

    status = "diverged"
    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped the run. Like KeyboardInterrupt, no
    `except Exception` swallows it.

    The exit status follows the shell's convention, 128 + the signal: 130 for Ctrl-C, 143 for
    SIGTERM.
    """

    status = "interrupted"

    def __init__(
        self,
        signum: int,
        message: str | None = None,
        step: int | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum
        self.step = step  # set where the training loop stopped, at the end of this step
        # the file saved at that step, set once it is on disk (None: nothing was saved)
        self.checkpoint = checkpoint


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def unknown(kind: str, name: object, known: Iterable[str]) -> str:
    """`Unknown model 'cnnn'. Did you mean 'cnn'? Known models: cnn, mlp, ...`"""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}"


def check_choice(key: str, value: object, choices: Iterable[str]) -> None:
    """`key` must be one of `choices`: else the unknown-name message, with the closest match."""
    choices = list(choices)
    if value not in choices:
        raise DlpyError(f"{key}: {unknown('value', value, choices)}")


def check_number(
    key: str,
    value: object,
    *,
    at_least: float = 0,
    at_most: float = math.inf,
    integer: bool = False,
) -> None:
    """`key` must be a finite number (a whole one if `integer`) from `at_least` to `at_most`.

    A bool is not a number here: YAML's `true` would otherwise pass as 1.
    """
    kinds = int if integer else (int, float)
    kind = "an integer" if integer else "a number"
    bounds = f">= {at_least:g}" + (f" and <= {at_most:g}" if at_most < math.inf else "")
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise DlpyError(f"{key} must be {kind} {bounds}, got {value!r}")
    if not at_least <= value <= at_most:
        raise DlpyError(f"{key} must be {kind} {bounds}, got {value!r}")


def report(err: BaseException) -> tuple[str, int] | None:
    """The one line `dlpy` prints for an error it expects, and its exit status; None for a bug.

    Expected are dlpy's own errors, signals, Hydra's and OmegaConf's complaints about the config
    (a malformed override, a key that does not exist) and the operating system's (a folder that
    cannot be created, a full disk), whose messages name the file.
    """
    # Hydra's and OmegaConf's errors: here, so this module stays free of imports for any caller
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, KeyboardInterrupt):
        return f"dlpy: {str(err) or 'interrupted'}", getattr(err, "exit_code", 130)
    if isinstance(err, DlpyError):
        return f"dlpy: error: {err}", err.exit_code
    if isinstance(err, (HydraException, OmegaConfBaseException)):
        cause = raised_by_dlpy(err)  # in a resolver: `${dlpy.env:...}` refusing dataset.id, say
        if cause is not None:
            return f"dlpy: error: {cause}", cause.exit_code
        return f"dlpy: error: {config_error(err)}", 2
    if isinstance(err, OSError):
        return f"dlpy: error: {err}", 1
    return None


def raised_by_dlpy(err: BaseException) -> DlpyError | None:
    """The DlpyError that an OmegaConf error wraps, if any: OmegaConf re-raises what a resolver
    raises as its own error, whose message then begins with "DlpyError raised while resolving"."""
    chain = []
    cause = err.__cause__ or err.__context__
    while cause is not None and cause not in chain:  # a chain may loop back on itself
        if isinstance(cause, DlpyError):
            return cause
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return None


def config_error(err: Exception) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line naming the override or the key."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = err.__cause__ if err.__cause__ is not None else err
    key = getattr(cause, "full_key", None)
    if (
        isinstance(cause, (ConfigKeyError, ConfigAttributeError))
        and key
        and cause.parent_node is not None
    ):
        name = key.rsplit(".", 1)[-1]  # a typo: say which keys there are, and the closest
        message = unknown("key", name, list(cause.parent_node.keys()))
        return message.replace(f"Unknown key {name!r}", f"{key}: no such key", 1)
    lines = []
    for line in str(err).splitlines():
        line = line.strip(" \t^")
        if line.startswith(("Config search path", "See https://")):
            break
        if line and not line.startswith(("full_key:", "object_type=", "Error parsing override")):
            lines.append(line)
    message = "; ".join(lines) or type(err).__name__
    if getattr(err, "override", None):  # OverrideParseException: the grammar's complaint
        return f"cannot parse override {err.override!r}: {message}"
    return f"{key}: {message}" if key and key not in message else message

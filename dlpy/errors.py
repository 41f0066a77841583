"""How a run ends when it does not finish: the CLI prints the message on one line and exits non-zero.

metrics.json records the ending as `status` (failed, diverged, interrupted), so a folder never looks finished.
"""

import signal


class DlpyError(Exception):
    """A user-facing error: the message names the config key or file at fault."""

    status = "failed"
    exit_code = 2


class Diverged(DlpyError):
    """The loss became NaN or infinite: the run stops, and its checkpoints keep the last good weights."""

    status = "diverged"
    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped the run. Like KeyboardInterrupt, no `except Exception` swallows it.

    The exit status follows the shell's convention, 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM.
    """

    status = "interrupted"

    def __init__(self, signum, message=None, step=None):
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum, self.exit_code = signum, 128 + signum
        self.step = step  # set where the training loop stopped and saved a checkpoint at this step


def report(err):
    """The one line `dlpy` prints for an error it expects, and its exit status; None for a bug in dlpy.

    Expected are dlpy's own errors, signals, Hydra's and OmegaConf's complaints about the config
    (a malformed override, a key that does not exist) and the operating system's (a folder that
    cannot be created, a full disk), whose messages name the file.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, KeyboardInterrupt):
        return f"dlpy: {str(err) or 'interrupted'}", getattr(err, "exit_code", 130)
    if isinstance(err, DlpyError):
        return f"dlpy: error: {err}", err.exit_code
    if isinstance(err, (HydraException, OmegaConfBaseException)):
        return f"dlpy: error: {config_error(err)}", 2
    if isinstance(err, OSError):
        return f"dlpy: error: {err}", 1
    return None


def config_error(err):
    """Hydra's and OmegaConf's multi-line messages as one line that names the override or the key."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from dlpy.registry import unknown

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

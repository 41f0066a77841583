"""The one exception dlpy raises for bad input: the CLI prints its message and exits non-zero."""


class DlpyError(Exception):
    """A user-facing error: the message names the config key or file at fault."""

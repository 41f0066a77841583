"""SIGINT (Ctrl-C) and SIGTERM (what SLURM and Kubernetes send before they kill a job) as
requests to stop.

Outside the training loop a signal raises `Interrupted` at once, as Ctrl-C raises
KeyboardInterrupt. Inside it, `StopRequest` only notes the signal: the loop finishes the step it
is in, saves a checkpoint at that step and then raises, so no signal can land in the middle of an
optimizer step or a file write.
"""

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from dlpy.errors import Interrupted

if TYPE_CHECKING:
    from dlpy.distributed import DataParallel

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], None]


@contextmanager
def handling(handler: Handler) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM inside the block, the previous handlers after it.

    Only the main thread may set handlers; elsewhere (a launcher's worker thread) the block runs
    unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            # None: a handler set outside Python, which cannot be restored; the default then
            signal.signal(signum, signal.SIG_DFL if old is None else old)


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


class StopRequest:
    """A signal handler that remembers the first SIGINT or SIGTERM; repeats change nothing.

    A second Ctrl-C while the checkpoint is being written must not cut the write short, so every
    signal after the first is only acknowledged. (SIGKILL still stops the process, and even then
    the previous checkpoint stays intact: files are written to a temporary file and renamed.)
    """

    def __init__(self) -> None:
        self.signum = None

    def agreed(self, ddp: "DataParallel | None") -> int | None:
        """The signal to stop on at this step: this process's, or under DDP any process's, so
        that all of them stop at the same step."""
        return ddp.agreed_stop(self.signum) if ddp else self.signum

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            log.warning("%s: stopping after this step; a checkpoint will be saved there", name)
        else:
            log.warning("%s: already stopping, saving the checkpoint first", name)


def interrupted(signum: int, epoch: int, step: int, checkpoint: Path | None) -> Interrupted:
    """The error that stops a run after the step at which a signal came, saying where, and the
    checkpoint saved there if one was (and is on disk)."""
    name = signal.Signals(signum).name
    message = f"interrupted by {name} at epoch {epoch + 1}, step {step}"
    saved = checkpoint if checkpoint is not None and checkpoint.is_file() else None
    return Interrupted(signum, message, step=step, checkpoint=saved)

"""What a checkpoint holds, and how a run goes on from one exactly where it stopped.

Lightning keeps this beside its loop as the checkpoint connector; here `Checkpointer` does it for
the Trainer. A checkpoint carries everything a resumed run needs to be bitwise equal to one that
never stopped: weights, optimizers, schedules, loss scaler, the loop's counters, every random
generator, the data's shuffling state, the callbacks' state and, in data-parallel runs, what
differs between the processes. Changing the format touches this module only.
"""

import logging
import random
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlpy.data.base import Shuffled
from dlpy.ema import EMA
from dlpy.errors import Diverged, DlpyError
from dlpy.io import load_checkpoint, resolve_checkpoint, save_checkpoint

if TYPE_CHECKING:  # the Trainer imports this module
    from dlpy.trainer import Trainer

log = logging.getLogger(__name__)
SCHEDULE_PLAN = ("total_steps", "_schedule_phases", "T_max")  # OneCycleLR, CosineAnnealingLR
TRAINING_STATE = {
    "optimizers",
    "schedulers",
    "scaler",
    "epoch",
    "step",
    "train_time",
    "train_samples",
    "rng",
    "data",
    "callbacks",
}  # what a checkpoint needs besides the weights to be resumed from


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (torch's on every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global generators' state, in tensors and tuples (what weights_only=True loads)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1]), *np_state[2:]),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def floats(sums: dict[str, Any]) -> dict[str, float]:
    """Running sums, kept on the device during the epoch, as plain numbers for the file."""
    return {key: float(value) for key, value in sums.items()}


class Checkpointer:
    """Dumps the trainer's state into a checkpoint and restores it from one."""

    def __init__(self, trainer: "Trainer", config: dict | None, resume: str | None) -> None:
        self.trainer = trainer
        self.config = config  # the run's resolved config, saved in every checkpoint
        self.resume_from = resume  # trainer.resume: a run folder or a checkpoint file
        self.epoch_start = None  # the data's state when this epoch began: see `data_state`
        self.processes = None  # DDP: every process's own state, gathered for rank 0 to save
        self.own_state_resumed = False  # DDP: this process took its own generators back

    # -- inside an epoch -------------------------------------------------------------------------

    def start_epoch(self) -> None:
        self.epoch_start = self.trainer.data.state_dict()

    def skip_done(self, batches: Iterator, done: int) -> Iterator:
        """`batches` from batch `done` on, for an epoch resumed from a checkpoint saved inside it.

        Shuffled data were reset to their state at the start of the epoch (see `data_state`):
        replaying the first `done` batches gives the same order and augmentations as the epoch
        that was cut. An environment has no such order to find again; its task just plays on.
        """
        if done and isinstance(self.trainer.data, Shuffled):
            rng = rng_state()
            for _ in islice(batches, done):
                pass
            set_rng_state(rng)  # drawing the replayed batches must not move the global generators
        return batches

    def data_state(self) -> dict[str, Any]:
        """Inside an epoch, shuffled data restart from the epoch's start and replay its batches."""
        trainer = self.trainer
        if trainer.batch and isinstance(trainer.data, Shuffled):
            return self.epoch_start
        return trainer.data.state_dict()

    def gather_own_states(self) -> None:
        """DDP, before the callbacks may save a checkpoint: what differs between the processes,
        gathered for rank 0 to save beside its own, so a resumed run goes on exactly: each
        process's random generators (its own dropout masks and noise) and, inside an epoch, its
        running sums of the epoch's numbers."""
        trainer = self.trainer
        if trainer.ddp:
            own = {"rng": rng_state(), "epoch_sums": floats(trainer.epoch_sums)}
            self.processes = trainer.ddp.gather(own)

    # -- dump ------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        trainer = self.trainer
        state = {
            "task": trainer.task.state_dict(),
            "optimizers": [opt.state_dict() for opt in trainer.optimizers],
            "schedulers": [s.state_dict() if s is not None else None for s in trainer.schedulers],
            "scaler": trainer.precision.state_dict(),
            "epoch": trainer.epoch,
            "step": trainer.step,
            "batch": trainer.batch,
            "nan_skipped": trainer.nan_skipped,
            "epoch_sums": floats(trainer.epoch_sums),
            "epoch_batches": trainer.epoch_batches,
            "train_time": trainer.train_time,
            "train_samples": trainer.train_samples,
            "rng": rng_state(),
            "data": self.data_state(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in trainer.callbacks},
            "config": self.config,
        }
        if trainer.ema:  # trainer.ema: the moving average, which evaluation uses
            state["ema"] = trainer.ema.state_dict()
        if self.processes:
            state["processes"] = self.processes
        return state

    def save(self, path: str | Path) -> None:
        """Write a checkpoint atomically, unless the weights hold NaN or inf: the file then keeps
        its last good state."""
        state = self.state_dict()
        broken = [
            key
            for key, value in state["task"].items()
            if value.is_floating_point() and not value.isfinite().all()
        ]
        if broken:
            raise Diverged(
                f"diverged: the weights hold NaN or inf at epoch {self.trainer.epoch}, "
                f"step {self.trainer.step} ({', '.join(broken[:3])}); {path} was not overwritten"
            )
        save_checkpoint(state, path)

    # -- restore ---------------------------------------------------------------------------------

    def resume(self) -> None:
        """trainer.resume: go on from the run folder's last checkpoint, or from the file."""
        if self.resume_from:
            self.load(resolve_checkpoint(self.resume_from))

    def load(self, path: str | Path) -> None:
        """Resume: every part of the state back where the checkpoint left it."""
        state = load_checkpoint(path, self.trainer.device)
        missing = TRAINING_STATE - state.keys()
        if missing:  # weights alone (the FID feature cache, say) cannot be resumed from
            raise DlpyError(
                f"checkpoint {path} holds weights but no training state to resume from "
                f"(no {', '.join(sorted(missing))})"
            )
        self.restore_weights(state, path)
        self.restore_optimizers(state)
        self.restore_loop(state)
        self.restore_own_state(state.get("processes") or [])
        trainer = self.trainer
        log.info("resumed from %s at epoch %d, step %d", path, trainer.epoch, trainer.step)

    def load_weights(self, path: Path | None) -> None:
        """The weights alone, of rank 0's file, to test them (the current ones if there is none)."""
        trainer = self.trainer
        if path is not None and trainer.is_main and path.exists():
            state = load_checkpoint(path, trainer.device)
            trainer.task.load_state_dict(state["task"])
            if trainer.ema and "ema" in state:
                trainer.ema.load_state_dict(state["ema"])
        if trainer.ddp:  # the file is rank 0's: its weights reach the others over the group
            trainer.ddp.broadcast_state(trainer.task)
            if trainer.ema:
                trainer.ddp.broadcast_state(trainer.ema.averaged)

    def restore_weights(self, state: dict[str, Any], path: str | Path) -> None:
        try:
            self.trainer.task.load_state_dict(state["task"])
        except RuntimeError as err:
            was = (state.get("config") or {}).get("model", {}).get("name", "another model")
            lines = str(err).splitlines()  # the first says "Error(s) in loading state_dict"
            raise DlpyError(
                f"checkpoint {path} was saved by {was} and does not fit this model: "
                f"{lines[1].strip() if len(lines) > 1 else err}"
            ) from None
        trainer = self.trainer
        if trainer.ema and "ema" in state:
            trainer.ema.load_state_dict(state["ema"])
        elif trainer.ema:  # trainer.ema set on resuming a run without: average from these weights
            trainer.ema = EMA(trainer.task.net, trainer.ema.decay)

    def restore_optimizers(self, state: dict[str, Any]) -> None:
        """Optimizers, schedules and the loss scaler."""
        trainer = self.trainer
        for opt, opt_state in zip(trainer.optimizers, state["optimizers"], strict=False):
            opt.load_state_dict(opt_state)
        for scheduler, sched_state in zip(trainer.schedulers, state["schedulers"], strict=False):
            if scheduler is not None and sched_state is not None:
                # The plan's length comes from this run's config, so a resumed run may be longer
                # (trainer.max_epochs raised); its position and all else come from the checkpoint.
                plan = {k: v for k, v in scheduler.state_dict().items() if k in SCHEDULE_PLAN}
                scheduler.load_state_dict({**sched_state, **plan})
        trainer.precision.load_state_dict(state["scaler"])

    def restore_loop(self, state: dict[str, Any]) -> None:
        """The loop's counters, the callbacks, the data's generator and the global generators."""
        trainer = self.trainer
        trainer.epoch = state["epoch"]
        trainer.step = state["step"]
        trainer.batch = state.get("batch", 0)
        trainer.epoch_sums = state.get("epoch_sums", {})
        trainer.epoch_batches = state.get("epoch_batches", 0)
        trainer.nan_skipped = state.get("nan_skipped", 0)
        trainer.train_time = state["train_time"]
        trainer.train_samples = state["train_samples"]
        for cb in trainer.callbacks:
            cb.load_state_dict(state["callbacks"].get(type(cb).__name__, {}))
        trainer.data.load_state_dict(state["data"])
        self.epoch_start = state["data"]
        set_rng_state(state["rng"])

    def restore_own_state(self, processes: list[dict[str, Any]]) -> None:
        """DDP: from a checkpoint of as many processes, each takes its own running sums and
        generators back."""
        trainer = self.trainer
        if not trainer.ddp or len(processes) != trainer.ddp.world:
            return
        own = processes[trainer.ddp.rank]
        trainer.epoch_sums = {
            key: torch.tensor(value, device=trainer.device)
            for key, value in own["epoch_sums"].items()
        }
        if trainer.ddp.rank:  # rank 0's own are "rng" above, taken after its callbacks drew
            set_rng_state(own["rng"])
        self.own_state_resumed = True

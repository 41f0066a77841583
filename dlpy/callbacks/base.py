"""The hooks a callback may implement, and the comparison that callbacks watching a metric share."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the type hints alone: a callback module need not import torch or the loop
    import torch

    from dlpy.trainer import Trainer


class Callback:
    """A no-op for every hook the trainer calls: a callback overrides only the hooks it needs.

    The trainer calls each hook with itself first; what a callback may read or call on it is
    listed in docs/callbacks.md. A callback's state_dict() goes into every checkpoint (under the
    class's name), so a resumed run continues its callbacks where they were.
    """

    # In data-parallel training, only rank 0 writes files; a callback that decides sets False.
    main_process_only = True

    def on_fit_start(self, trainer: "Trainer") -> None:
        """Before the first step, of a resumed run too (trainer.step says where it goes on)."""

    def on_epoch_start(self, trainer: "Trainer") -> None:
        """Before an epoch's first batch (trainer.batch > 0: a resumed epoch goes on)."""

    def on_train_batch_end(
        self, trainer: "Trainer", logs: dict[str, "torch.Tensor"], batch_size: int
    ) -> None:
        """After each step: the step's numbers, still on the device (reading one waits for it)."""

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        """After an epoch and its evaluation: `metrics` holds the val/ numbers."""

    def on_interrupt(self, trainer: "Trainer") -> None:
        """SIGINT or SIGTERM: the run stops after this step."""

    def on_fit_end(self, trainer: "Trainer") -> None:
        """However fit ends: finished, or early (interrupted, diverged, failed)."""

    def on_test_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        """After the final evaluation, of the best checkpoint's weights."""

    def state_dict(self) -> dict[str, Any]:
        """What the checkpoint keeps of this callback, for a resumed run to go on with."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """What a checkpoint kept; {} where it kept nothing of this callback (an older run)."""


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than min_delta; the first value always does."""
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta

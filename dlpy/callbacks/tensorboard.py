from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.tensorboard import SummaryWriter

from dlpy.callbacks.base import Callback
from dlpy.registry import CALLBACKS

if TYPE_CHECKING:
    import torch

    from dlpy.trainer import Trainer


def learning_rates(optimizers: list["torch.optim.Optimizer"]) -> dict[str, float]:
    """Each optimizer's current rate (its first parameter group's): `lr`, or `lr/0`, `lr/1`."""
    name = "lr/{}" if len(optimizers) > 1 else "lr"
    return {name.format(i): opt.param_groups[0]["lr"] for i, opt in enumerate(optimizers)}


@CALLBACKS.register("tensorboard")
class TensorBoard(Callback):
    """Scalars, example images and, at the end, hparams (the flat config with the final metrics).

    Events go into the run folder itself, so `tensorboard --logdir outputs` lists every run and
    the HPARAMS tab compares the runs of a sweep side by side.
    """

    def __init__(self, run_dir: str | Path, hparams: dict[str, object]) -> None:
        self.run_dir = str(run_dir)
        self.hparams = hparams
        self.writer = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        # On resume, drop events logged after the checkpoint so curves continue without doubles.
        self.writer = SummaryWriter(self.run_dir, purge_step=trainer.step or None)

    def on_train_batch_end(
        self, trainer: "Trainer", logs: dict[str, "torch.Tensor"], batch_size: int
    ) -> None:
        if trainer.step % trainer.log_every_n_steps == 0:
            for key, value in {**logs, **learning_rates(trainer.optimizers)}.items():
                self.writer.add_scalar(key, float(value), trainer.step)

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, trainer.step)
        self.writer.add_scalar("epoch", trainer.epoch, trainer.step)
        for key, value in trainer.examples().items():
            if key.startswith("text/"):
                self.writer.add_text(key, value, trainer.step)
            else:
                self.writer.add_image(key, value, trainer.step)
        self.writer.flush()

    def on_fit_end(self, trainer: "Trainer") -> None:
        self.writer.flush()  # a run that stopped early keeps its curves up to the last step

    def on_test_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        if self.writer is None:
            self.writer = SummaryWriter(self.run_dir)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, trainer.step)
        self.writer.add_hparams(
            self.hparams,
            {f"hparam/{k}": v for k, v in metrics.items()},
            run_name=".",
            global_step=trainer.step,
        )
        self.writer.close()

"""TensorBoard: the scalars, the task's example images and texts, and the HPARAMS session.

HPARAMS across a logdir of many runs (`tensorboard --logdir outputs`). TensorBoard's hparams
plugin (tensorboard/plugins/hparams/backend_context.py, `experiment_from_metadata`) takes the
first `_hparams_/experiment` summary it finds, if any run has one, and shows only that one's
hyperparameters and metrics: with one per run (torch's `add_hparams` writes one), a logdir of
several families showed a single run's columns and left the others' metrics blank. Without any
such summary it computes the experiment itself, from every run: the union of the hyperparameters
of every `_hparams_/session_start_info` (those whose values differ first) and, as metrics, every
scalar tag in a session's run folder or below it. That is what dlpy relies on, so that a run
added later, of any family, brings its own columns: no experiment summary at all, and each run's
session in its own subfolder <run>/hparams/, whose only scalars are the task's
`headline_metrics` (`test/acc`; a VAE's `test/neg_elbo`; an agent's `eval/return_mean`). The
training curves in <run>/ itself are no session's metrics, so the HPARAMS columns stay the few
that compare runs (the dashboard shows the first five hyperparameters and metrics until others
are ticked).
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING

from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
from torch.utils.tensorboard import SummaryWriter

from dlpy.callbacks.loggers import Logger, Scalars
from dlpy.hparams import HParam
from dlpy.registry import LOGGERS

if TYPE_CHECKING:
    from dlpy.trainer import Trainer

SESSION = "hparams"  # the subfolder of a run that holds its HPARAMS session


@LOGGERS.register("tensorboard")
class TensorBoard(Logger):
    """Scalars, example images and texts; at the end, the HPARAMS session (the hyperparameters
    of dlpy.hparams with the task's headline metrics).

    Events go into the run folder itself, so `tensorboard --logdir outputs` lists every run and
    the HPARAMS tab compares every run of every family side by side.
    """

    def __init__(self, run_dir: str | Path, hparams: dict[str, HParam]) -> None:
        super().__init__(hparams)
        self.run_dir = str(run_dir)
        self.writer = None
        self.headline: tuple[str, ...] = ()  # the task's headline metrics, known once it trains

    def on_fit_start(self, trainer: "Trainer") -> None:
        super().on_fit_start(trainer)
        self.headline = trainer.task.headline_metrics
        # On resume, drop events logged after the checkpoint so curves continue without doubles.
        self.writer = SummaryWriter(self.run_dir, purge_step=trainer.step or None)

    def log_scalars(self, scalars: Scalars, step: int) -> None:
        if self.writer is None:  # tested without training
            self.writer = SummaryWriter(self.run_dir)
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)

    def on_epoch_end(self, trainer: "Trainer", metrics: Scalars) -> None:
        super().on_epoch_end(trainer, metrics)
        for key, value in trainer.examples().items():
            if key.startswith("text/"):
                self.writer.add_text(key, value, trainer.step)
            else:
                self.writer.add_image(key, value, trainer.step)
        self.writer.flush()

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.writer is not None:  # a run that stopped early keeps its curves up to its step
            self.writer.flush()

    def on_test_end(self, trainer: "Trainer", metrics: Scalars) -> None:
        # The final val/ numbers (the best checkpoint's) stay out of the curves, where they would
        # be a second point at the last epoch's step; metrics.json holds them.
        final = {key: value for key, value in metrics.items() if not key.startswith("val/")}
        self.log_scalars(final, trainer.step)
        self.log_hparams(self.hparams, metrics, trainer.step)
        self.close()

    def log_hparams(self, hparams: dict[str, HParam], metrics: Scalars, step: int) -> None:
        """The session: start (the hyperparameters), the headline metrics, end (success)."""
        session = SummaryWriter(str(Path(self.run_dir) / SESSION))
        # trial_id names the session group: one per run, even where two runs share every value.
        start = summary_v2.hparams_pb(hparams, trial_id=self.run_dir)
        session.file_writer.add_summary(start, step)
        for key in self.headline:
            if key in metrics:
                session.add_scalar(key, metrics[key], step)
        session.file_writer.add_summary(session_end(api_pb2.STATUS_SUCCESS), step)
        session.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def session_end(status: int) -> summary_pb2.Summary:
    """`_hparams_/session_end_info`, as tensorboard.plugins.hparams.summary.session_end_pb writes
    it (that module needs TensorFlow; this is its body on TensorBoard's own protos)."""
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=metadata.SESSION_END_INFO_TAG,
        metadata=metadata.create_summary_metadata(data),
        tensor=metadata.NULL_TENSOR,
    )
    return summary

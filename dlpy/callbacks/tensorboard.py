from torch.utils.tensorboard import SummaryWriter

from dlpy import callbacks


class TensorBoard(callbacks.Callback):
    """Scalars, example images and, at the end, hparams (the flat config with the final metrics).

    Events go into the run folder itself, so `tensorboard --logdir outputs` lists every run and
    the HPARAMS tab compares the runs of a sweep side by side.
    """

    def __init__(self, run_dir, hparams):
        self.run_dir, self.hparams = str(run_dir), hparams
        self.writer = None

    def on_fit_start(self, trainer):
        # On resume, drop events logged after the checkpoint so curves continue without doubles.
        self.writer = SummaryWriter(self.run_dir, purge_step=trainer.step or None)

    def on_train_batch_end(self, trainer, logs, batch_size):
        if trainer.step % trainer.log_every_n_steps == 0:
            for key, value in {**logs, **trainer.learning_rates()}.items():
                self.writer.add_scalar(key, float(value), trainer.step)

    def on_epoch_end(self, trainer, metrics):
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, trainer.step)
        self.writer.add_scalar("epoch", trainer.epoch, trainer.step)
        for key, value in trainer.examples().items():
            if key.startswith("text/"):
                self.writer.add_text(key, value, trainer.step)
            else:
                self.writer.add_image(key, value, trainer.step)
        self.writer.flush()

    def on_fit_end(self, trainer):
        self.writer.flush()  # a run that stopped early keeps its curves up to the last step

    def on_test_end(self, trainer, metrics):
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

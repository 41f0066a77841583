"""The outer loop: epochs and steps, evaluation cadence, callbacks, stopping.

The inner step belongs to the task (dlpy/tasks), which calls back into `Trainer.backward`. Beside
the loop, one concern per module: precision.py (device, autocast, loss scaling, the optimizer
step), accumulate.py (several batches per optimizer step), ema.py (the weights' moving average),
checkpointing.py, distributed.py (data parallelism) and signals.py (SIGINT, SIGTERM).
"""

import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from torch.optim import Optimizer

from dlpy import accumulate as acc
from dlpy import distributed, optim
from dlpy.callbacks.base import Callback
from dlpy.checkpointing import Checkpointer
from dlpy.data.base import Batch, DataSet
from dlpy.distributed import STRATEGIES
from dlpy.ema import EMA, averaged
from dlpy.precision import (
    CHOICES,
    CLIP_MODES,
    Precision,
    resolve_device,
    resolve_precision,
    set_kernels,
    stop_on_nan,
)
from dlpy.schema import Count, NonNegative, Range, Size
from dlpy.signals import StopRequest, handling, interrupted
from dlpy.tasks.base import Task
from dlpy.trainer_options import ON_NAN, check_options

log = logging.getLogger(__name__)


class Trainer:
    """Runs a task's training steps epoch by epoch, evaluates after each, calls the callbacks."""

    def __init__(
        self,
        *,
        max_epochs: NonNegative = 10,
        max_steps: NonNegative = 0,
        device: str = "auto",
        precision: Literal[CHOICES] = "fp32",
        grad_clip: NonNegative = 0.0,
        grad_clip_value: NonNegative = 0.0,
        grad_clip_mode: Literal[CLIP_MODES] = "global",
        monitor: str = "val/acc",
        mode: Literal["min", "max"] = "max",
        log_every_n_steps: Count = 50,
        val_every_n_epochs: Size = 1,
        accumulate: Size = 1,
        ema: Annotated[float, Range(ge=0, lt=1)] = 0.0,
        limit_train_batches: NonNegative = 0,
        limit_eval_batches: NonNegative = 0,
        deterministic: bool = False,
        threads: Count = 0,
        compile: bool = False,
        channels_last: bool = False,
        strategy: Literal[STRATEGIES] = "single",
        on_nan: Literal[ON_NAN] = "stop",
        resume: str | None = None,
        overwrite: bool = False,
        scheduler: Callable | None = None,
        callbacks: Iterable[Callback] = (),
        config: dict | None = None,
    ) -> None:
        check_options(Trainer.__init__, locals())  # the arguments as given: nothing else is bound
        # trainer.strategy=ddp: this process of the data-parallel group, on its own device
        self.ddp = distributed.DataParallel(resolve_device(device)) if strategy == "ddp" else None
        self.device = self.ddp.device if self.ddp else resolve_device(device)
        self.is_main = self.ddp is None or self.ddp.rank == 0  # only the main process writes files
        precision = resolve_precision(precision, self.device)
        clipping = {"grad_clip_value": grad_clip_value, "grad_clip_mode": grad_clip_mode}
        self.precision = Precision(self.device, precision, grad_clip, channels_last, **clipping)
        self.checkpointer = Checkpointer(self, config, resume)
        self.max_epochs = max_epochs
        self.max_steps = max_steps
        self.monitor = monitor
        self.mode = mode
        self.log_every_n_steps = max(1, log_every_n_steps)
        self.val_every_n_epochs = val_every_n_epochs
        self.accumulate = accumulate  # batches per optimizer step (dlpy/accumulate.py)
        self.ema_decay = ema  # > 0: evaluate a moving average of the weights (dlpy/ema.py)
        self.limit_train_batches = limit_train_batches
        self.limit_eval_batches = limit_eval_batches
        self.compile = compile
        self.scheduler_factory = scheduler
        self.callbacks = list(callbacks)
        self.on_nan = on_nan
        # trainer.overwrite: whether the run may replace another in its folder, which dlpy decides
        # before the Trainer exists (dlpy/run_folder.py); kept to say how the run was started
        self.overwrite = overwrite
        set_kernels(deterministic, threads)

    def setup(self, task: Task, data: DataSet) -> None:
        """Attach the task and data, move the networks to the device, start the counters at 0."""
        self.task = task
        self.data = data
        task.trainer = self
        task.attach(data)
        self.precision.place(task)
        if self.ddp:
            self.ddp.shard(data)
        limit = self.limit_train_batches or float("inf")
        self.batches_per_epoch = min(data.steps_per_epoch(), limit)  # trainer.accumulate's too
        self.steps_per_epoch = -(-self.batches_per_epoch // self.accumulate)  # optimizer steps
        self.optimizers = []  # the task's, and one schedule each (None where none is configured)
        self.schedulers = []
        self.epoch = 0
        self.step = 0
        self.batch = 0  # batches done in the current epoch: a checkpoint may stop inside one
        self.window = acc.WHOLE  # the batch's place in its optimizer step (trainer.accumulate)
        self.validated = False  # whether this epoch ended with a validation (val_every_n_epochs)
        self.ema = None
        self.epoch_sums = {}  # the epoch's logged numbers, summed on the device
        self.epoch_batches = 0
        self.nan_skipped = 0
        self.flags = []  # this step's (optimizer index, NaN flag on the device), one per backward
        self.unsettled = []  # the steps whose flags have not been read back (`settle`)
        self.should_stop = False
        self.stop_request = StopRequest()  # SIGINT or SIGTERM noted, to stop after the step
        self.train_time = 0.0
        self.train_samples = 0.0
        self.first_step_at = None  # wall-clock time of this process's first training step
        self.examples_cache = None  # (step, the task's example images at that step)
        self.saved = None  # the last checkpoint this trainer wrote

    def fit(self, task: Task, data: DataSet) -> None:
        """Train until max_epochs or max_steps, an early stop, a NaN loss or a signal."""
        self.setup(task, data)
        self.optimizers = task.configure_optimizers()
        acc.check_task(self.accumulate, len(self.optimizers), bool(self.ddp), type(task).__name__)
        self.ema = EMA(task.net, self.ema_decay) if self.ema_decay else None
        task.prepare(data)  # a GAN's FID features: after the checks, before any bar or step
        steps = optim.total_steps(self.max_epochs, self.max_steps, self.steps_per_epoch)
        plan = partial(optim.plan, self.scheduler_factory, steps, self.steps_per_epoch)
        self.schedulers = [plan(optimizer) for optimizer in self.optimizers]
        self.checkpointer.resume()  # trainer.resume, if set
        if self.ddp:  # a resumed process goes on with its own generators, else they are reseeded
            self.ddp.wrap(
                task, len(self.optimizers), reseed=not self.checkpointer.own_state_resumed
            )
        if self.compile:
            for module in task.children():
                module.compile()
        self._call("on_fit_start")
        try:
            with handling(self.stop_request):  # SIGINT and SIGTERM wait for the end of the step
                while not self.finished():
                    self.run_epoch()
                    # every val_every_n_epochs epochs, and always after the last
                    self.validated = self.epoch % self.val_every_n_epochs == 0 or self.finished()
                    metrics = self.evaluate("val") if self.validated else {}
                    optim.step_plateaus(self.schedulers, metrics.get(self.monitor))
                    self.checkpointer.gather_own_states()
                    self._call("on_epoch_end", metrics)
                    self.stop_if_requested()
        finally:  # however fit ended: the progress bar closes, the events reach the disk
            self._call("on_fit_end")

    def finished(self) -> bool:
        steps_done = self.max_steps and self.step >= self.max_steps
        epochs_done = self.max_epochs and self.epoch >= self.max_epochs
        return bool(self.should_stop or steps_done or epochs_done)

    def run_epoch(self) -> None:
        self.task.train()
        if not self.batch:  # a new epoch; a resumed one goes on from its checkpoint's batch
            self.epoch_sums = {}
            self.epoch_batches = 0
            self.checkpointer.start_epoch()
        self._call("on_epoch_start")
        tick = time.perf_counter()
        batches = self.checkpointer.skip_done(self.task.batches(self.data), self.batch)
        batches = islice(batches, int(self.batches_per_epoch) - self.batch)
        for window in acc.windows(batches, self.accumulate):
            self.first_step_at = self.first_step_at or time.time()
            logs, samples = self.train_window(window)
            if self.ema:
                self.ema.update()
            self.step += 1
            self.batch += len(window)
            self.train_samples += samples
            self.unsettled.append((self.epoch, self.step, logs, self.flags))
            if self.step % self.log_every_n_steps == 0:
                self.settle()
            self._call("on_train_batch_end", logs, samples)
            now = time.perf_counter()
            self.train_time += now - tick  # so far: a checkpoint inside the epoch has it
            tick = now
            self.stop_if_requested()
            if self.should_stop or (self.max_steps and self.step >= self.max_steps):
                break  # a task may stop the run mid-epoch (an agent that solved its environment)
        self.settle()
        if self.ddp:  # the epoch's numbers over every process's batches
            self.epoch_sums = self.ddp.mean(self.epoch_sums)
        self.epoch += 1
        self.batch = 0

    def stop_if_requested(self) -> None:
        """After SIGINT or SIGTERM: the callbacks save a checkpoint at this step, then it stops."""
        signum = self.stop_request.agreed(self.ddp)
        if signum is None:
            return
        self.settle()
        self.checkpointer.gather_own_states()
        self.saved = None
        self._call("on_interrupt")  # the checkpoint callback saves here (rank 0's, under DDP)
        raise interrupted(signum, self.epoch, self.step, self.saved)

    def settle(self) -> None:
        """Read back the NaN flags of the steps since the last read, in one sync, and count each
        step's numbers into the epoch's sums, or act on its non-finite loss (trainer.on_nan).

        The trainer settles every log_every_n_steps steps, at the end of an epoch, before a
        checkpoint and whenever the epoch's means are read: a GPU never waits within a step.
        """
        unsettled, self.unsettled = self.unsettled, []
        flags = [flag for *_, step_flags in unsettled for _, flag in step_flags]
        bad = iter(torch.stack(flags).tolist() if flags else ())
        for epoch, step, logs, step_flags in unsettled:
            nonfinite = [index for index, _ in step_flags if next(bad)]
            if nonfinite:  # no optimizer stepped on it: stop (Diverged), or skip and count it
                self.nan_skipped += 1
                stop_on_nan(self.on_nan, logs, nonfinite, (epoch, step, self.nan_skipped))
                continue
            self.epoch_batches += 1
            for key, value in logs.items():  # the sums stay on the device
                self.epoch_sums[key] = self.epoch_sums.get(key, 0) + value

    def train_window(self, window: list[Batch]) -> tuple[dict[str, Any], int]:
        """One optimizer step over the window's batches (one, without trainer.accumulate): the
        mean of their logged numbers, and the samples they held (DDP: every process's)."""
        self.flags = []
        sizes = [len(batch[0]) for batch in window]
        logs = []
        for index, batch in enumerate(window):
            self.window = acc.Window(index, len(window), sizes[index] / sum(sizes))
            logs.append(self.training_step(self.precision.move(batch)))
        self.window = acc.WHOLE
        return acc.mean_logs(logs), sum(sizes) * (self.ddp.world if self.ddp else 1)

    def training_step(self, batch: Batch) -> dict[str, Any]:
        """The task's step; under DDP through the wrapper, which back-propagates after it."""
        if self.ddp:
            return self.ddp.training_step(batch, self.step, self.precision.autocast, self._backward)
        with self.precision.autocast():
            return self.task.training_step(batch, self.step)

    def backward(self, loss: torch.Tensor, optimizer: Optimizer) -> None:
        """Backward pass and optimizer step with loss scaling, clipping and the schedule."""
        if self.ddp and self.ddp.defer(loss, optimizer):  # inside the DDP forward: run after it
            return
        self._backward(loss, optimizer)

    def _backward(self, loss: torch.Tensor, optimizer: Optimizer) -> None:
        """A NaN or infinite loss never reaches the weights; under DDP all processes skip, or
        none (one that went on would wait for the others' gradients forever)."""
        index = self.optimizers.index(optimizer)
        agree = self.ddp and partial(self.ddp.agree_to_skip, signum=self.stop_request.signum)
        window = self.window
        acc.one_backward_each(window, len(self.flags), type(self.task).__name__)
        earlier = None if window.first else self.flags[-1][1]  # a bad micro-batch spoils the step
        bad = self.precision.step(loss, optimizer, self.schedulers[index], agree, window, earlier)
        self.flags.append((index, bad))

    def epoch_means(self) -> dict[str, float]:
        self.settle()
        batches = max(1, self.epoch_batches)
        return {key: float(total) / batches for key, total in self.epoch_sums.items()}

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, split: str) -> dict[str, float]:
        """The task's numbers on `split`; under DDP over every process's shard, weighted by size."""
        batches = map(self.precision.move, self.data.eval_batches(split))
        if self.limit_eval_batches:
            batches = islice(batches, self.limit_eval_batches)
        seen = []  # the samples of each batch evaluated here: its weight in the mean over processes
        batches = (seen.append(len(batch[0])) or batch for batch in batches)
        with averaged(self.ema, self.task), self.precision.evaluating(self.task):
            metrics = self.task.evaluate(batches, split)
        return self.ddp.weighted_mean(metrics, sum(seen)) if self.ddp else metrics

    def test(self, checkpoint: Path | None = None) -> dict[str, float]:
        """Evaluate the given checkpoint's weights (else the current ones) on val and test, once."""
        self.checkpointer.load_weights(checkpoint)
        metrics = {**self.evaluate("val"), **self.evaluate("test")}
        self._call("on_test_end", metrics)
        return metrics

    def examples(self) -> dict[str, torch.Tensor]:
        """The task's example images at this step, computed once however many callbacks ask."""
        if self.examples_cache is None or self.examples_cache[0] != self.step:
            with averaged(self.ema, self.task), self.precision.evaluating(self.task):
                self.examples_cache = (self.step, self.task.examples(self.data))
        return self.examples_cache[1]

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            if self.is_main or not callback.main_process_only:
                getattr(callback, hook)(self, *args)

    def save(self, path: str | Path) -> None:
        """A checkpoint of everything needed to continue exactly (dlpy/checkpointing.py)."""
        self.settle()
        self.checkpointer.save(path)
        self.saved = Path(path)  # written: what an interrupted run may say it saved

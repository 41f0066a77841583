"""The outer loop: device, precision, epochs and steps, evaluation, callbacks, checkpoints, resume.

The inner step belongs to the task (dlpy/tasks); it calls back into `Trainer.backward`, so
loss scaling, gradient clipping, optimizer and schedule steps live here and only here.
"""

import logging
import os
import random
import signal
import time
from contextlib import nullcontext
from itertools import islice

import numpy as np
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from dlpy import distributed
from dlpy.data.base import Shuffled
from dlpy.errors import Diverged, DlpyError, Interrupted
from dlpy.io import load_checkpoint, resolve_checkpoint, save_checkpoint
from dlpy.signals import StopRequest, handling

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
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
ON_NAN = (
    "stop",
    "skip",
)  # a NaN or infinite loss: stop the run (status diverged), or skip the batch and count it


def resolve_device(name):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DlpyError(
            f"trainer.device: unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        raise DlpyError(f"trainer.device={name}: no such device is available on this machine")
    return device


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator


def rng_state():
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1]), *np_state[2:]),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state):
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(
        self,
        *,
        max_epochs=10,
        max_steps=0,
        device="auto",
        precision="fp32",
        grad_clip=0.0,
        monitor="val/acc",
        mode="max",
        log_every_n_steps=50,
        limit_train_batches=0,
        limit_eval_batches=0,
        deterministic=False,
        threads=0,
        compile=False,
        channels_last=False,
        strategy="single",
        on_nan="stop",
        resume=None,
        scheduler=None,
        callbacks=(),
        config=None,
    ):
        for key, value in {
            "max_epochs": max_epochs,
            "max_steps": max_steps,
            "grad_clip": grad_clip,
            "limit_train_batches": limit_train_batches,
            "limit_eval_batches": limit_eval_batches,
            "log_every_n_steps": log_every_n_steps,
            "threads": threads,
        }.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise DlpyError(f"trainer.{key} must be a number >= 0, got {value!r}")
        if not max_epochs and not max_steps:
            raise DlpyError(
                "trainer.max_epochs and trainer.max_steps are both 0: the run would never train"
            )
        if precision not in PRECISIONS:
            raise DlpyError(
                f"trainer.precision: unknown {precision!r}; known: {', '.join(PRECISIONS)}"
            )
        if mode not in ("min", "max"):
            raise DlpyError(f"trainer.mode must be 'min' or 'max', got {mode!r}")
        if on_nan not in ON_NAN:
            raise DlpyError(f"trainer.on_nan must be {' or '.join(ON_NAN)}, got {on_nan!r}")
        if strategy not in distributed.STRATEGIES:
            raise DlpyError(
                f"trainer.strategy: unknown {strategy!r}; known: {', '.join(distributed.STRATEGIES)}"
            )
        if strategy == "single" and distributed.world_size() > 1:
            raise DlpyError(
                f"torchrun started {distributed.world_size()} processes, but trainer.strategy is single: "
                "add trainer.strategy=ddp"
            )
        self.device = resolve_device(device)
        self.ddp = (
            None  # the data-parallel process group (trainer.strategy=ddp), see dlpy/distributed.py
        )
        if strategy == "ddp":
            if self.device.type == "cuda" and self.device.index is None:  # one GPU per process
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            self.ddp = distributed.DataParallel(self.device)
        self.is_main = self.ddp is None or self.ddp.rank == 0  # only the main process writes files
        self._deferred = (
            None  # a DDP step's (loss, optimizer), back-propagated after the wrapped forward
        )
        self._agreed_signal = (
            None  # DDP: the signal the processes agreed on in this step's backward (0: none)
        )
        self._own_states = (
            None  # DDP: each process's random state and running sums, gathered for a checkpoint
        )
        self._own_state_resumed = False
        self.dtype = PRECISIONS[precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.max_epochs, self.max_steps, self.grad_clip = max_epochs, max_steps, grad_clip
        self.monitor, self.mode, self.log_every_n_steps = monitor, mode, max(1, log_every_n_steps)
        self.limit_train_batches, self.limit_eval_batches = limit_train_batches, limit_eval_batches
        self.compile, self.channels_last, self.resume = compile, channels_last, resume
        self.scheduler_factory, self.callbacks, self.config = scheduler, list(callbacks), config
        self.on_nan, self.nan_skipped, self.nonfinite = on_nan, 0, []
        self.epoch = self.step = 0
        self.batch = 0  # batches done in the current epoch: a checkpoint may stop inside one
        self.epoch_sums, self.epoch_batches = {}, 0
        self.should_stop = False
        self.train_time = self.train_samples = 0.0
        self.first_step_at = None  # wall-clock time of this process's first training step
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = not deterministic
        if threads:  # CPU threads of torch's kernels; 0 keeps torch's default (one per core)
            torch.set_num_threads(int(threads))

    # -- the loop ------------------------------------------------------------------------------

    def setup(self, task, data):
        """Attach the task and data and move the task's networks to the device."""
        self.task, self.data = task, data
        task.trainer = self
        task.attach(data)
        task.to(
            self.device,
            memory_format=torch.channels_last if self.channels_last else torch.preserve_format,
        )
        if self.ddp:
            if not hasattr(data, "shard"):
                raise DlpyError(
                    f"trainer.strategy=ddp shards tensor data sets; {type(data).__name__} is not one"
                )
            data.shard(self.ddp.rank, self.ddp.world)

    def fit(self, task, data):
        self.setup(task, data)
        self.optimizers = task.configure_optimizers()
        self.steps_per_epoch = min(data.steps_per_epoch(), self.limit_train_batches or float("inf"))
        total_steps = min(
            self.max_steps or float("inf"), self.max_epochs * self.steps_per_epoch or float("inf")
        )
        self.schedulers = [
            self.scheduler_factory(
                opt, total_steps=int(total_steps), steps_per_epoch=self.steps_per_epoch
            )
            if self.scheduler_factory
            else None
            for opt in self.optimizers
        ]
        if self.resume:
            self.load(resolve_checkpoint(self.resume))
        self.step_module = self.ddp.wrap(task) if self.ddp else None
        if (
            self.ddp and not self._own_state_resumed
        ):  # a resumed process goes on with the generators it saved
            self.ddp.decorrelate_rng()
        if self.compile:
            for module in task.children():
                module.compile()
        self._call("on_fit_start")
        self.stop_request = StopRequest()
        try:
            with handling(self.stop_request):  # SIGINT and SIGTERM wait for the end of the step
                while not self.finished():
                    self.run_epoch()
                    metrics = self.validate()
                    for scheduler in self.schedulers:
                        if isinstance(scheduler, ReduceLROnPlateau) and self.monitor in metrics:
                            scheduler.step(
                                metrics[self.monitor]
                            )  # plateau advances per evaluation, not per step
                    self.gather_own_states()
                    self._call("on_epoch_end", metrics)
                    self.stop_if_requested()
        finally:
            self._call(
                "on_fit_end"
            )  # however fit ended: the progress bar closes, the events reach the disk

    def finished(self):
        return (
            self.should_stop
            or (self.max_steps and self.step >= self.max_steps)
            or (self.max_epochs and self.epoch >= self.max_epochs)
        )

    def run_epoch(self):
        self.task.train()
        if not self.batch:  # a new epoch; a resumed one goes on from its checkpoint's batch
            self.epoch_sums, self.epoch_batches = {}, 0
            self.epoch_start = self.data.state_dict()
        self._call("on_epoch_start")
        tick = time.perf_counter()
        for batch in islice(self.batches_from(self.batch), int(self.steps_per_epoch) - self.batch):
            self.first_step_at = self.first_step_at or time.time()
            batch = self._prepare(batch)
            logs = self.training_step(batch)
            self.step += 1
            self.batch += 1
            samples = len(batch[0]) * (
                self.ddp.world if self.ddp else 1
            )  # DDP: every process's slices
            self.train_samples += samples
            if self.nonfinite:
                self.nan_step(logs)  # stops the run, or skips this batch (trainer.on_nan)
            else:
                self.epoch_batches += 1
                for key, value in logs.items():  # running sums stay on the device: no sync per step
                    self.epoch_sums[key] = self.epoch_sums.get(key, 0) + value
            self._call("on_train_batch_end", logs, samples)
            now = time.perf_counter()
            self.train_time, tick = (
                self.train_time + now - tick,
                now,
            )  # so far: a checkpoint inside the epoch has it
            self.stop_if_requested()
            if self.should_stop or (self.max_steps and self.step >= self.max_steps):
                break  # a task may stop the run mid-epoch (an agent that solved its environment)
        if self.ddp:  # the epoch's numbers over every process's batches
            self.epoch_sums = self.ddp.mean(self.epoch_sums)
        self.epoch += 1
        self.batch = 0

    def batches_from(self, start):
        """This epoch's batches from batch `start` on, for an epoch resumed from a checkpoint saved inside it.

        Shuffled data were reset to their state at the start of the epoch (see `state_dict`): replaying
        the first `start` batches gives the same order and augmentations as the epoch that was cut.
        An environment has no such order to find again; its task just plays on.
        """
        batches = self.task.batches(self.data)
        if start and isinstance(self.data, Shuffled):
            rng = rng_state()
            for _ in islice(batches, start):
                pass
            set_rng_state(rng)  # drawing the replayed batches must not move the global generators
        return batches

    def stop_if_requested(self):
        """After SIGINT or SIGTERM: the callbacks save a checkpoint at this step, then the run stops."""
        signum = self.stop_request.signum
        if self.ddp:  # every process stops at the same step, whichever of them got the signal
            if self._agreed_signal is None:  # no backward pass this step agreed on it already
                [self._agreed_signal] = self.ddp.agree(signum or 0)
            signum, self._agreed_signal = self._agreed_signal or None, None
        if signum is None:
            return
        self.gather_own_states()
        self._call("on_interrupt")
        raise Interrupted(
            signum,
            f"interrupted by {signal.Signals(signum).name} at epoch {self.epoch + 1}, "
            f"step {self.step}",
            step=self.step,
        )

    def nan_step(self, logs):
        """A loss of this step was NaN or infinite and no optimizer stepped on it: stop, or count the batch skipped.

        The message names the logged terms that are not finite (`loss/d = nan`), else the optimizer.
        """
        named = [
            f"{key} = {value.item() if value.numel() == 1 else 'nan/inf'}"
            for key, value in logs.items()
            if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all()
        ]
        losses = ", ".join(named) or f"the loss of optimizer {self.nonfinite[0]}"
        self.nonfinite = []
        if self.on_nan == "stop":
            raise Diverged(
                f"diverged: {losses} at epoch {self.epoch + 1}, step {self.step} (trainer.on_nan=stop)"
            )
        self.nan_skipped += 1
        log.warning(
            "skipped step %d: %s (trainer.on_nan=skip; %d skipped so far)",
            self.step,
            losses,
            self.nan_skipped,
        )

    def training_step(self, batch):
        """The task's step; under DDP through the wrapper, with the task's backward pass run after it returns.

        DistributedDataParallel arms its gradient averaging when its forward returns, so the loss the
        task hands to `backward` inside the step is kept and back-propagated here, after the forward.
        """
        if not self.ddp:
            with self.autocast():
                return self.task.training_step(batch, self.step)
        self._deferred = []
        try:
            with self.autocast():
                logs = self.step_module(batch, self.step)
            for loss, optimizer in self._deferred:
                self._backward(loss, optimizer)
        finally:
            self._deferred = None
        return logs

    def epoch_means(self):
        return {
            key: float(total) / max(1, self.epoch_batches) for key, total in self.epoch_sums.items()
        }

    def backward(self, loss, optimizer):
        """Backward pass and optimizer step with loss scaling, clipping and the schedule.

        Gradients are cleared first: a GAN's generator loss also reaches the discriminator's
        parameters, and those gradients must not leak into the discriminator's next step.
        """
        if self._deferred is not None:  # inside a DDP forward: back-propagate after it
            if self._deferred:
                raise DlpyError(
                    "trainer.strategy=ddp: the task took two optimizer steps in one training step"
                )
            self._deferred.append((loss, optimizer))
            return
        self._backward(loss, optimizer)

    def _backward(self, loss, optimizer):
        optimizer.zero_grad(set_to_none=True)
        # A NaN or infinite loss never reaches the weights. Checking costs one device sync per step; the fp16
        # loss scaler's own skipping of steps with overflowing gradients is something else and goes on below.
        nonfinite = not torch.isfinite(loss.detach()).all()
        if self.ddp:  # all processes skip, or none: one that went on would wait for the others' gradients forever
            # the same all-reduce agrees on a signal for stop_if_requested: one collective per step, not two
            nonfinite, self._agreed_signal = self.ddp.agree(
                nonfinite, self.stop_request.signum or 0
            )
        if nonfinite:
            self.nonfinite.append(self.optimizers.index(optimizer))
            return
        with torch.autocast(self.device.type, enabled=False):
            self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        scheduler = self.schedulers[self.optimizers.index(optimizer)]
        if scheduler is not None and not isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step()

    def evaluate(self, split):
        batches = map(self._prepare, self.data.eval_batches(split))
        if self.limit_eval_batches:
            batches = islice(batches, self.limit_eval_batches)
        seen = []  # the samples of each batch this process evaluated: its weight in the mean over processes
        batches = (seen.append(len(batch[0])) or batch for batch in batches)
        self.task.eval()
        with torch.inference_mode(), self.autocast():
            metrics = self.task.evaluate(batches, split)
        self.task.train()
        return self.ddp.weighted_mean(metrics, sum(seen)) if self.ddp else metrics

    def validate(self):
        return self.evaluate("val")

    def test(self, checkpoint=None):
        """Evaluate the given checkpoint's weights (else the current ones) on val and test, once."""
        if checkpoint is not None and self.is_main and checkpoint.exists():
            self.task.load_state_dict(load_checkpoint(checkpoint, self.device)["task"])
        if (
            self.ddp
        ):  # the checkpoint is rank 0's file: its weights reach the others over the process group
            self.ddp.broadcast_state(self.task)
        metrics = {**self.validate(), **self.evaluate("test")}
        self._call("on_test_end", metrics)
        return metrics

    def examples(self):
        """The task's example images at the current step, computed once however many callbacks ask."""
        if getattr(self, "_examples_step", None) != self.step:
            self.task.eval()
            with torch.inference_mode(), self.autocast():
                self._examples = self.task.examples(self.data)
            self.task.train()
            self._examples_step = self.step
        return self._examples

    # -- mechanics ---------------------------------------------------------------------------

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _prepare(self, batch):
        return tuple(self._move(t) for t in batch)

    def _move(self, t):
        if self.channels_last and t.ndim == 4:
            return t.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        return t.to(self.device, non_blocking=True)

    def learning_rates(self):
        return {
            f"lr/{i}" if len(self.optimizers) > 1 else "lr": opt.param_groups[0]["lr"]
            for i, opt in enumerate(self.optimizers)
        }

    def _call(self, hook, *args):
        for callback in self.callbacks:
            if self.is_main or not callback.main_process_only:
                getattr(callback, hook)(self, *args)

    # -- checkpoints: everything needed to continue exactly --------------------------------

    def state_dict(self):
        return {
            "task": self.task.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers],
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "nan_skipped": self.nan_skipped,
            "epoch_sums": {key: float(value) for key, value in self.epoch_sums.items()},
            "epoch_batches": self.epoch_batches,
            "train_time": self.train_time,
            "train_samples": self.train_samples,
            "rng": rng_state(),
            # inside an epoch, shuffled data restart from the epoch's start and replay its first batches
            "data": self.epoch_start
            if self.batch and isinstance(self.data, Shuffled)
            else self.data.state_dict(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
            "config": self.config,
        } | ({"processes": self._own_states} if self._own_states else {})

    def gather_own_states(self):
        """DDP, before the callbacks may save a checkpoint: what differs between the processes, gathered for
        rank 0 to save beside its own, so a resumed run goes on exactly: each process's random generators
        (its own dropout masks and noise) and, inside an epoch, its running sums of the epoch's numbers."""
        if self.ddp:
            self._own_states = self.ddp.gather(
                {
                    "rng": rng_state(),
                    "epoch_sums": {key: float(value) for key, value in self.epoch_sums.items()},
                }
            )

    def save(self, path):
        """Write a checkpoint, unless the weights hold NaN or inf: the file then keeps its last good state."""
        state = self.state_dict()
        broken = [
            key
            for key, value in state["task"].items()
            if value.is_floating_point() and not value.isfinite().all()
        ]
        if broken:
            raise Diverged(
                f"diverged: the weights hold NaN or inf at epoch {self.epoch}, step {self.step} "
                f"({', '.join(broken[:3])}); {path} was not overwritten"
            )
        save_checkpoint(state, path)

    def load(self, path):
        state = load_checkpoint(path, self.device)
        if (
            TRAINING_STATE - state.keys()
        ):  # weights alone (the FID feature cache, say) cannot be resumed from
            raise DlpyError(
                f"checkpoint {path} holds weights but no training state to resume from "
                f"(no {', '.join(sorted(TRAINING_STATE - state.keys()))})"
            )
        try:
            self.task.load_state_dict(state["task"])
        except RuntimeError as err:
            was = (state.get("config") or {}).get("model", {}).get("name", "another model")
            raise DlpyError(
                f"checkpoint {path} was saved by {was} and does not fit this model: "
                f"{str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}"
            ) from None
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=False):
            opt.load_state_dict(opt_state)
        for scheduler, sched_state in zip(self.schedulers, state["schedulers"], strict=False):
            if scheduler is not None and sched_state is not None:
                # The plan's length comes from this run's config, so a resumed run may be longer
                # (trainer.max_epochs raised); its position and all else come from the checkpoint.
                plan = {k: v for k, v in scheduler.state_dict().items() if k in SCHEDULE_PLAN}
                scheduler.load_state_dict({**sched_state, **plan})
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.batch = state["epoch"], state["step"], state.get("batch", 0)
        self.epoch_sums, self.epoch_batches = (
            state.get("epoch_sums", {}),
            state.get("epoch_batches", 0),
        )
        self.nan_skipped = state.get("nan_skipped", 0)
        self.train_time, self.train_samples = state["train_time"], state["train_samples"]
        for cb in self.callbacks:
            cb.load_state_dict(state["callbacks"].get(type(cb).__name__, {}))
        self.data.load_state_dict(state["data"])
        self.epoch_start = state["data"]
        set_rng_state(state["rng"])
        processes = state.get("processes") or []
        if (
            self.ddp and len(processes) == self.ddp.world
        ):  # a checkpoint of as many processes: each takes its own
            own = processes[self.ddp.rank]
            self.epoch_sums = {
                key: torch.tensor(value, device=self.device)
                for key, value in own["epoch_sums"].items()
            }
            if (
                self.ddp.rank
            ):  # rank 0's own are "rng" above, taken after its callbacks had drawn from them
                set_rng_state(own["rng"])
            self._own_state_resumed = True
        log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.step)

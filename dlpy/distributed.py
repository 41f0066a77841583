"""Data-parallel training over the processes torchrun starts (trainer.strategy=ddp).

    torchrun --nproc_per_node=2 -m dlpy train trainer.strategy=ddp model=mlp

Every process holds the whole tensor data set (small data, as dlpy keeps it) and takes its slice
of each batch, so dataset.batch_size stays the global batch and a run sees the samples in the
order a single process would: N processes train the model one process trains, up to the order of
float sums. DistributedDataParallel averages the gradients; evaluations are sharded too and their
numbers averaged over the processes, weighted by the samples each one saw. Rank 0 alone writes
logs, checkpoints and the run folder.
"""

import atexit
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dlpy.errors import DlpyError, check_choice

if TYPE_CHECKING:  # torchrun's processes import this module before the job needs data or tasks
    from dlpy.data.base import Batch, DataSet
    from dlpy.tasks.base import Task

STRATEGIES = ("single", "ddp")


def world_size() -> int:
    """Processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def check_strategy(strategy: str) -> None:
    """trainer.strategy must be known, and ddp whenever torchrun started several processes."""
    check_choice("trainer.strategy", strategy, STRATEGIES)
    if strategy == "single" and world_size() > 1:
        raise DlpyError(
            f"torchrun started {world_size()} processes, but trainer.strategy is single: "
            "add trainer.strategy=ddp"
        )


def worker_args(args: list[str]) -> list[str]:
    """Hydra settings for a process of rank > 0: it reads the run folder rank 0 uses when that is
    known (a resumed run), else a throwaway one, and writes nothing there, so one run leaves one
    folder."""
    if rank() == 0:
        return []
    extra = [
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
        "hydra.job_logging.root.level=WARNING",
    ]
    if not any(a.startswith("hydra.run.dir=") for a in args):
        scratch = tempfile.mkdtemp(prefix=f"dlpy-rank{rank()}-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        extra.append(f"hydra.run.dir='{scratch}'")
    return extra


class TrainingStep(nn.Module):
    """The task's training step as a module's forward, which DistributedDataParallel can wrap whole.

    Wrapping the task rather than its networks keeps tasks unaware of DDP: a task calls its
    networks through methods (`net.encode`, `net.generator`) that a per-network wrapper would
    bypass, and a network called around DDP's forward has its gradients silently left
    unsynchronised.
    """

    def __init__(self, task: "Task") -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: "Batch", step: int) -> dict[str, Any]:
        return self.task.training_step(batch, step)


class DataParallel:
    """One process of a data-parallel run: its rank, its device, the process group, the wrapped
    training step and the collective operations that keep the processes in step."""

    def __init__(self, device: torch.device) -> None:
        if world_size() < 2 and "RANK" not in os.environ:
            raise DlpyError(
                "trainer.strategy=ddp runs under torchrun: torchrun --nproc_per_node=N -m dlpy "
                "train trainer.strategy=ddp ..."
            )
        if device.type == "cuda" and device.index is None:  # one GPU per process
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        self.device = device
        # NCCL between GPUs, gloo between CPUs; torchrun's environment says where rank 0 listens
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=timedelta(minutes=30))
            atexit.register(self.close)
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.module = None  # the task's training step inside DistributedDataParallel (`wrap`)
        self.deferred = None  # inside a step: its (loss, optimizer), back-propagated after it
        self.agreed_signal = None  # the signal this step's backward pass agreed on (0: none)

    def shard(self, data: "DataSet") -> None:
        """This process's slice of every batch (an environment refuses, naming itself)."""
        data.shard(self.rank, self.world)

    def wrap(self, task: "Task", optimizers: int, reseed: bool) -> None:
        """Wrap the task's step in DistributedDataParallel (which broadcasts rank 0's weights);
        `reseed`: give this process generators of its own (see decorrelate_rng)."""
        if optimizers != 1:
            raise DlpyError(
                f"trainer.strategy=ddp trains tasks with one optimizer; {type(task).__name__} has "
                f"{optimizers}: DistributedDataParallel averages gradients once per forward and "
                "backward, and its step takes a backward pass per optimizer"
            )
        if self.device.type == "cuda":  # batch statistics over the global batch, as one GPU's
            task = nn.SyncBatchNorm.convert_sync_batchnorm(task)
        ids = [self.device] if self.device.type == "cuda" else None
        self.module = DistributedDataParallel(TrainingStep(task), device_ids=ids)
        if reseed:
            self.decorrelate_rng()

    # -- one training step -----------------------------------------------------------------------

    def training_step(
        self,
        batch: "Batch",
        step: int,
        autocast: Callable[[], AbstractContextManager],
        backward: Callable[[torch.Tensor, torch.optim.Optimizer], None],
    ) -> dict[str, Any]:
        """The task's step through the wrapper, with its backward pass run after the forward.

        DistributedDataParallel arms its gradient averaging when its forward returns, so the loss
        the task hands to `Trainer.backward` inside the step is kept (`defer`) and back-propagated
        here, after the forward, outside autocast.
        """
        self.deferred = []
        try:
            with autocast():
                logs = self.module(batch, step)
            for loss, optimizer in self.deferred:
                backward(loss, optimizer)
        finally:
            self.deferred = None
        return logs

    def defer(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
        """Keep a backward pass asked for inside the wrapped forward; False outside one."""
        if self.deferred is None:
            return False
        if self.deferred:
            raise DlpyError(
                "trainer.strategy=ddp: the task took two optimizer steps in one training step"
            )
        self.deferred.append((loss, optimizer))
        return True

    def agree_to_skip(self, nonfinite: bool, signum: int | None) -> bool:
        """Whether any process's loss is NaN or infinite: all processes skip the step, or none (one
        that went on would wait for the others' gradients forever). The same all-reduce agrees on
        a signal for `agreed_stop`: one collective per step, not two."""
        nonfinite, signum = self.agree(nonfinite, signum or 0)
        self.agreed_signal = signum
        return bool(nonfinite)

    def agreed_stop(self, signum: int | None) -> int | None:
        """The signal any process got (None: none), so that every process stops at the same step,
        whichever of them got it."""
        if self.agreed_signal is None:  # no backward pass this step agreed on it already
            [self.agreed_signal] = self.agree(signum or 0)
        agreed = self.agreed_signal or None
        self.agreed_signal = None
        return agreed

    # -- collectives -----------------------------------------------------------------------------

    def mean(self, values: dict[str, Any]) -> dict[str, float]:
        """{key: tensor or number} averaged over the processes (all must pass the same keys)."""
        keys = sorted(values)
        stacked = torch.stack(
            [torch.as_tensor(values[k], dtype=torch.float64, device=self.device) for k in keys]
        )
        dist.all_reduce(stacked)
        return dict(zip(keys, (stacked / self.world).tolist(), strict=False))

    def agree(self, *values: int | bool) -> list[int]:
        """The largest of the processes' values for each of `values` (whole numbers or bools), so
        that all take the same decisions: to skip a step whose loss is NaN on one of them, to stop
        on a signal one of them got."""
        tensor = torch.tensor(
            [int(value) for value in values], dtype=torch.int64, device=self.device
        )
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def weighted_mean(self, metrics: dict[str, float], n: int) -> dict[str, float]:
        """An evaluation's numbers over all shards: each process's means weighted by its sample
        count.

        Exact for every per-sample mean (loss, accuracy, MAE, reconstruction per image); a process
        whose shard was empty contributes nothing.
        """
        everyone = self.gather((metrics, n))
        total = sum(count for _, count in everyone)
        if not total:
            return {}
        keys = sorted({key for numbers, _ in everyone for key in numbers})
        return {
            key: sum(numbers[key] * count for numbers, count in everyone if key in numbers) / total
            for key in keys
        }

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj` (what a checkpoint may hold: tensors, numbers, strings,
        containers), in rank order.

        It travels as torch.save's bytes: all_gather_object's own pickling fails on the
        generators' state tensors."""
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        everyone = [None] * self.world
        dist.all_gather_object(everyone, buffer.getvalue())
        return [
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True) for data in everyone
        ]

    def broadcast_state(self, module: nn.Module) -> None:
        """Rank 0's weights and buffers into every process (after rank 0 loaded a checkpoint)."""
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, 0)

    def decorrelate_rng(self) -> None:
        """Different dropout masks and noise in every process: each process's global generators
        are reseeded from the shared state plus its rank. The data's own shuffling generator stays
        the same everywhere."""
        torch.manual_seed(int(torch.randint(2**62, ())) + self.rank)

    def close(self) -> None:
        """At exit, once every process got here: a process that tore its group down while another
        still talked to it, or left it to the interpreter's shutdown, sometimes died in gloo's
        threads (SIGABRT). A process that failed alone does not wait (see leave_at_once)."""
        if dist.is_initialized():
            if not _leaving_at_once:
                dist.barrier()
            dist.destroy_process_group()


_leaving_at_once = False


def leave_at_once() -> None:
    """After an error that only this process met: at exit, leave the process group without
    waiting for the others. They may be inside a collective this process will never join, and
    would wait there until the group's timeout (30 minutes); torchrun stops them as soon as it
    sees this process exit with an error."""
    global _leaving_at_once
    _leaving_at_once = True

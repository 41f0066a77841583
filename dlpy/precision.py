"""Where the arithmetic runs and in what number format: the device, autocast, fp16 loss scaling.

`Precision.step` is the one place a loss becomes a weight update: the NaN guard, the backward
pass through the loss scaler, gradient clipping, the optimizer step and the schedule's step.
Tasks reach it through `Trainer.backward`, so no task touches GradScaler, clipping or devices.
"""

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from dlpy.accumulate import WHOLE, Window
from dlpy.data.base import Batch
from dlpy.errors import Diverged, DlpyError

log = logging.getLogger(__name__)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = (*PRECISIONS, "auto")  # auto: bf16 where the hardware runs it natively, else fp32
CLIP_MODES = ("global", "per_tensor")  # trainer.grad_clip_mode: Keras's global_clipnorm, clipnorm


def resolve_device(name: str) -> torch.device:
    """trainer.device: `auto` takes CUDA, else MPS, else the CPU; a named device must exist here."""
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


def native_bf16(device: torch.device) -> str | None:
    """What runs bf16 matmuls natively on `device` (AMX, AVX512-BF16, the GPU), or None.

    Without such units bf16 is emulated and no faster than fp32. torch's cpuinfo reads the CPU's
    flags on every OS; on the 2-core Zen 4 of docs/performance.md, bf16 autocast trains the
    default CNN about 2x faster than fp32.
    """
    if device.type == "cuda":
        return "this GPU" if torch.cuda.is_bf16_supported(including_emulation=False) else None
    if device.type != "cpu":
        return None
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "this CPU's AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "this CPU's AVX512-BF16"
    return None


def resolve_precision(name: str, device: torch.device) -> str:
    """trainer.precision=auto: bf16 autocast where the hardware runs it natively, else fp32."""
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


def set_kernels(deterministic: bool, threads: float) -> None:
    """Which kernels torch runs: reproducible ones (trainer.deterministic, slower) or the fastest
    cuDNN finds, on `threads` CPU threads (0 keeps torch's default, one per core)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not deterministic
    if threads:
        torch.set_num_threads(int(threads))


def nonfinite_terms(logs: dict[str, Any]) -> str:
    """The logged terms that are NaN or infinite, as `loss/d = nan, ...` ('' if none is)."""
    return ", ".join(
        f"{key} = {value.item() if value.numel() == 1 else 'nan/inf'}"
        for key, value in logs.items()
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all()
    )


def stop_on_nan(
    on_nan: str, logs: dict[str, Any], nonfinite: list[int], where: tuple[int, int, int]
) -> None:
    """trainer.on_nan after a non-finite loss at (epoch, step, skipped so far): `stop` raises
    Diverged naming the terms at fault (`loss/d = nan`), else the optimizer; `skip` warns."""
    epoch, step, skipped = where
    losses = nonfinite_terms(logs) or f"the loss of optimizer {nonfinite[0]}"
    if on_nan == "stop":
        raise Diverged(
            f"diverged: {losses} at epoch {epoch + 1}, step {step} (trainer.on_nan=stop)"
        )
    log.warning(
        "skipped step %d: %s (trainer.on_nan=skip; %d skipped so far)", step, losses, skipped
    )


class Precision:
    """trainer.precision on one device: fp32, or bf16 / fp16 autocast; fp16 adds loss scaling,
    since its small range would flush small gradients to zero. trainer.channels_last sets the
    memory layout of the networks and the image batches (NHWC: faster convolutions)."""

    def __init__(
        self,
        device: torch.device,
        precision: str,
        grad_clip: float,
        channels_last: bool,
        grad_clip_value: float = 0.0,
        grad_clip_mode: str = "global",
    ) -> None:
        self.device = device
        self.name = precision  # as resolved: fp32, bf16 or fp16, never auto
        self.dtype = PRECISIONS[precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.grad_clip = grad_clip  # > 0: the largest gradient norm, global or per tensor
        self.grad_clip_value = grad_clip_value  # > 0: the largest |gradient| of any element
        self.grad_clip_mode = grad_clip_mode
        self.channels_last = channels_last

    def place(self, module: nn.Module) -> None:
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        module.to(self.device, memory_format=layout)

    def move(self, batch: Batch) -> Batch:
        """The batch on the device, images (4-d tensors) in the networks' layout."""
        return tuple(self._move(t) for t in batch)

    def _move(self, t: torch.Tensor) -> torch.Tensor:
        if self.channels_last and t.ndim == 4:
            return t.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        return t.to(self.device, non_blocking=True)

    def autocast(self) -> AbstractContextManager:
        """The forward passes' context: mixed precision, or nothing in fp32."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @contextmanager
    def evaluating(self, module: nn.Module) -> Iterator[None]:
        """Evaluation mode, no autograd, autocast; training mode again after it."""
        module.eval()
        with torch.inference_mode(), self.autocast():
            yield
        module.train()

    def step(
        self,
        loss: torch.Tensor,
        optimizer: Optimizer,
        scheduler: LRScheduler | None,
        agree: Callable[[bool], bool] | None = None,
        window: Window = WHOLE,
        earlier: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Back-propagate `loss` (scaled), clip, step the optimizer, then its schedule. Returns
        whether the loss was NaN or infinite, a 0-d bool tensor on the device: that step left
        the weights alone (under DDP, `agree` makes every process skip when one does).

        With trainer.accumulate, `window` says where this micro-batch stands in its optimizer
        step (dlpy/accumulate.py): the gradients are cleared before its first micro-batch, the
        loss is scaled by the micro-batch's share of the window's samples (1/N for N equal
        batches), and the optimizer steps after the last. The flag carries the `earlier`
        micro-batches' flags: one non-finite micro-batch skips the whole step.

        No step waits for the device where the optimizer can skip a step itself: the fused
        kernels of Adam, AdamW and SGD (fused=True, dlpy's default) take GradScaler's
        `found_inf` flag and then leave the weights, the moments and the step count as they
        were. The trainer reads the flags back at logging steps (`Trainer.settle`). Other
        optimizers, and DDP, whose processes must agree, read the flag here: one sync a step.

        Gradients are cleared first: a GAN's generator loss also reaches the discriminator's
        parameters, and those gradients must not leak into the discriminator's next step. A
        skipped step still advances the schedule, which follows the trainer's step count.
        """
        if window.first:
            optimizer.zero_grad(set_to_none=True)
        finite = torch.isfinite(loss.detach())
        bad = (finite.all() if finite.ndim else finite).logical_not_()  # a 0-d loss needs no all()
        if earlier is not None:
            bad = bad.logical_or_(earlier)
        on_device = agree is None and fused(optimizer)
        if not on_device and (agree(bool(bad)) if agree else bool(bad)):  # the one sync
            if window.last:
                advance(scheduler)
            return bad.new_ones(())
        self.backward(window.scale(loss))
        if not window.last:
            return bad
        if self.grad_clip or self.grad_clip_value:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            params = [p for group in optimizer.param_groups for p in group["params"]]
            clip(params, self.grad_clip, self.grad_clip_value, self.grad_clip_mode)
        if self.scaler.is_enabled():
            # fp16: the scaler skips a step whose gradients hold an inf or NaN (as a NaN loss's
            # do), on the device for a fused optimizer, and backs the scale off
            self.scaler.step(optimizer)
            self.scaler.update()
        elif on_device:
            skip_if(optimizer, bad)
        else:
            optimizer.step()
        advance(scheduler)
        return bad

    def backward(self, loss: torch.Tensor) -> None:
        if self.dtype is None:
            loss.backward()
        else:  # the backward pass outside autocast, as torch.amp's recipe runs it
            with torch.autocast(self.device.type, enabled=False):
                self.scaler.scale(loss).backward()

    def state_dict(self) -> dict[str, Any]:
        """The loss scale and its growth tracker: a resumed fp16 run goes on with the same."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scaler.load_state_dict(state)


def clip(params: list[torch.Tensor], max_norm: float, max_value: float, mode: str) -> None:
    """Clip the gradients in place: each element to [-max_value, max_value] first (when > 0),
    then the norm (when > 0), of all gradients together (`global`) or of each tensor alone.

    Keras's optimizers name the three: `clipvalue`, `global_clipnorm`, and `clipnorm`, which
    "individually clips the gradient of each weight so that its norm is no higher than this
    value" (keras.optimizers.Optimizer). No step reads a value back: the norms stay on the device.
    """
    if max_value:
        torch.nn.utils.clip_grad_value_(params, max_value)
    if not max_norm:
        return
    if mode == "global":
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    # tf.clip_by_norm's scale, t * clip_norm / max(l2norm(t), clip_norm): 1 below the bound
    norms = torch._foreach_norm(grads)
    torch._foreach_mul_(grads, [max_norm / n.clamp(min=max_norm) for n in norms])


def fused(optimizer: Optimizer) -> bool:
    """Whether every parameter group steps with fused kernels, which take a found_inf flag (a
    checkpoint from before fused=True brings its groups' own setting back on resume)."""
    supported = getattr(optimizer, "_step_supports_amp_scaling", False)
    return supported and all(group.get("fused") for group in optimizer.param_groups)


def skip_if(optimizer: Optimizer, bad: torch.Tensor) -> None:
    """A fused optimizer's step, which its kernels skip on the device when `bad` is set: the
    flag GradScaler hands them for overflowing fp16 gradients (torch/amp/grad_scaler.py)."""
    optimizer.found_inf = bad.float()
    optimizer.grad_scale = None
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf, optimizer.grad_scale


def advance(scheduler: LRScheduler | None) -> None:
    if scheduler is not None and not isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step()  # a plateau steps per evaluation instead (`Trainer.fit`)

"""An exponential moving average of the weights (trainer.ema = its decay, e.g. 0.999).

After every optimizer step, W_ema <- decay * W_ema + (1 - decay) * W: the average of the recent
weights evaluates better than the latest ones (Polyak & Juditsky 1992; timm's ModelEmaV3; the
generator of a GAN). torch.optim.swa_utils keeps the averaged copy (`AveragedModel`, which also
averages the buffers, BatchNorm's running statistics) and the update (`get_ema_multi_avg_fn`, one
foreach lerp over all the weights). `AveragedModel.update_parameters` itself reads its counter
back to the host twice a call (`bool(n_averaged == 0)`, `n_averaged > 0`), which on a GPU waits
for the step; dlpy's step never waits (tests/test_step_sync.py), so `update` applies the same
function to the same tensors without those reads. The average starts from the weights the run
starts from.

Validation, the final test, the example images and `dlpy eval`, `predict` and `export` use the
averaged weights; checkpoints hold both, so a resumed run averages on exactly.
"""

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

log = logging.getLogger(__name__)
PREFIX = "module."  # AveragedModel's state_dict keys: the averaged network's, under module.


class EMA:
    """The moving average of one network's weights and buffers."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        log.info(
            "trainer.ema=%g: val, test and the examples use the weights' moving average", decay
        )
        self.decay = decay
        self.averaged = AveragedModel(
            net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
        )
        self.averaged.requires_grad_(False)
        pairs = list(zip(self.tensors(self.averaged.module), self.tensors(net), strict=True))
        # one foreach lerp per device and float type, as AveragedModel groups them
        self.floats = {}
        for a, w in pairs:
            if a.is_floating_point():
                averaged, current = self.floats.setdefault((a.device, a.dtype), ([], []))
                averaged.append(a)
                current.append(w)
        # BatchNorm's num_batches_tracked: a count, not averaged but copied
        self.counts = [(a, w) for a, w in pairs if not a.is_floating_point()]

    @staticmethod
    def tensors(net: nn.Module) -> list[torch.Tensor]:
        """The weights and buffers, in AveragedModel's order (use_buffers=True), detached."""
        return [t.detach() for t in (*net.parameters(), *net.buffers())]

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average toward the network's current weights, on the device."""
        for averaged, current in self.floats.values():
            self.averaged.multi_avg_fn(averaged, current, self.averaged.n_averaged)
        for a, w in self.counts:
            a.copy_(w)
        self.averaged.n_averaged += 1

    @contextmanager
    def applied(self, task: nn.Module) -> Iterator[None]:
        """The task's network is the averaged one inside the block (no copy of the weights)."""
        net = task.net
        task.net = self.averaged.module
        try:
            yield
        finally:
            task.net = net

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)


def averaged(ema: EMA | None, task: nn.Module) -> AbstractContextManager:
    """Evaluation's weights: the moving average with trainer.ema, else the trained ones."""
    return ema.applied(task) if ema else nullcontext()


def evaluated_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A checkpoint's task weights as evaluation uses them: its network's averaged weights where
    the run kept an average (trainer.ema), else the trained ones."""
    weights = dict(state["task"])
    for key, value in (state.get("ema") or {}).items():
        if key.startswith(PREFIX):
            weights[f"net.{key[len(PREFIX) :]}"] = value
    return weights

"""The task contract: the inner step of one model family, which the Trainer runs its loop around."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dlpy.data.base import Batch, DataSet
from dlpy.data.text import ReviewData
from dlpy.errors import check_number

if TYPE_CHECKING:  # the trainer imports the tasks' base class; at run time a task needs no import
    from dlpy.trainer import Trainer

Logs = dict[str, Any]  # namespaced numbers and pictures: train/loss, val/acc, images/samples
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class Task(nn.Module):
    """The inner step of one model family; the Trainer runs the outer loop around it.

    A task holds its networks and an optimizer factory. The trainer calls, in order:
    `attach(data)`, `configure_optimizers()`, `prepare(data)`, then per epoch `batches(data)` and
    `training_step(batch, step)` for each batch, then `evaluate(batches, split)`. A training
    step hands its losses to `self.trainer.backward(loss, optimizer)`, which owns precision,
    clipping and stepping. Steps and evaluations return plain dicts with namespaced keys
    (`train/loss`, `val/acc`); tasks never write files or log.

    A subclass implements `training_step` and `evaluate`; one whose networks do not all share
    one optimizer (a GAN) also overrides `configure_optimizers`.
    """

    net: nn.Module  # the task's network: a subclass sets it in __init__
    # The names of configure_optimizers' optimizers, in its order, for their rates (lr/<name>);
    # none: each is named after its class (lr/adam).
    optimizer_names: tuple[str, ...] = ()
    # The final numbers that compare this family's runs (TensorBoard's HPARAMS columns).
    headline_metrics: tuple[str, ...] = ("test/loss",)
    unit = "samples"  # what a batch's rows are, for the throughput the epoch lines print
    # The pixel scaling its loss assumes (dataset.scaling, dlpy/data/vision.py); None: any.
    scaling: str | None = None
    # Whether one training step on a few samples rehearses it before training (dlpy/shapes.py):
    # not where a batch is played, not read.
    probed = True

    def __init__(self, optimizer: OptimizerFactory) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.optimizer: torch.optim.Optimizer | None = None  # set by configure_optimizers
        self.trainer: Trainer | None = None  # set by Trainer.setup

    def attach(self, data: DataSet) -> None:
        """Take what the networks need from the data before training; nothing by default."""

    def probe_batch(self, batch: Batch) -> Batch:
        """The shape probe's batch (dlpy/shapes.py) from the first few samples of the data's
        first batch, in the form this task's training_step takes: the same, by default."""
        return batch

    def prepare(self, data: DataSet) -> None:
        """Work that training's evaluations need, done by `Trainer.fit` once its options are
        checked and before the first step (a GAN's FID features); nothing by default."""

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimizer over every parameter of the network (a GAN has two)."""
        self.optimizer = self.optimizer_factory(self.net.parameters())
        return [self.optimizer]

    def batches(self, data: DataSet) -> Iterator[Batch]:
        """One epoch's batches: the data's own by default (an agent plays its environment)."""
        return data.train_batches()

    def training_step(self, batch: Batch, step: int) -> Logs:
        raise NotImplementedError(f"{type(self).__name__} must define training_step")

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must define evaluate")

    def summary(self) -> dict[str, float]:
        """The final numbers besides the evaluation (an agent's env steps); none by default."""
        return {}

    def examples(self, data: DataSet, n: int = 64) -> dict[str, Any]:
        """Pictures worth a look ({"images/<name>": uint8 CHW tensor}), n in the main grid."""
        return {}


def l1_penalty(net: nn.Module, weight: float) -> torch.Tensor | float:
    """weight * the sum of |w| over the weight matrices and kernels (not biases or norms).

    Keras's `kernel_regularizer=l1(...)`, as Chollet 4.4 uses it; 0 when the weight is 0.
    """
    if not weight:
        return 0.0
    return weight * sum(p.abs().sum() for p in net.parameters() if p.ndim > 1)


def kernels(net: nn.Module) -> list[nn.Parameter]:
    """The weights of the dense and convolution layers: what Keras's kernel_regularizer covers
    (no biases, norms, embeddings or recurrent weights)."""
    layers = (nn.Linear, nn.modules.conv._ConvNd)  # _ConvNd: every Conv and ConvTranspose
    return [m.weight for m in net.modules() if isinstance(m, layers)]


def l2_penalty(net: nn.Module, weight: float) -> torch.Tensor | float:
    """weight * the sum of w^2 over the dense and convolution kernels: Keras's `l2(weight)`.

    Atienza's `kernel_regularizer=l2(0.001)` (ch. 1) adds 0.001 * sum(w^2) per layer to the loss
    (keras.regularizers.L2: `l2 * ops.sum(ops.square(x))`), whose gradient is 2 * 0.001 * w. It
    is not torch's weight_decay=0.001, which adds 0.001 * w to the gradient (the gradient of
    0.0005 * sum(w^2)) on every parameter, nor AdamW's decoupled decay (Loshchilov & Hutter,
    2019), which bypasses Adam's scaling. 0 when the weight is 0.
    """
    if not weight:
        return 0.0
    return weight * sum(w.square().sum() for w in kernels(net))


def check_penalties(l1: float, l2: float) -> None:
    """model.task.l1 and l2 are weights of the loss: finite and >= 0."""
    check_number("model.task.l1", l1)
    check_number("model.task.l2", l2)


def with_penalties(
    loss: torch.Tensor, net: nn.Module, l1: float = 0.0, l2: float = 0.0
) -> torch.Tensor:
    """The loss plus the L1 and L2 penalties; the loss itself when both weights are 0 (no extra
    op and backward node at every step)."""
    if l1:
        loss = loss + l1_penalty(net, l1)
    if l2:
        loss = loss + l2_penalty(net, l2)
    return loss


def attach_vectors(net: nn.Module, data: DataSet) -> None:
    """Pretrained word vectors of the data (dataset.glove) into the network's embedding."""
    if isinstance(data, ReviewData) and data.vectors is not None:
        net.load_vectors(data.vectors)

from collections.abc import Iterable

import torch.nn.functional as F
from torch import nn

from dlpy.data.base import Batch, DataSet
from dlpy.registry import TASKS
from dlpy.schema import NonNegative
from dlpy.tasks.base import (
    Logs,
    OptimizerFactory,
    Task,
    attach_vectors,
    check_penalties,
    with_penalties,
)


@TASKS.register("regression")
class Regression(Task):
    """Mean squared error on one number per sample; reports MSE and MAE (and a naive forecast's
    MAE where the data gives one: Chollet 6.3's common-sense baseline)."""

    headline_metrics = ("test/mae",)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        l1: NonNegative = 0.0,
        l2: NonNegative = 0.0,
    ) -> None:
        super().__init__(optimizer)
        check_penalties(l1, l2)
        self.net = net
        self.l1 = l1  # Keras's l1(...) on every weight matrix and kernel
        self.l2 = l2  # Keras's l2(...) on the dense and convolution kernels

    def attach(self, data: DataSet) -> None:
        attach_vectors(self.net, data)

    def training_step(self, batch: Batch, step: int) -> Logs:
        x, y, *_ = batch
        pred = self.net(x).squeeze(-1)
        loss = F.mse_loss(pred, y)
        self.trainer.backward(with_penalties(loss, self.net, self.l1, self.l2), self.optimizer)
        return {"train/loss": loss.detach(), "train/mae": (pred.detach() - y).abs().mean()}

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        sums = {"loss": 0.0, "mae": 0.0, "naive_mae": 0.0}
        n = 0
        for x, y, *naive in batches:
            pred = self.net(x).float().squeeze(-1)
            sums["loss"] += F.mse_loss(pred, y, reduction="sum")
            sums["mae"] += (pred - y).abs().sum()
            # the data's baseline forecast (Jena: the temperature 24 h earlier), beside the model's
            if naive:
                sums["naive_mae"] += (naive[0] - y).abs().sum()
            n += len(y)
        if not n:
            return {}
        return {
            f"{split}/{key}": float(total / n)
            for key, total in sums.items()
            if key != "naive_mae" or naive
        }

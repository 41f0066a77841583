import torch.nn.functional as F

from dlpy.registry import TASKS
from dlpy.tasks.base import Task, attach_vectors


@TASKS.register("regression")
class Regression(Task):
    """Mean squared error on one number per sample; reports MSE and MAE (and a naive forecast's MAE if the data gives one)."""

    def __init__(self, net, optimizer, l1=0.0):
        super().__init__(optimizer)
        self.net, self.l1 = net, l1

    def configure_optimizers(self):
        self.optimizer = self.optimizer_factory(self.net.parameters())
        return [self.optimizer]

    def attach(self, data):
        attach_vectors(self.net, data)

    def training_step(self, batch, step):
        x, y, *_ = batch
        pred = self.net(x).squeeze(-1)
        loss = F.mse_loss(pred, y)
        penalty = (
            self.l1 * sum(p.abs().sum() for p in self.net.parameters() if p.ndim > 1)
            if self.l1
            else 0
        )
        self.trainer.backward(loss + penalty, self.optimizer)
        return {"train/loss": loss.detach(), "train/mae": (pred.detach() - y).abs().mean()}

    def evaluate(self, batches, split):
        sums, n = {"loss": 0.0, "mae": 0.0, "naive_mae": 0.0}, 0
        for x, y, *naive in batches:
            pred = self.net(x).float().squeeze(-1)
            sums["loss"] += F.mse_loss(pred, y, reduction="sum")
            sums["mae"] += (pred - y).abs().sum()
            if naive:  # the data's baseline forecast (Jena: the temperature 24 h earlier), beside the model's
                sums["naive_mae"] += (naive[0] - y).abs().sum()
            n += len(y)
        if not n:
            return {}
        return {
            f"{split}/{key}": float(total / n)
            for key, total in sums.items()
            if key != "naive_mae" or naive
        }

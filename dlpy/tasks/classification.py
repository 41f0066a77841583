from collections.abc import Iterable

import torch.nn.functional as F
from torch import nn

from dlpy.data import checks
from dlpy.data.base import Batch, DataSet
from dlpy.data.vision import ImageData
from dlpy.plots import labelled_grid
from dlpy.registry import TASKS
from dlpy.schema import NonNegative, Probability
from dlpy.tasks.base import (
    Logs,
    OptimizerFactory,
    Task,
    attach_vectors,
    check_penalties,
    with_penalties,
)


@TASKS.register("classification")
class Classification(Task):
    """Cross-entropy on class logits; reports loss and accuracy."""

    headline_metrics = ("test/acc", "test/loss")

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        label_smoothing: Probability = 0.0,
        l1: NonNegative = 0.0,
        l2: NonNegative = 0.0,
    ) -> None:
        super().__init__(optimizer)
        check_penalties(l1, l2)
        self.net = net
        self.label_smoothing = label_smoothing
        self.l1 = l1  # Keras's l1(...) on every weight matrix and kernel
        self.l2 = l2  # Keras's l2(...) on the dense and convolution kernels

    def attach(self, data: DataSet) -> None:
        # one class (dataset.classes=[k]) makes every label 0: cross-entropy is 0 and accuracy
        # 100% from the first step, a run that learns nothing and reports perfection
        names = getattr(data, "classes", None)
        if names is not None:
            checks.classes("dataset.classes", names, how=": keep two or more")
        attach_vectors(self.net, data)

    def training_step(self, batch: Batch, step: int) -> Logs:
        x, y = batch
        logits = self.net(x)
        # y is class indices, or (N, classes) probabilities after MixUp/CutMix: cross-entropy
        # takes both
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self.trainer.backward(with_penalties(loss, self.net, self.l1, self.l2), self.optimizer)
        label = y.argmax(1) if y.is_floating_point() else y  # a mixed image's larger share
        return {
            "train/loss": loss.detach(),
            "train/acc": (logits.argmax(1) == label).float().mean(),
        }

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        loss = 0.0
        correct = 0
        n = 0
        for x, y in batches:
            logits = self.net(x).float()
            loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
        if not n:
            return {}
        return {f"{split}/loss": float(loss / n), f"{split}/acc": float(correct / n)}

    def examples(self, data: DataSet, n: int = 32) -> Logs:
        """The first validation (else test) images with their predicted labels: green right, red
        wrong with the true class under it. Text and series have no picture to draw."""
        if not isinstance(data, ImageData):
            return {}
        split = data.val if len(data.val) else data.test
        x = split.x[:n]
        y = split.y[:n]
        pred = self.net(data.normalize(x)).argmax(1)
        captions = [data.classes[int(p)] for p in pred]
        truths = [data.classes[int(t)] for t in y]
        right = (pred == y).tolist()
        return {"images/predictions": labelled_grid(x, captions, right, truths=truths)}

import torch.nn.functional as F

from dlpy.plots import labelled_grid
from dlpy.registry import TASKS
from dlpy.tasks.base import Task, attach_vectors


@TASKS.register("classification")
class Classification(Task):
    """Cross-entropy on class logits; reports loss and accuracy."""

    def __init__(self, net, optimizer, label_smoothing=0.0, l1=0.0):
        super().__init__(optimizer)
        self.net, self.label_smoothing, self.l1 = net, label_smoothing, l1

    def attach(self, data):
        attach_vectors(self.net, data)

    def configure_optimizers(self):
        self.optimizer = self.optimizer_factory(self.net.parameters())
        return [self.optimizer]

    def training_step(self, batch, step):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        penalty = (
            self.l1 * sum(p.abs().sum() for p in self.net.parameters() if p.ndim > 1)
            if self.l1
            else 0
        )
        self.trainer.backward(loss + penalty, self.optimizer)
        return {"train/loss": loss.detach(), "train/acc": (logits.argmax(1) == y).float().mean()}

    def evaluate(self, batches, split):
        loss, correct, n = 0.0, 0, 0
        for x, y in batches:
            logits = self.net(x).float()
            loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
        if not n:
            return {}
        return {f"{split}/loss": float(loss / n), f"{split}/acc": float(correct / n)}

    def examples(self, data, n=32):
        """The first validation (else test) images with their predicted labels: green right, red wrong."""
        if not hasattr(data, "to_uint8"):  # text and series have no picture to draw
            return {}
        split = data.val if len(data.val) else data.test
        x = split.x[:n]
        pred = self.net(data.normalize(x)).argmax(1)
        captions = [data.classes[int(p)] for p in pred]
        return {"images/predictions": labelled_grid(x, captions, (pred == split.y[:n]).tolist())}

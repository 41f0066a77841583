from torch import nn


class Task(nn.Module):
    """The inner step of one model family; the Trainer runs the outer loop around it.

    A task holds its networks and an optimizer factory. The trainer calls, in order:
    `configure_optimizers()`, then per epoch `batches(data)` and `training_step(batch, step)`
    for each batch, then `evaluate(batches, split)`. A training step hands its losses to
    `self.trainer.backward(loss, optimizer)`, which owns precision, clipping and stepping.
    Steps and evaluations return plain dicts with namespaced keys (`train/loss`, `val/acc`).
    """

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer_factory = optimizer
        self.trainer = None  # set by Trainer.fit

    def attach(self, data):
        """Take what the networks need from the data before training (pretrained word vectors); nothing by default."""

    def configure_optimizers(self):
        raise NotImplementedError

    def batches(self, data):
        return data.train_batches()

    def training_step(self, batch, step):
        raise NotImplementedError

    def evaluate(self, batches, split):
        raise NotImplementedError

    def summary(self):
        """Final numbers of the run besides its evaluation (an agent's episodes and env steps); none by default."""
        return {}

    def examples(self, data, n=64):
        """Images worth a look ({"images/<name>": uint8 CHW tensor}), n in the main grid; none by default."""
        return {}


def attach_vectors(net, data):
    """Pretrained word vectors of the data (dataset.glove) into the network's embedding."""
    vectors = getattr(data, "vectors", None)
    if vectors is not None:
        net.load_vectors(vectors)

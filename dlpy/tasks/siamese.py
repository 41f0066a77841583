"""Whether two images show the same class, from one encoder shared by both (Chollet 7.1.5).

Chollet's siamese LSTM ("Deep Learning with Python", 7.1.5) calls one layer instance on two
inputs: both branches use, and train, a single set of weights. Here the `siamese` network's
encoder embeds every image of a batch once, and each image is compared with two partners drawn
from the same batch, one of its own class and one of another (Koch et al., 2015, train on such
pairs): half the pairs match, and each embedding is the left branch of its own pairs and the right
branch of others', so the encoder's gradient sums both branches'. A held-out split is paired the
same way, over the whole split, from a generator seeded with `pair_seed` alone: every evaluation,
`dlpy eval` too, scores the same pairs.
"""

from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlpy.data.base import Batch, DataSet
from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError
from dlpy.models.multi import Siamese
from dlpy.plots import labelled_grid
from dlpy.registry import TASKS
from dlpy.schema import Count
from dlpy.tasks.base import Logs, OptimizerFactory, Task

GAP = 2  # white pixels between the two images of a pair in the pictures


def partners(labels: Tensor, u_same: Tensor, u_other: Tensor) -> tuple[Tensor, Tensor]:
    """For each sample, the index of a partner of its own class and one of another class, drawn
    uniformly with the uniform numbers u in [0, 1) given (one per sample each).

    The samples sorted by class put each class in one run of the order: a partner of the same
    class is another place of the sample's run (the sample itself only where its class has no
    other), one of another class a place outside it (the same-class partner where every sample
    shares one class). No n x n matrix: a test split of 10,000 is paired in a few vectors.
    """
    order = labels.argsort(stable=True)
    per_class = torch.bincount(labels)
    count = per_class[labels]
    start = (per_class.cumsum(0) - per_class)[labels]  # where the sample's class begins in order
    place = torch.empty_like(order)
    place[order] = torch.arange(len(labels), device=labels.device)
    rank = place - start
    step = 1 + (u_same * (count - 1)).long().clamp(max=(count - 2).clamp(min=0))
    step = torch.where(count > 1, step, 0)
    same = order[start + (rank + step) % count]
    outside = len(labels) - count
    k = (u_other * outside).long().clamp(max=(outside - 1).clamp(min=0))
    other = order[torch.where(k < start, k, k + count).clamp(max=len(labels) - 1)]
    return same, torch.where(outside > 0, other, same)


@TASKS.register("siamese")
class SiameseMatch(Task):
    """Same class or not, for pairs of images through one shared encoder (Chollet 7.1.5)."""

    headline_metrics = ("test/acc", "test/loss")

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory, pair_seed: Count = 0) -> None:
        super().__init__(optimizer)
        if not isinstance(net, Siamese):
            raise DlpyError(
                f"model.task.name=siamese trains a siamese network, not {type(net).__name__}"
            )
        self.net = net
        self.pair_seed = pair_seed  # which pairs the held-out splits are scored on

    def attach(self, data: DataSet) -> None:
        if not isinstance(data, ImageData):
            raise DlpyError(f"model.task.name=siamese pairs images, not {type(data).__name__}")
        if data.augmentation.mixes:
            raise DlpyError(
                "dataset.augment: MixUp and CutMix mix two images' labels; a pair is the same "
                "class or not: leave them out"
            )

    def batches(self, data: DataSet) -> Iterator[Batch]:
        """The data's batches, each image with the places of its two partners in the batch.

        The uniform numbers come from the data's generator, a whole batch's worth even for this
        process's part of it: data-parallel processes keep drawing the same numbers, and a
        checkpoint holds the generator, so a resumed epoch draws the pairs it would have.
        """
        for x, y in data.train_batches():
            u = torch.rand(2, data.batch_size, generator=data.generator, device=data.device)
            same, other = partners(y, u[0, : len(y)], u[1, : len(y)])
            yield x, y, same, other

    def probe_batch(self, batch: Batch) -> Batch:
        """The probe's few samples with partners among themselves: a pair's partners are places
        in its own batch, and the probe's is cut from the data's. Drawn as the held-out pairs are,
        so the run's generators draw what they would have."""
        x, y = batch
        return x, y, *self.held_out_pairs(y)

    def pairs(self, embeddings: Tensor, labels: Tensor, same: Tensor, other: Tensor):
        """(logits, targets) of every sample against both its partners: half the pairs match."""
        left = torch.cat([embeddings, embeddings])
        right = torch.cat([embeddings[same], embeddings[other]])
        targets = torch.cat([labels == labels[same], labels == labels[other]]).float()
        return self.net.compare(left, right).float(), targets

    def training_step(self, batch: Batch, step: int) -> Logs:
        x, y, same, other = batch
        logits, targets = self.pairs(self.net.encode(x), y, same, other)
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        self.trainer.backward(loss, self.optimizer)
        return {
            "train/loss": loss.detach(),
            "train/acc": ((logits > 0) == targets.bool()).float().mean(),
        }

    def held_out_pairs(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The evaluation's partners: from `pair_seed` alone, the same at every evaluation."""
        generator = torch.Generator(labels.device).manual_seed(self.pair_seed)
        u = torch.rand(2, len(labels), generator=generator, device=labels.device)
        return partners(labels, u[0], u[1])

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        """Accuracy and loss over the split's pairs; same_acc and different_acc are the two
        halves (matching pairs, and pairs of two classes)."""
        embeddings = []
        labels = []
        for x, y in batches:
            embeddings.append(self.net.encode(x).float())
            labels.append(y)
        if not labels:
            return {}
        labels = torch.cat(labels)
        logits, targets = self.pairs(torch.cat(embeddings), labels, *self.held_out_pairs(labels))
        right = ((logits > 0) == targets.bool()).float()
        n = len(labels)
        return {
            f"{split}/loss": float(F.binary_cross_entropy_with_logits(logits, targets)),
            f"{split}/acc": float(right.mean()),
            f"{split}/same_acc": float(right[:n].mean()),
            f"{split}/different_acc": float(right[n:].mean()),
        }

    def examples(self, data: DataSet, n: int = 16) -> Logs:
        """Pairs of the first validation (else test) images, each under the verdict and its
        probability: green where right, else red with the truth under it."""
        if not isinstance(data, ImageData):
            return {}
        split = data.val if len(data.val) else data.test
        x = split.x[: 4 * n]
        y = split.y[: 4 * n]
        same, other = self.held_out_pairs(y)
        half = n // 2
        left = torch.cat([torch.arange(half), torch.arange(half)]).to(y.device)
        right = torch.cat([same[:half], other[:half]])
        p = torch.sigmoid(self.net(data.normalize(x[left]), data.normalize(x[right])).float())
        truth = y[left] == y[right]
        verdict = p > 0.5
        gap = torch.full((*x.shape[:3], GAP), 255, dtype=x.dtype, device=x.device)[left]
        images = torch.cat([x[left], gap, x[right]], dim=3)
        captions = [
            f"same ({float(q):.2f})" if v else f"different ({1 - float(q):.2f})"
            for q, v in zip(p, verdict, strict=True)
        ]
        truths = ["same" if t else "different" for t in truth]
        cell = 3 * images.shape[-1]  # 28-pixel images grow three times, as a single image's do
        grid = labelled_grid(images, captions, (verdict == truth).tolist(), 4, cell, truths)
        return {"images/pairs": grid}

"""Training a pretrained body under a new head: feature extraction, then fine-tuning.

`model.mode=feature_extraction` trains the head alone on the frozen body (Chollet 5.3's frozen
conv_base); with the augmentation off, the body's features of the training and evaluation images
are computed once and each epoch trains the head alone. `model.mode=fine_tune` trains the head for
`head_epochs`, then the body's last `model.unfreeze` blocks too, at `body_lr_factor` times the
head's learning rate (fastai's `fine_tune` and its discriminative rates, Howard & Ruder 2018).
The phase follows from the epoch, so a run resumed in phase 2 goes on in phase 2.
"""

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from dlpy.data.base import Batch, DataSet
from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError, check_number
from dlpy.models.pretrained import Transfer
from dlpy.registry import TASKS
from dlpy.schema import Count, NonNegative, Probability
from dlpy.tasks.base import Logs, OptimizerFactory
from dlpy.tasks.classification import Classification

log = logging.getLogger(__name__)


@TASKS.register("transfer")
class TransferTask(Classification):
    """Cross-entropy for a pretrained body and a new head, in phases: head alone, then the body."""

    scaling = "standardize"  # the network undoes the data's (x - mean) / std before its own

    def __init__(
        self,
        net: Transfer,
        optimizer: OptimizerFactory,
        head_epochs: Count = 1,
        body_lr_factor: NonNegative = 0.1,
        cache: bool = True,
        label_smoothing: Probability = 0.0,
    ) -> None:
        if not isinstance(net, Transfer):
            raise DlpyError("model.task.name=transfer needs model=pretrained")
        check_number("model.task.head_epochs", head_epochs, integer=True)
        check_number("model.task.body_lr_factor", body_lr_factor)
        super().__init__(net, optimizer, label_smoothing=label_smoothing)
        self.head_epochs = head_epochs
        self.body_lr_factor = body_lr_factor
        self.cache = cache
        self.phase = 0  # none yet: the first epoch (or the resumed one) sets it
        self.features: dict[str, list[torch.Tensor]] = {}  # per split, of the frozen body
        self.cached = False  # this epoch's batches hold the body's features, not images

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimizer, two parameter groups: the head at the configured rate, the body at
        body_lr_factor times it. A frozen parameter gets no gradient, so no step moves it."""
        if self.net.mode == "fine_tune" and self.trainer.ddp:
            raise DlpyError("model.mode=fine_tune cannot run with trainer.strategy=ddp yet")
        probe = self.optimizer_factory([torch.zeros(1, requires_grad=True)])
        lr = probe.param_groups[0]["lr"]
        groups = [
            {"params": list(self.net.head.parameters()), "lr": lr},
            {"params": list(self.net.body.parameters()), "lr": lr * self.body_lr_factor},
        ]
        self.optimizer = self.optimizer_factory(groups)
        return [self.optimizer]

    def phase_of(self, epoch: int) -> int:
        return 2 if self.net.mode == "fine_tune" and epoch >= self.head_epochs else 1

    def enter_phase(self, phase: int) -> None:
        """Freeze what this phase does not train, and say what learns."""
        learning = self.net.freeze(phase)
        self.phase = phase
        self.features = {}  # the body may learn now: its cached features would be stale
        trainable = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.net.parameters() if not p.requires_grad)
        what = "the head" if phase == 1 else f"the head and the body's last {len(learning)} blocks"
        log.info(
            "phase %d (%s) from epoch %d: %s trainable parameters, %s frozen",
            phase,
            what,
            self.trainer.epoch + 1,
            f"{trainable:,}",
            f"{frozen:,}",
        )

    def batches(self, data: DataSet) -> Iterator[Batch]:
        """The epoch's batches: of the body's cached features while it is frozen and nothing is
        augmented, else of images."""
        phase = self.phase_of(self.trainer.epoch)
        if phase != self.phase:
            self.enter_phase(phase)
        self.cached = self.caching(data)
        if not self.cached:
            return data.train_batches()
        if "train" not in self.features:
            self.features["train"] = self.body_features(data)
        return self.feature_batches(data, self.features["train"][0])

    def caching(self, data: DataSet) -> bool:
        augmented = isinstance(data, ImageData) and bool(data.augmentation)
        return bool(
            self.cache and self.phase == 1 and isinstance(data, ImageData) and not augmented
        )

    def body_features(self, data: ImageData) -> list[torch.Tensor]:
        """The frozen body's features of every training image, once (in eval mode: fixed)."""
        parts = []
        self.net.eval()
        with torch.no_grad(), self.trainer.precision.autocast():
            for start in range(0, len(data.train), data.eval_batch_size):
                x = data.normalize(data.train.x[start : start + data.eval_batch_size])
                parts.append(self.net.features(x).float())
        self.train()
        return [torch.cat(parts)]

    def feature_batches(self, data: ImageData, features: torch.Tensor) -> Iterator[Batch]:
        """ImageData.train_batches' order (the same generator), with features for images."""
        for idx in data.shuffled_batches(len(data.train), data.batch_size):
            yield data.part(features[idx]), data.part(data.train.y[idx])

    def training_step(self, batch: Batch, step: int) -> Logs:
        x, y = batch
        logits = self.net.head(x) if self.cached else self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self.trainer.backward(loss, self.optimizer)
        return {"train/loss": loss.detach(), "train/acc": (logits.argmax(1) == y).float().mean()}

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        """Classification's numbers; while the body is frozen its features of each evaluation
        batch are kept, so a later evaluation runs the head alone."""
        keep = self.cache and self.phase == 1
        cached = self.features.get(split) if keep else None
        seen = []
        loss = 0.0
        correct = 0
        n = 0
        for i, (x, y) in enumerate(batches):
            features = cached[i] if cached is not None else self.net.features(x)
            seen.append(features)
            logits = self.net.head(features).float()
            loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
        if keep and cached is None:
            self.features[split] = seen
        if not n:
            return {}
        return {f"{split}/loss": float(loss / n), f"{split}/acc": float(correct / n)}

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """New weights (a resumed run, the best checkpoint): the cached features may be stale."""
        self.features = {}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

"""Several named heads on one network, each with its loss, weight, targets and metrics.

Chollet ("Deep Learning with Python", 7.1.3) trains one network to predict a person's age, income
and gender, each output with its own loss, and sums the losses with `loss_weights` so that no
loss drowns the others' gradients. Here each head's targets come from the data set's labels, as
they are or through a mapping (`from_labels`: the target of each class), so a coarse group of the
classes needs no new data set. Extra inputs (7.1.2, multi-input models) come from the labels the
same way: metadata known with the image, one-hot encoded.

Every number is namespaced by its head: `val/class/acc`, `test/group/loss`; `val/loss` is the
weighted total, the loss that is trained.
"""

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlpy import schema
from dlpy.data.base import Batch, DataSet
from dlpy.data.text import ReviewData
from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError
from dlpy.models.multi import MultiHead
from dlpy.plots import labelled_grid
from dlpy.registry import TASKS, check_kwargs
from dlpy.schema import Count, NonNegative, Probability
from dlpy.tasks.base import Logs, OptimizerFactory, Task, check_penalties, with_penalties

EMPTY = inspect.Parameter.empty  # an option without a default: the config must give it
Metric = Literal["acc", "top2", "top3", "top5"]  # top-k: the target among the k likeliest classes


@dataclass(frozen=True)
class Head:
    """One head's training: its loss and weight in the total, its targets, its metrics.

    `from_labels[c]` is the target of the samples of class c (none: the class itself); `names`
    the targets' names, for pictures and `dlpy eval`. A binary head has one logit and targets 0
    or 1 (Keras's sigmoid output with binary cross-entropy).
    """

    weight: NonNegative = 1.0
    loss: Literal["cross_entropy", "binary_cross_entropy"] = "cross_entropy"
    from_labels: list[Count] | None = None
    names: list[str] | None = None
    metrics: list[Metric] = ("acc",)
    label_smoothing: Probability = 0.0


@dataclass(frozen=True)
class Input:
    """An extra input of the network: `from_labels[c]` for the samples of class c, one-hot."""

    from_labels: list[Count]


def specs(cls: type, given: Any, key: str) -> dict[str, Any]:
    """The config's `{name: {option: value}}` as `cls` entries, each option checked by its
    declaration (dlpy/schema.py) with the full key in the message."""
    if not isinstance(given, dict):
        raise DlpyError(f"{key} must be a mapping of names to their options, got {given!r}")
    built = {}
    for name, entry in given.items():
        where = f"{key}.{name}"
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise DlpyError(f"{where} must be a mapping of options, got {entry!r}")
        check_kwargs(cls, entry, where, key=where)  # unknown options, and the declared ranges
        missing = [o for o, _, d in schema.declared(cls) if o not in entry and d is EMPTY]
        if missing:
            raise DlpyError(f"{where}.{missing[0]} is required")
        built[name] = cls(**entry)
    return built


def class_count(data: DataSet) -> int | None:
    """The classes of the data set's labels, where it has named classes; None otherwise."""
    if isinstance(data, ImageData):
        return len(data.classes)
    if isinstance(data, ReviewData):
        return 2
    return None


@TASKS.register("multi_output")
class MultiOutput(Task):
    """Named heads, each with its loss, weight and metrics (Chollet 7.1.3); extra inputs (7.1.2)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        heads: dict[str, dict],
        inputs: dict[str, dict] | None = None,
        l1: NonNegative = 0.0,
        l2: NonNegative = 0.0,
    ) -> None:
        super().__init__(optimizer)
        check_penalties(l1, l2)
        if not isinstance(net, MultiHead):
            raise DlpyError(
                "model.task.name=multi_output trains a multi_head network, not "
                f"{type(net).__name__}"
            )
        self.net = net
        self.l1 = l1
        self.l2 = l2
        self.heads: dict[str, Head] = specs(Head, heads, "model.task.heads")
        self.inputs: dict[str, Input] = specs(Input, inputs or {}, "model.task.inputs")
        same_names("heads", list(self.heads), list(net.heads))
        same_names("inputs", list(self.inputs), list(net.input_sizes))
        for name, head in self.heads.items():
            check_head(name, head, net.heads[name].out_features)
        for name, extra in self.inputs.items():
            width = net.input_sizes[name]
            if max(extra.from_labels, default=0) >= width:
                raise DlpyError(
                    f"model.task.inputs.{name}.from_labels holds {max(extra.from_labels)}, but "
                    f"model.inputs.{name} is {width} wide"
                )
        # The label -> target tables, on the task's device with the network (not saved: the
        # config holds them).
        self.tables = []  # the heads and inputs whose values are mapped from the labels
        for name, spec in [*self.heads.items(), *self.inputs.items()]:
            if spec.from_labels is not None:
                table = torch.tensor(spec.from_labels, dtype=torch.long)
                self.register_buffer(f"map_{name}", table, persistent=False)
                self.tables.append(name)
        self.headline_metrics = (
            *(
                f"test/{name}/{metric}"
                for name, head in self.heads.items()
                for metric in head.metrics
            ),
            "test/loss",
        )

    def attach(self, data: DataSet) -> None:
        """Every table maps every class of the data; MixUp and CutMix would mix the labels."""
        if isinstance(data, ImageData) and data.augmentation.mixes:
            raise DlpyError(
                "dataset.augment: MixUp and CutMix mix the labels, which multi_output maps to "
                "each head's targets: leave them out"
            )
        classes = class_count(data)
        if classes is None:
            return
        for key, spec in [
            *((f"heads.{n}", s) for n, s in self.heads.items()),
            *((f"inputs.{n}", s) for n, s in self.inputs.items()),
        ]:
            if spec.from_labels is not None and len(spec.from_labels) != classes:
                raise DlpyError(
                    f"model.task.{key}.from_labels has {len(spec.from_labels)} entries, but the "
                    f"data set has {classes} classes: give one target per class"
                )
        for name, head in self.heads.items():
            size = self.net.heads[name].out_features
            if head.from_labels is None and head.loss == "cross_entropy" and size != classes:
                raise DlpyError(
                    f"model.heads.{name} has {size} classes, but its targets are the data set's "
                    f"{classes} labels (or give model.task.heads.{name}.from_labels)"
                )

    def prepare(self, data: DataSet) -> None:
        """trainer.monitor must be a number this task reports, else best.pt would be any epoch."""
        reported = self.metric_names("val")
        if self.trainer.monitor not in reported:
            raise DlpyError(
                f"trainer.monitor is {self.trainer.monitor!r}, which multi_output does not report; "
                f"it reports {', '.join(reported)}"
            )

    def metric_names(self, split: str) -> list[str]:
        names = [f"{split}/loss"]
        for name, head in self.heads.items():
            names += [f"{split}/{name}/loss", *(f"{split}/{name}/{m}" for m in head.metrics)]
        return names

    # -- targets and extra inputs from the labels --------------------------------------------------

    def mapped(self, name: str, y: Tensor) -> Tensor:
        return getattr(self, f"map_{name}")[y] if name in self.tables else y

    def targets(self, y: Tensor) -> dict[str, Tensor]:
        return {name: self.mapped(name, y) for name in self.heads}

    def extra_inputs(self, y: Tensor) -> dict[str, Tensor]:
        """Each extra input, one-hot of the labels' mapped values (an embedding of a category
        into a dense layer is this one-hot times the layer's weights)."""
        widths = self.net.input_sizes
        return {name: F.one_hot(self.mapped(name, y), widths[name]).float() for name in self.inputs}

    def outputs(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Each head's logits, in float32: an autocast pass gives bf16."""
        return {k: v.float() for k, v in self.net(x, self.extra_inputs(y)).items()}

    # -- losses and metrics ------------------------------------------------------------------------

    def loss(self, name: str, logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        head = self.heads[name]
        if head.loss == "binary_cross_entropy":
            return F.binary_cross_entropy_with_logits(
                logits.squeeze(1), target.float(), reduction=reduction
            )
        smoothing = head.label_smoothing if reduction == "mean" else 0.0  # evaluation: unsmoothed
        return F.cross_entropy(logits, target, label_smoothing=smoothing, reduction=reduction)

    def hits(self, name: str, metric: str, logits: Tensor, target: Tensor) -> Tensor:
        """How many of the batch's samples the metric counts as right."""
        if self.heads[name].loss == "binary_cross_entropy":
            return ((logits.squeeze(1) > 0) == target.bool()).sum()
        k = 1 if metric == "acc" else int(metric.removeprefix("top"))
        return (logits.topk(k, dim=1).indices == target.unsqueeze(1)).any(1).sum()

    def training_step(self, batch: Batch, step: int) -> Logs:
        x, y = batch
        outputs = self.outputs(x, y)
        targets = self.targets(y)
        losses = {name: self.loss(name, outputs[name], targets[name]) for name in self.heads}
        # Keras's loss_weights: the trained loss is the weighted sum of the heads' losses
        total = sum(head.weight * losses[name] for name, head in self.heads.items())
        self.trainer.backward(with_penalties(total, self.net, self.l1, self.l2), self.optimizer)
        logs = {"train/loss": total.detach()}
        for name, head in self.heads.items():
            logs[f"train/{name}/loss"] = losses[name].detach()
            for metric in head.metrics:
                hits = self.hits(name, metric, outputs[name], targets[name])
                logs[f"train/{name}/{metric}"] = hits / len(y)
        return logs

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        sums: dict[str, Tensor | float] = {}
        n = 0
        for x, y in batches:
            outputs = self.outputs(x, y)
            targets = self.targets(y)
            for name, head in self.heads.items():
                logits = outputs[name]
                counted = {"loss": self.loss(name, logits, targets[name], reduction="sum")}
                counted |= {m: self.hits(name, m, logits, targets[name]) for m in head.metrics}
                for metric, value in counted.items():
                    key = f"{split}/{name}/{metric}"
                    sums[key] = sums.get(key, 0.0) + value
            n += len(y)
        if not n:
            return {}
        metrics = {key: float(value) / n for key, value in sums.items()}
        total = sum(h.weight * metrics[f"{split}/{name}/loss"] for name, h in self.heads.items())
        return {f"{split}/loss": total, **metrics}

    # -- what dlpy eval and the pictures read ------------------------------------------------------

    def log_probabilities(self, logits: Tensor, name: str) -> Tensor:
        """(N, classes) log-probabilities of a head: a binary head's two are log(1 - p), log(p)."""
        if self.heads[name].loss == "binary_cross_entropy":
            z = logits.squeeze(1)
            return torch.stack([F.logsigmoid(-z), F.logsigmoid(z)], dim=1)
        return logits.log_softmax(1)

    def target_names(self, name: str, classes: list[str] | None) -> list[str] | None:
        """A head's target names: its own `names`, else the data set's class names where the
        targets are the labels themselves; None where there are neither."""
        head = self.heads[name]
        if head.names is not None:
            return list(head.names)
        if head.from_labels is None and head.loss == "cross_entropy":
            return classes
        size = 2 if head.loss == "binary_cross_entropy" else self.net.heads[name].out_features
        return [str(i) for i in range(size)]

    def examples(self, data: DataSet, n: int = 32) -> Logs:
        """The first validation (else test) images under every head's prediction ("Shirt /
        tops"): green where every head is right, else red with the true targets under it."""
        if not isinstance(data, ImageData):
            return {}
        split = data.val if len(data.val) else data.test
        x = split.x[:n]
        y = split.y[:n]
        outputs = self.outputs(data.normalize(x), y)
        targets = self.targets(y)
        guesses = []
        truths = []
        right = torch.ones(len(y), dtype=torch.bool, device=y.device)
        for name in self.heads:
            names = self.target_names(name, list(data.classes))
            predicted = self.log_probabilities(outputs[name], name).argmax(1)
            right &= predicted == targets[name]
            guesses.append([names[int(p)] for p in predicted])
            truths.append([names[int(t)] for t in targets[name]])
        captions = [" / ".join(parts) for parts in zip(*guesses, strict=True)]
        truth = [" / ".join(parts) for parts in zip(*truths, strict=True)]
        return {"images/predictions": labelled_grid(x, captions, right.tolist(), truths=truth)}


def same_names(what: str, task: list[str], net: list[str]) -> None:
    """The task trains the heads (and feeds the inputs) the network has: no more, no fewer."""
    if sorted(task) != sorted(net):
        raise DlpyError(
            f"model.task.{what} names {', '.join(task) or 'none'}, but model.{what} names "
            f"{', '.join(net) or 'none'}: the two must name the same {what}"
        )


def check_values(key: str, values: list[int], low: int, high: int) -> None:
    """Every value of a table in [low, high)."""
    for i, value in enumerate(values):
        if value < low or value >= high:
            raise DlpyError(f"{key}[{i}] must be in [{low}, {high}), got {value}")


def check_head(name: str, head: Head, size: int) -> None:
    """A head's loss, targets, names and metrics fit its width (model.heads.<name>)."""
    key = f"model.task.heads.{name}"
    binary = head.loss == "binary_cross_entropy"
    if binary and size != 1:
        raise DlpyError(f"{key}.loss=binary_cross_entropy needs model.heads.{name}=1, got {size}")
    if not binary and size < 2:
        raise DlpyError(f"model.heads.{name} must be >= 2 classes for cross_entropy, got {size}")
    targets = 2 if binary else size
    if binary and head.from_labels is None:  # the labels themselves are 0 to classes - 1
        raise DlpyError(f"{key}.from_labels is required for binary_cross_entropy: 0 or 1 a class")
    if head.from_labels is not None:
        check_values(f"{key}.from_labels", head.from_labels, 0, targets)
    if head.names is not None and len(head.names) != targets:
        raise DlpyError(f"{key}.names has {len(head.names)} names for {targets} targets")
    for metric in head.metrics:
        if metric.startswith("top") and (binary or int(metric[3:]) > size):
            raise DlpyError(f"{key}.metrics: {metric} needs more than the head's {targets} classes")

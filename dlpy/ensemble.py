"""`dlpy eval <run> <run> ...`: an ensemble of classifiers, their class probabilities averaged.

Chollet ("Deep Learning with Python", 2nd ed., 7.3.3) ensembles models by averaging their
predictions: models that are good and different make errors that partly cancel. Each member is
scored on the test split of its own data, which must be the same images and classes as every
other member's.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dlpy.errors import DlpyError
from dlpy.runs import class_names, load_run
from dlpy.tasks.classification import Classification
from dlpy.trainer import Trainer

USAGE = "dlpy eval <run dir> <run dir> ... [key=value ...]"


@dataclass
class Member:
    """One run of the ensemble: its test probabilities and what says which data they are on."""

    run_dir: Path
    dataset: str
    classes: list[str] | None
    probabilities: torch.Tensor  # float (N, classes), on the CPU
    labels: torch.Tensor  # int64 (N,)


def test_logits(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's logits (float32, on the CPU) over the whole test split, and the labels."""
    logits = []
    labels = []
    with trainer.precision.evaluating(trainer.task):
        for x, y in map(trainer.precision.move, trainer.data.eval_batches("test")):
            logits.append(trainer.task.net(x).float().cpu())
            labels.append(y.cpu())
    return torch.cat(logits), torch.cat(labels)


def test_probabilities(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax of the network's logits over the whole test split, and the labels."""
    logits, labels = test_logits(trainer)
    return logits.softmax(1), labels


def member(run: str, overrides: list[str]) -> Member:
    """A run's test probabilities; a run that is no classifier is named."""
    run_dir, cfg, trainer = load_run([run, *overrides], USAGE)
    if not isinstance(trainer.task, Classification):
        raise DlpyError(
            f"dlpy eval: an ensemble averages class probabilities; {run_dir} trained "
            f"{type(trainer.task).__name__}, not a classifier"
        )
    probabilities, labels = test_probabilities(trainer)
    return Member(run_dir, str(cfg.dataset.name), class_names(trainer.data), probabilities, labels)


def check_same_data(first: Member, other: Member) -> None:
    """Members must share the data set, its classes and its test split: else both are named."""
    both = f"{first.run_dir} and {other.run_dir}"
    if first.dataset != other.dataset:
        raise DlpyError(
            f"dlpy eval: {both} trained on different data sets "
            f"({first.dataset} and {other.dataset}): an ensemble needs one"
        )
    if first.classes != other.classes:
        raise DlpyError(
            f"dlpy eval: {both} have different classes: {first.classes} and {other.classes}"
        )
    if not torch.equal(first.labels, other.labels):
        raise DlpyError(
            f"dlpy eval: {both} have different test splits ({len(first.labels)} and "
            f"{len(other.labels)} samples, or other labels)"
        )


def scores(probabilities: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Test accuracy, and the loss as classifiers report it: the mean negative log-likelihood."""
    log_p = probabilities.clamp_min(1e-12).log()  # an averaged probability can underflow to 0
    return {
        "test/acc": float((probabilities.argmax(1) == labels).float().mean()),
        "test/loss": float(F.nll_loss(log_p, labels)),
    }


def evaluate_ensemble(runs: list[str], overrides: list[str]) -> dict[str, dict[str, float]]:
    """Each member's test scores and the ensemble's (the mean of the probabilities), printed."""
    members = []
    for run in runs:
        members.append(member(run, overrides))
        check_same_data(members[0], members[-1])
    table = {str(m.run_dir): scores(m.probabilities, m.labels) for m in members}
    mean = torch.stack([m.probabilities for m in members]).mean(0)
    table[f"ensemble of {len(members)}"] = scores(mean, members[0].labels)
    width = max(map(len, table))
    print(f"{'run':{width}s}  test/acc  test/loss")
    for name, numbers in table.items():
        print(f"{name:{width}s}  {numbers['test/acc']:8.4f}  {numbers['test/loss']:9.4f}")
    return table

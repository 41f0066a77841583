"""`dlpy eval`'s error analysis of a classifier: which classes it confuses, and on which images.

On the test split, in <run>/eval/ and in the run's TensorBoard at the checkpoint's step:

- the confusion matrix, rows the true class and columns the predicted one (scikit-learn's
  `confusion_matrix` convention), as confusion_matrix.png and confusion_matrix.csv;
- per-class precision, recall and F1 with their macro averages (scikit-learn's
  `classification_report`, a class never predicted scoring 0), printed and as per_class.csv;
- for images, the test images of highest loss, each captioned with the predicted and the true
  class (fastai's `ClassificationInterpretation.plot_top_losses`), as highest_loss.png.

A network of several heads (multi_output) has the same for each head, in <run>/eval/<head>/ and
under eval/<head>/ in TensorBoard, with the head's own targets and their names.
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from dlpy.data.vision import ImageData
from dlpy.ensemble import test_logits
from dlpy.figures import new_figure, save_figure
from dlpy.io import atomic_write
from dlpy.tasks.multi_output import MultiOutput
from dlpy.trainer import Trainer

FOLDER = "eval"  # <run>/eval/
TOP_LOSSES = 25  # images in the highest-loss grid: 5 rows of 5
COLUMNS = 5
NUMBERS = ("precision", "recall", "f1", "support")


@dataclass
class Predictions:
    """A classifier's log-probabilities on the test split, in the split's order, on the CPU."""

    log_p: torch.Tensor  # float (N, classes)
    labels: torch.Tensor  # int64 (N,)

    @property
    def predicted(self) -> torch.Tensor:
        return self.log_p.argmax(1)

    @property
    def losses(self) -> torch.Tensor:
        """Each sample's cross-entropy, as the classifier's test/loss averages it."""
        return F.nll_loss(self.log_p, self.labels, reduction="none")


def predictions_on_test(trainer: Trainer) -> Predictions:
    """The network's log-softmax over the whole test split."""
    logits, labels = test_logits(trainer)
    return Predictions(logits.log_softmax(1), labels)


def predictions_of_heads(trainer: Trainer) -> dict[str, Predictions]:
    """Each head's log-probabilities over the whole test split, with its own targets."""
    task = trainer.task
    assert isinstance(task, MultiOutput)
    parts = {name: ([], []) for name in task.heads}
    with trainer.precision.evaluating(task):
        for x, y in map(trainer.precision.move, trainer.data.eval_batches("test")):
            outputs = task.outputs(x, y)
            for name, target in task.targets(y).items():
                parts[name][0].append(task.log_probabilities(outputs[name], name).cpu())
                parts[name][1].append(target.cpu())
    return {name: Predictions(torch.cat(lp), torch.cat(t)) for name, (lp, t) in parts.items()}


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """int64 (classes, classes): entry [i, j] counts the samples of class i predicted as j."""
    pairs = labels * classes + predicted
    return torch.bincount(pairs, minlength=classes * classes).view(classes, classes)


def per_class(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall, F1 and support of every class, from the confusion matrix.

    precision = TP / predicted, recall = TP / actual, F1 their harmonic mean; a ratio of 0 / 0
    is 0, as scikit-learn's zero_division=0 has it.
    """
    hits = matrix.diag().double()
    predicted = matrix.sum(0).double()
    actual = matrix.sum(1).double()
    precision = hits / predicted.clamp(min=1)
    recall = hits / actual.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return {"precision": precision, "recall": recall, "f1": f1, "support": matrix.sum(1)}


def macro(numbers: dict[str, torch.Tensor]) -> dict[str, float]:
    """The unweighted means over the classes (scikit-learn's "macro avg"), support summed."""
    means = {key: float(numbers[key].mean()) for key in ("precision", "recall", "f1")}
    return means | {"support": int(numbers["support"].sum())}


def most_confused(matrix: torch.Tensor) -> tuple[int, int, int]:
    """(true class, predicted class, count) of the largest entry off the diagonal."""
    off = matrix.clone()
    off.fill_diagonal_(-1)
    flat = int(off.argmax())
    true, predicted = divmod(flat, len(matrix))
    return true, predicted, int(off[true, predicted])


def table_rows(numbers: dict[str, torch.Tensor], classes: list[str]) -> list[list[str]]:
    """The per-class table: a header, a row per class, then the macro averages."""
    rows = [["class", *NUMBERS]]
    for i, name in enumerate(classes):
        rows.append([name, *(cell(key, numbers[key][i]) for key in NUMBERS)])
    averages = macro(numbers)
    rows.append(["macro avg", *(cell(key, averages[key]) for key in NUMBERS)])
    return rows


def cell(key: str, value: float | torch.Tensor) -> str:
    return str(int(value)) if key == "support" else f"{float(value):.4f}"


def text_table(rows: list[list[str]]) -> str:
    """The rows as aligned columns: the first left-aligned, numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        first = f"{row[0]:<{widths[0]}}"
        lines.append(
            "  ".join([first, *(f"{v:>{w}}" for v, w in zip(row[1:], widths[1:], strict=True))])
        )
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    """The rows as a Markdown table, which TensorBoard's TEXT tab renders."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def write_csv(path: Path, rows: list[list[str]]) -> None:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))


def matrix_rows(matrix: torch.Tensor, classes: list[str]) -> list[list[str]]:
    """The confusion matrix with the class names as header and index."""
    header = ["true \\ predicted", *classes]
    return [header] + [
        [name, *map(str, row)] for name, row in zip(classes, matrix.tolist(), strict=True)
    ]


def confusion_figure(matrix: torch.Tensor, classes: list[str]) -> Figure:
    """The matrix as a heat map with its counts in the cells (scikit-learn's
    ConfusionMatrixDisplay layout: true classes down, predicted across)."""
    k = len(classes)
    side = max(6.0, 0.6 * k + 2.5)
    figure = new_figure(side + 1.0, side)
    ax = figure.add_subplot()
    image = ax.imshow(matrix.numpy(), cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix: {int(matrix.sum())} test samples")
    if k <= 30:  # beyond, the numbers would not fit their cells
        threshold = matrix.max() / 2
        for i, row in enumerate(matrix.tolist()):
            for j, count in enumerate(row):
                colour = "white" if count > threshold else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=9)
    return figure


def top_losses_figure(
    data: ImageData, predictions: Predictions, classes: list[str], n: int = TOP_LOSSES
) -> Figure:
    """The n test images of highest loss, each under its predicted class, true class, loss (minus
    the log-probability of the true class) and place in the test split; red where wrong."""
    losses, order = predictions.losses.topk(min(n, len(predictions.labels)))
    rows = -(-len(order) // COLUMNS)
    figure = new_figure(2.4 * COLUMNS, 2.9 * rows)
    images = data.test.x[order.to(data.test.x.device)].cpu()
    for i, (index, loss) in enumerate(zip(order.tolist(), losses.tolist(), strict=True)):
        ax = figure.add_subplot(rows, COLUMNS, i + 1)
        picture = images[i].permute(1, 2, 0).numpy()
        ax.imshow(
            picture.squeeze(-1) if picture.shape[-1] == 1 else picture,
            cmap="gray",
            vmin=0,
            vmax=255,
        )
        ax.set_axis_off()
        predicted = classes[int(predictions.predicted[index])]
        true = classes[int(predictions.labels[index])]
        caption = f"predicted {predicted}\ntrue {true}\nloss {loss:.2f} (test image {index})"
        ax.set_title(caption, fontsize=9, color="firebrick" if predicted != true else "black")
    figure.suptitle(f"the {len(order)} test images of highest loss")
    return figure


def log_to_tensorboard(
    run_dir: Path,
    step: int,
    figures: dict[str, Figure],
    rows: list[list[str]],
    averages: dict,
    head: str | None = None,
) -> None:
    """The figures (IMAGES), the per-class table (TEXT) and the macro averages (SCALARS) into
    the run's own event folder, at the step of the checkpoint evaluated; a head's under its name
    (eval/<head>/..., test/<head>/f1_macro)."""
    tag = f"{head}/" if head else ""
    writer = SummaryWriter(str(run_dir))
    for name, figure in figures.items():
        writer.add_figure(f"eval/{tag}{name}", figure, step, close=False)
    writer.add_text(f"eval/{tag}per_class", markdown_table(rows), step)
    for key in ("precision", "recall", "f1"):
        writer.add_scalar(f"test/{tag}{key}_macro", averages[key], step)
    writer.close()


def error_analysis(
    trainer: Trainer,
    run_dir: Path,
    classes: list[str],
    step: int,
    predictions: Predictions | None = None,
    head: str | None = None,
) -> dict:
    """Print the per-class table and the most confused pair; write the files of <run>/eval/ and
    the same into TensorBoard. Returns the confusion matrix and the numbers.

    `predictions` and `head`: one head of a multi-head network, in <run>/eval/<head>/.
    """
    predictions = predictions if predictions is not None else predictions_on_test(trainer)
    matrix = confusion_matrix(predictions.labels, predictions.predicted, len(classes))
    numbers = per_class(matrix)
    rows = table_rows(numbers, classes)
    print(text_table(rows))
    true, predicted, count = most_confused(matrix)
    support = int(numbers["support"][true])
    print(f"most confused: {classes[true]} taken for {classes[predicted]}, {count} of {support}")
    figures = {"confusion_matrix": confusion_figure(matrix, classes)}
    if isinstance(trainer.data, ImageData):
        figures["highest_loss"] = top_losses_figure(trainer.data, predictions, classes)
    folder = run_dir / FOLDER / head if head else run_dir / FOLDER
    written = [folder / "confusion_matrix.csv", folder / "per_class.csv"]
    write_csv(written[0], matrix_rows(matrix, classes))
    write_csv(written[1], rows)
    for name, figure in figures.items():
        written.append(folder / f"{name}.png")
        save_figure(figure, written[-1])
    log_to_tensorboard(run_dir, step, figures, rows, macro(numbers), head)
    print("saved: " + ", ".join(map(str, written)) + f"; in TensorBoard at step {step}")
    return {"matrix": matrix, "per_class": numbers, "macro": macro(numbers)}


def heads_analysis(trainer: Trainer, run_dir: Path, classes: list[str] | None, step: int) -> dict:
    """`error_analysis` of every head of a multi-head network, each under its name."""
    task = trainer.task
    assert isinstance(task, MultiOutput)
    done = {}
    for name, predictions in predictions_of_heads(trainer).items():
        print(f"\nhead {name}:")
        names = task.target_names(name, classes)
        if names is None:  # the data set's labels, unnamed (neither images nor reviews)
            print(f"no error analysis: the targets of head {name} have no names")
            continue
        done[name] = error_analysis(trainer, run_dir, names, step, predictions, name)
    return done

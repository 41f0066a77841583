"""`dlpy eval`'s error analysis: the confusion matrix and per-class numbers against hand counts,
and what `dlpy eval` writes and logs for a classifier (and does not for other families).

The run is a CNN trained for five batches on the tiny Fashion-MNIST files of conftest.py, once for
the module.
"""

import csv
import io
from contextlib import redirect_stdout

import pytest
import torch
from conftest import FAST
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlpy import CONF_DIR
from dlpy.analysis import confusion_matrix, macro, most_confused, per_class, predictions_on_test
from dlpy.cli import main
from dlpy.io import load_checkpoint
from dlpy.runs import load_run
from dlpy.train import train


def trained(folder, data_dir, *overrides):
    """A run folder as `dlpy train` leaves it: trained weights and .hydra/config.yaml."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"data_dir={data_dir}", *FAST, *overrides])
    train(cfg, folder)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    return trained(tmp_path_factory.mktemp("eval") / "cnn", data_dir)


@pytest.fixture(scope="module")
def printed(run):
    """What `dlpy eval <run>` prints, evaluated once for the module."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["eval", str(run)]) == 0
    return out.getvalue().splitlines()


def test_the_confusion_matrix_and_the_per_class_numbers_match_hand_counts():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = torch.tensor([0, 0, 1, 1, 0, 2, 2, 1, 1])
    matrix = confusion_matrix(labels, predicted, 4)  # class 3: never seen, never predicted
    expected = [[2, 1, 0, 0], [1, 1, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0]]
    assert matrix.tolist() == expected
    numbers = per_class(matrix)
    # class 0: 2 of the 3 predicted 0 are right, 2 of its 3 found; class 1: 1 of 4, 1 of 2
    assert numbers["precision"].tolist() == pytest.approx([2 / 3, 1 / 4, 1.0, 0.0])
    assert numbers["recall"].tolist() == pytest.approx([2 / 3, 1 / 2, 2 / 4, 0.0])
    assert numbers["f1"].tolist() == pytest.approx([2 / 3, 1 / 3, 2 / 3, 0.0])
    assert numbers["support"].tolist() == [3, 2, 4, 0]
    averages = macro(numbers)
    assert averages["f1"] == pytest.approx((2 / 3 + 1 / 3 + 2 / 3) / 4)
    assert averages["support"] == 9
    assert most_confused(matrix) == (2, 1, 2)  # two of class 2 taken for class 1


def test_eval_names_the_checkpoint_first_then_writes_the_analysis(run, printed):
    lines = printed
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    checkpoint = run / "checkpoints" / "best.pt"
    assert lines[0].startswith(f"evaluating {checkpoint}: epoch 1, step {state['step']} (best ")
    assert state["step"] == 5
    # the per-class table agrees with the network's own predictions on the test split
    _, _, trainer = load_run([str(run)], "")
    predictions = predictions_on_test(trainer)
    classes = trainer.data.classes
    matrix = confusion_matrix(predictions.labels, predictions.predicted, len(classes))
    folder = run / "eval"
    with open(folder / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true \\ predicted", *classes]
    assert [row[0] for row in rows[1:]] == classes
    assert [[int(n) for n in row[1:]] for row in rows[1:]] == matrix.tolist()
    with open(folder / "per_class.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["class"] for row in table] == [*classes, "macro avg"]
    f1 = per_class(matrix)["f1"].tolist()
    assert [float(row["f1"]) for row in table[:-1]] == pytest.approx(f1, abs=1e-4)
    assert int(table[-1]["support"]) == len(predictions.labels)
    assert any(line.startswith("Ankle boot ") for line in lines)  # whole names in the printout
    for picture in ("confusion_matrix.png", "highest_loss.png"):
        assert (folder / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_logs_the_figures_and_numbers_into_the_runs_tensorboard(run, printed):
    events = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert {"eval/confusion_matrix", "eval/highest_loss"} <= set(tags["images"])
    assert "eval/per_class/text_summary" in tags["tensors"]
    (scalar,) = events.Scalars("test/f1_macro")
    assert scalar.step == 5
    with open(run / "eval" / "per_class.csv", newline="") as f:
        (macro_row,) = [row for row in csv.DictReader(f) if row["class"] == "macro avg"]
    assert scalar.value == pytest.approx(float(macro_row["f1"]), abs=1e-4)


def test_eval_of_an_autoencoder_keeps_its_numbers_and_writes_no_analysis(tmp_path, data_dir):
    folder = trained(tmp_path / "ae", data_dir, "model=autoencoder")
    assert main(["eval", str(folder)]) == 0
    assert not (folder / "eval").exists()

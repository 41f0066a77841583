"""Networks of several inputs or outputs (Chollet 7.1): named heads with their own losses, weights
and metrics, an extra input, and a siamese network whose two branches share one encoder.

Runs train for two batches on the tiny Fashion-MNIST files of conftest.py.
"""

import csv
import io
import json
from contextlib import redirect_stdout

import pytest
import torch
import torch.nn.functional as F
from conftest import FAST
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dlpy import CONF_DIR
from dlpy.build import build_task
from dlpy.cli import main
from dlpy.curves import read_history
from dlpy.errors import DlpyError
from dlpy.tasks.siamese import partners
from dlpy.train import train

GROUPS = [0, 1, 0, 0, 0, 2, 0, 2, 3, 2]  # the multi_head preset's map of the 10 classes
STEPS = ["trainer.max_steps=2"]


def run_folder(folder, data_dir, *overrides):
    """A run as `dlpy train` leaves it: metrics.json, checkpoints and .hydra/config.yaml."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"data_dir={data_dir}", *FAST, *STEPS, *overrides])
    train(cfg, folder)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    return folder


@pytest.fixture(scope="module")
def heads_run(tmp_path_factory, data_dir):
    return run_folder(tmp_path_factory.mktemp("heads") / "run", data_dir, "model=multi_head")


@pytest.fixture(scope="module")
def siamese_run(tmp_path_factory, data_dir):
    return run_folder(tmp_path_factory.mktemp("siamese") / "run", data_dir, "model=siamese")


def metrics_of(run):
    return json.loads((run / "metrics.json").read_text())


# -- named heads ---------------------------------------------------------------------------------


def test_with_one_head_the_multi_head_network_is_the_cnn(make_cfg):
    """Same trunk, same dense layers, built in the same order: the same weights from one seed
    and the same logits; the group head adds its Linear alone (256 x 4 + 4)."""
    torch.manual_seed(0)
    cnn = build_task(make_cfg("model=cnn")).net.eval()
    torch.manual_seed(0)
    one = build_task(
        make_cfg("model=multi_head", "~model.heads.group", "~model.task.heads.group")
    ).net.eval()
    two = build_task(make_cfg("model=multi_head")).net
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(one(x)["class"], cnn(x), rtol=0, atol=0)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(one) == count(cnn) and count(two) - count(cnn) == 256 * 4 + 4


def test_each_head_has_its_targets_and_the_loss_is_the_weighted_sum(make_cfg):
    task = build_task(make_cfg("model=multi_head"))
    y = torch.arange(10)
    targets = task.targets(y)
    assert targets["class"].tolist() == list(range(10)) and targets["group"].tolist() == GROUPS
    task.eval()
    x = torch.randn(10, 1, 28, 28)
    with torch.no_grad():
        metrics = task.evaluate([(x, y)], "val")
        logits = task.net(x, {})
    class_loss = float(F.cross_entropy(logits["class"], y))
    group_loss = float(F.cross_entropy(logits["group"], torch.tensor(GROUPS)))
    assert metrics["val/class/loss"] == pytest.approx(class_loss, rel=1e-5)
    assert metrics["val/group/loss"] == pytest.approx(group_loss, rel=1e-5)
    assert metrics["val/loss"] == pytest.approx(class_loss + 0.5 * group_loss, rel=1e-5)
    hits = (logits["group"].argmax(1) == torch.tensor(GROUPS)).float().mean()
    assert metrics["val/group/acc"] == pytest.approx(float(hits))


def test_a_multi_head_run_reports_every_head_and_keeps_the_best_class_accuracy(heads_run):
    metrics = metrics_of(heads_run)
    for split in ("val", "test"):
        for key in ("loss", "class/acc", "class/loss", "group/acc", "group/loss"):
            assert 0 <= metrics[f"{split}/{key}"] < float("inf"), f"{split}/{key}"
    assert metrics["status"] == "finished" and metrics["steps"] == 2
    history = read_history(heads_run / "history.csv")  # the curves, as TensorBoard has them
    assert {"train/class/acc", "train/group/loss", "val/group/acc"} <= set(history[0])
    best = torch.load(heads_run / "checkpoints" / "best.pt", weights_only=False)
    assert best["config"]["trainer"]["monitor"] == "val/class/acc"
    assert best["callbacks"]["Checkpoint"]["best"] == pytest.approx(
        float(history[0]["val/class/acc"])
    )


@pytest.mark.slow  # two heads' figures: a confusion matrix and 25 highest-loss images each
def test_dlpy_eval_analyses_each_head_with_its_own_names(heads_run):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["eval", str(heads_run)]) == 0
    printed = out.getvalue()
    assert "test/group/acc" in printed and "head group:" in printed
    for head, names in (("class", 10), ("group", 4)):
        rows = list(csv.reader((heads_run / "eval" / head / "confusion_matrix.csv").open()))
        assert len(rows) == names + 1
        assert sum(int(c) for row in rows[1:] for c in row[1:]) == 200  # the test split
    header = next(csv.reader((heads_run / "eval" / "group" / "confusion_matrix.csv").open()))
    assert header[1:] == ["tops", "bottoms", "footwear", "bags"]
    assert (heads_run / "eval" / "group" / "highest_loss.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.task.heads.group.from_labels=[0,1,0]", "model.task.heads.group.from_labels"),
        ("model.task.heads.group.from_labels=[0,1,0,0,0,2,0,2,3,4]", "from_labels[9]"),
        ("model.task.heads.group.weight=-1", "model.task.heads.group.weight"),
        ("+model.task.heads.group.bogus=1", "bogus"),
        ("model.task.heads.group.metrics=[top5]", "top5"),
        ("model.heads.group=5", "model.task.heads.group.names"),
        ("~model.task.heads.group", "model.task.heads"),
        ("trainer.monitor=val/acc", "trainer.monitor"),
    ],
)
def test_a_wrong_head_fails_naming_its_key(override, named, make_cfg, tmp_path):
    cfg = make_cfg("model=multi_head", override, *STEPS)
    with pytest.raises(DlpyError, match=named.replace("[", r"\[")):
        train(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # refused before any step


def test_a_binary_head_trains_with_binary_cross_entropy(make_cfg, tmp_path):
    """Is it footwear? One logit, targets 0 or 1 from the labels; top-k needs classes."""
    footwear = "[0,0,0,0,0,1,0,1,0,1]"
    cfg = make_cfg(
        "model=multi_head",
        "model.heads.group=1",
        "+model.task.heads.group.loss=binary_cross_entropy",
        f"model.task.heads.group.from_labels={footwear}",
        "model.task.heads.group.names=[other,footwear]",
        *STEPS,
    )
    train(cfg, tmp_path)
    assert 0 <= metrics_of(tmp_path)["test/group/acc"] <= 1


# -- an extra input ------------------------------------------------------------------------------


def test_the_extra_input_reaches_the_heads_and_trains(make_cfg, tmp_path):
    cfg = make_cfg("model=multi_input", *STEPS)
    task = build_task(cfg).eval()
    x = torch.randn(1, 1, 28, 28).expand(4, -1, -1, -1)
    y = torch.tensor([0, 1, 5, 8])  # one garment of each group
    with torch.no_grad():
        logits = task.outputs(x, y)["class"]
    assert task.extra_inputs(y)["group"].argmax(1).tolist() == [0, 1, 2, 3]
    assert len({tuple(row.tolist()) for row in logits}) == 4, "the group changes nothing"
    train(cfg, tmp_path)
    metrics = metrics_of(tmp_path)
    assert 0 <= metrics["test/class/acc"] <= 1 and metrics["model/flops_per_sample"] > 0


# -- siamese -------------------------------------------------------------------------------------


def test_partners_are_of_the_same_class_and_of_another_never_the_sample_itself():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=g)
    same, other = partners(labels, torch.rand(500, generator=g), torch.rand(500, generator=g))
    assert (labels[same] == labels).all() and (labels[other] != labels).all()
    assert (same != torch.arange(500)).all()
    # uniform over the class's other samples: every sample of class 0 is someone's partner
    zeros = (labels == 0).nonzero().flatten()
    assert len(set(same[zeros].tolist())) > 0.5 * len(zeros)
    lonely = torch.tensor([4, 4, 7])  # class 7 has no other sample: its own partner
    same, other = partners(lonely, torch.zeros(3), torch.zeros(3))
    assert same.tolist() == [1, 0, 2] and other.tolist() == [2, 2, 0]


def test_the_siamese_branches_share_one_encoder_and_both_send_it_gradients(make_cfg):
    net = build_task(make_cfg("model=siamese")).net.eval()  # eval: no batch statistic couples
    encoder = list(net.encoder.parameters())
    params = list(net.parameters())
    assert len(params) == len(encoder) + len(list(net.head.parameters()))  # one set, once
    assert not hasattr(net, "encoder2") and len({id(p) for p in params}) == len(params)
    x1 = torch.randn(4, 1, 28, 28)
    x2 = torch.randn(4, 1, 28, 28)

    def grads(left_detached, right_detached):
        net.zero_grad()
        a = net.encode(x1)
        b = net.encode(x2)
        a = a.detach() if left_detached else a
        b = b.detach() if right_detached else b
        net.compare(a, b).sum().backward()
        return [p.grad.clone() for p in encoder]

    both = grads(False, False)
    left = grads(False, True)
    right = grads(True, False)
    for total, one, other in zip(both, left, right, strict=True):
        torch.testing.assert_close(total, one + other)
    assert all(g.abs().sum() > 0 for g in (left[0], right[0])), "a branch sends no gradient"
    with torch.no_grad():  # the pair's features are symmetric: (x1, x2) matches as (x2, x1)
        torch.testing.assert_close(net(x1, x2), net(x2, x1))
        torch.testing.assert_close(net(x1, x2), net.compare(net.encode(x1), net.encode(x2)))


def test_training_pairs_are_balanced_and_drawn_from_the_data_generator(make_cfg):
    from dlpy.build import build_data

    cfg = make_cfg("model=siamese")
    task = build_task(cfg)
    data = build_data(cfg)
    data.seed(0)
    first = [tuple(t.clone() for t in batch) for batch in task.batches(data)]
    data.seed(0)
    again = list(task.batches(data))
    for (x, y, same, other), (_, _, same2, other2) in zip(first, again, strict=True):
        assert torch.equal(same, same2) and torch.equal(other, other2)  # reproducible
        assert (y[same] == y).float().mean() > 0.9 and (y[other] != y).all()
        assert len(x) == len(y) == len(same) == len(other)


def test_a_siamese_run_scores_fixed_held_out_pairs(siamese_run):
    metrics = metrics_of(siamese_run)
    for split in ("val", "test"):
        for key in ("acc", "loss", "same_acc", "different_acc"):
            assert 0 <= metrics[f"{split}/{key}"] < float("inf"), f"{split}/{key}"
        halves = (metrics[f"{split}/same_acc"] + metrics[f"{split}/different_acc"]) / 2
        assert metrics[f"{split}/acc"] == pytest.approx(halves)  # as many of each
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["eval", str(siamese_run)]) == 0  # the same pairs as at the end of training
    printed = dict(line.split() for line in out.getvalue().splitlines() if line.startswith("test/"))
    assert float(printed["test/acc"]) == pytest.approx(metrics["test/acc"], abs=1e-4)
    assert list((siamese_run / "images").glob("pairs_epoch001.png"))

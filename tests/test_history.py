"""history.csv per run, `dlpy plot` of runs and sweeps, the report's configuration names."""

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dlpy.callbacks.history import History
from dlpy.curves import (
    curves_of,
    mean_interval,
    plot_run,
    plot_sweep,
    read_history,
    sweep_figure,
    sweep_histories,
    write_history,
)
from dlpy.report import config_name, write_report
from dlpy.train import train


def rows_of(path):
    return list(csv.DictReader(path.open()))


def test_a_run_writes_a_row_per_epoch_of_every_logged_number(make_cfg, tmp_path):
    train(make_cfg("model=mlp", "trainer.max_epochs=2"), tmp_path)
    rows = rows_of(tmp_path / "history.csv")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(rows[0]) == [
        "epoch",
        "step",
        "time",
        "lr/adam",
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
    ]
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [int(row["step"]) for row in rows] == [5, 10]  # trainer=debug: 5 batches an epoch
    assert 0 < float(rows[0]["time"]) < float(rows[1]["time"])
    # the best epoch's validation numbers are those its checkpoint is evaluated with at the end
    best = max(rows, key=lambda row: float(row["val/acc"]))
    assert float(best["val/acc"]) == pytest.approx(metrics["val/acc"])


def test_a_resumed_run_drops_the_rows_past_its_checkpoint_and_goes_on(make_cfg, tmp_path):
    train(make_cfg("model=mlp", "trainer.max_epochs=2"), tmp_path)
    path = tmp_path / "history.csv"
    rows = read_history(path)
    # a kill after epoch 3's row, before its checkpoint: the resumed run trains epoch 3 again
    write_history([*rows, {**rows[-1], "epoch": "3", "val/acc": "-1"}], path)
    train(make_cfg("model=mlp", "trainer.max_epochs=3", f"trainer.resume={tmp_path}"), tmp_path)
    resumed = read_history(path)
    assert [row["epoch"] for row in resumed] == ["1", "2", "3"]
    assert resumed[:2] == rows and resumed[2]["val/acc"] != "-1"
    assert float(resumed[2]["time"]) > float(rows[1]["time"])  # the clock counts on


def test_every_epoch_leaves_the_file_whole_with_the_rows_so_far(tmp_path):
    (tmp_path / ".history.csv.x1y2.tmp").write_text("epoch,st")  # what a killed write left
    history = History(tmp_path)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    task = SimpleNamespace(optimizer_names=())
    trainer = SimpleNamespace(epoch=0, step=0, optimizers=[optimizer], task=task, epoch_means=dict)
    history.on_fit_start(trainer)
    for epoch in (1, 2):
        trainer.epoch = epoch
        trainer.step = 10 * epoch
        trainer.epoch_means = lambda epoch=epoch: {"train/loss": 1.0 / epoch}
        history.on_epoch_end(trainer, {"val/loss": 2.0 / epoch} if epoch == 2 else {})
        rows = rows_of(tmp_path / "history.csv")
        assert len(rows) == epoch and rows[-1]["train/loss"] == str(1.0 / epoch)
    assert rows[0]["val/loss"] == "" and rows[1]["val/loss"] == "1.0"  # a column that came later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]  # no temporary file left


def test_metrics_pair_training_with_validation_by_name():
    rows = [{"epoch": "1", "step": "5", "time": "1", "lr": "0.1", "train/loss": "1"}]
    rows.append({**rows[0], "val/loss": "2", "val/fid": "3", "loss/d": "4"})
    assert curves_of(rows) == {
        "lr": ["lr"],
        "loss": ["train/loss", "val/loss"],
        "fid": ["val/fid"],
        "loss/d": ["loss/d"],
    }


def test_the_interval_holds_the_mean_of_the_seeds_and_narrows_with_agreement():
    epochs = np.array([1.0, 2.0])
    runs = [(epochs, np.array([0.5, 0.6])), (epochs, np.array([0.7, 0.61])), (epochs[:1], [0.9])]
    runs = [(e, np.asarray(v)) for e, v in runs]
    x, mean, low, high = mean_interval(runs, np.random.default_rng(0))
    assert list(x) == [1.0, 2.0]
    assert mean == pytest.approx([0.7, 0.605])  # epoch 2: the two runs that reached it
    assert 0.5 <= low[0] < 0.7 < high[0] <= 0.9  # bootstrap means lie within the seeds' range
    assert high[1] - low[1] < high[0] - low[0]  # seeds that agree: a narrower band
    _, one, low1, high1 = mean_interval(runs[:1], np.random.default_rng(0))
    assert list(one) == list(low1) == list(high1) == [0.5, 0.6]  # one seed: no band


def test_plot_of_a_run_draws_training_against_validation(make_cfg, tmp_path, run_cli):
    train(make_cfg("model=mlp", "trainer.max_epochs=2"), tmp_path)
    paths = plot_run(tmp_path, None)
    assert sorted(p.name for p in paths) == ["acc.png", "loss.png", "lr_adam.png"]
    with Image.open(tmp_path / "plots" / "loss.png") as image:
        assert image.format == "PNG" and image.size == (640, 480)
    status, out, err = run_cli("plot", str(tmp_path), "metric=val/acc")
    assert status == 0 and out.strip() == str(tmp_path / "plots" / "val_acc.png")
    status, _, err = run_cli("plot", str(tmp_path), "metric=accuracy")
    assert status == 2 and err.count("\n") == 1
    assert "metric=accuracy" in err and "known metrics: acc, loss, lr/adam" in err


def fake_job(folder, overrides, accs):
    """A finished job folder with the files dlpy plot and dlpy report read."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    trainer = {"monitor": "val/acc", "mode": "max"}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"trainer": trainer}))
    (folder / "metrics.json").write_text(json.dumps({"status": "finished", "val/acc": accs[-1]}))
    rows = [{"epoch": i + 1, "train/acc": a - 0.1, "val/acc": a} for i, a in enumerate(accs)]
    write_history(rows, folder / "history.csv")


def test_plot_of_a_sweep_draws_a_mean_and_band_per_configuration(tmp_path):
    for lr, base in (("0.1", 0.5), ("0.01", 0.7)):
        for seed in (1, 2, 3):
            accs = [base + 0.01 * seed, base + 0.1 + 0.01 * seed]
            fake_job(
                tmp_path / f"lr={lr},seed={seed}", [f"optimizer.lr={lr}", f"seed={seed}"], accs
            )
    configs = sweep_histories(tmp_path)
    assert [(name, len(h)) for name, h in configs] == [("lr=0.01", 3), ("lr=0.1", 3)]
    fig = sweep_figure(configs, "acc", ["train/acc", "val/acc"])
    train_ax, val_ax = fig.axes
    assert [line.get_label() for line in val_ax.lines] == ["lr=0.01 (3 runs)", "lr=0.1 (3 runs)"]
    assert list(val_ax.lines[0].get_ydata()) == pytest.approx([0.72, 0.82])  # the seeds' mean
    assert len(val_ax.collections) == 2  # a shaded interval per configuration
    assert train_ax.get_ylabel() == "train/acc"
    assert [p.name for p in plot_sweep(tmp_path, "val/acc")] == ["val_acc.png"]
    assert (tmp_path / "plots" / "val_acc.png").stat().st_size > 0


def test_the_report_names_each_configuration_without_its_seed(tmp_path):
    assert config_name(["model", "optimizer.lr"], ("mlp", "0.1")) == "model=mlp,lr=0.1"
    assert config_name(["a.lr", "b.lr"], ("1", "2")) == "a.lr=1,b.lr=2"  # the short names clash
    assert config_name([], ()) == "all"
    for seed in (1, 2):
        fake_job(tmp_path / f"lr=0.1,seed={seed}", ["optimizer.lr=0.1", f"seed={seed}"], [0.5])
    text = write_report(tmp_path)
    groups = rows_of(tmp_path / "report.csv")
    jobs = rows_of(tmp_path / "jobs.csv")
    assert [g["config"] for g in groups] == ["all"]  # only the seed varies
    assert [j["config"] for j in jobs] == ["all", "all"]
    assert "| config | runs | val/acc |" in text

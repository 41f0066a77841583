"""The logger group: CSV, MLflow and W&B write real local stores, which are read back here with
the trackers' own readers; a missing tracker fails in one line naming the extra."""

import csv
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import FAST

from dlpy.callbacks.loggers import CSVLogger

RUN = [*FAST, "model=mlp", "trainer.log_every_n_steps=2"]


def metrics_of(run):
    return json.loads((run / "metrics.json").read_text())


def final_numbers(metrics):
    """The evaluation's numbers of metrics.json, which every tracker also holds at the end."""
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))}


def test_csv_holds_every_logged_scalar_by_step(run_cli, tmp_path):
    run = tmp_path / "run"
    status, _, err = run_cli("train", *RUN, "logger=csv", f"hydra.run.dir={run}")
    assert status == 0, err
    assert not list(run.glob("events.out.tfevents.*"))  # csv alone: no TensorBoard
    with (run / "scalars.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows if row["train/loss"]] == [2, 4]
    assert all(row["lr/adam"] for row in rows if row["train/loss"])
    last = rows[-1]
    assert {k: float(last[k]) for k in final_numbers(metrics_of(run))} == pytest.approx(
        final_numbers(metrics_of(run))
    )
    assert float(rows[-2]["charts/epoch"]) == 1.0


def test_csv_drops_the_rows_after_the_checkpoint_a_run_resumes_from(tmp_path):
    trainer = SimpleNamespace(step=0, train_samples=0, train_time=0.0)
    logger = CSVLogger(tmp_path, {})
    logger.on_fit_start(trainer)
    for step in (2, 4, 6):
        logger.log_scalars({"train/loss": 1.0 / step}, step)
    logger.log_scalars({"val/loss": 0.5}, 6)  # a new column: the file is rewritten wider
    resumed = CSVLogger(tmp_path, {})
    resumed.on_fit_start(SimpleNamespace(step=4, train_samples=0, train_time=0.0))
    resumed.log_scalars({"train/loss": 0.2}, 6)
    with (tmp_path / "scalars.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["step"], row["train/loss"]) for row in rows] == [
        ("2", "0.5"),
        ("4", "0.25"),
        ("6", "0.2"),
    ]


def test_a_missing_tracker_fails_in_one_line_naming_the_extra(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    status, _, err = run_cli(
        "train", *RUN, "logger=[tensorboard,mlflow]", f"hydra.run.dir={tmp_path}"
    )
    assert status == 2
    assert err == "dlpy: error: logger=mlflow needs mlflow, which is not installed: " + (
        "pip install 'dlpy[track]'\n"
    )


@pytest.mark.slow
def test_mlflow_and_tensorboard_together_and_mlflow_reads_the_run_back(
    run_cli, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default store is outputs/mlflow.db, below where dlpy runs
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "outputs" / "run"
    status, _, err = run_cli(
        "train", *RUN, "logger=[tensorboard,mlflow]", "seed=3", f"hydra.run.dir={run}"
    )
    assert status == 0, err
    assert list(run.glob("events.out.tfevents.*"))  # TensorBoard wrote too
    assert not (tmp_path / "mlruns").exists()
    client = MlflowClient(tracking_uri="sqlite:///outputs/mlflow.db")
    (found,) = client.search_runs([client.get_experiment_by_name("dlpy").experiment_id])
    assert found.info.status == "FINISHED"
    assert found.info.run_name == "outputs/run"
    expected = final_numbers(metrics_of(run))
    assert {k: found.data.metrics[k] for k in expected} == pytest.approx(expected)
    assert found.data.params["seed"] == "3" and found.data.params["model"] == "mlp"
    history = client.get_metric_history(found.info.run_id, "train/loss")
    assert [m.step for m in history] == [2, 4]


def wandb_records(path):
    """The protobuf records of a .wandb file: W&B's header, then LevelDB's log format (32 KiB
    blocks of records, each with a 7-byte header: checksum, length, type; type 1 a whole record,
    2-4 its first, middle and last pieces), as github.com/google/leveldb doc/log_format.md
    describes it."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw.startswith(b":W&B")
    records = []
    piece = b""
    pos = 7
    while pos + 7 <= len(raw):
        room = 32768 - pos % 32768
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0:
            break
        piece += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(piece)
            records.append(record)
            piece = b""
    return records


@pytest.mark.slow
def test_wandb_offline_writes_its_run_folder_with_config_history_and_summary(run_cli, tmp_path):
    run = tmp_path / "run"
    status, _, err = run_cli("train", *RUN, "logger=wandb", "seed=2", f"hydra.run.dir={run}")
    assert status == 0, err
    (store,) = run.glob("wandb/offline-run-*/run-*.wandb")
    records = wandb_records(store)
    (started,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in started.config.update}
    assert config["seed"] == 2 and config["model"] == "mlp"
    history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
    logged = [{i.nested_key[0]: json.loads(i.value_json) for i in h.item} for h in history]
    assert [row["_step"] for row in logged if "train/loss" in row] == [2, 4]
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or item.nested_key[0]] = json.loads(item.value_json)
    expected = final_numbers(metrics_of(run))
    assert {k: summary[k] for k in expected} == pytest.approx(expected)


@pytest.mark.slow
def test_the_trackers_are_imported_only_by_runs_that_choose_them():
    code = (
        "import sys; import dlpy.catalog, dlpy.build; "
        "print(sorted(m for m in ('mlflow', 'wandb') if m in sys.modules))"
    )
    root = Path(__file__).parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr

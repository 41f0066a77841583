"""The callbacks config group: the default list, dropping one, adding one's own, bad entries."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import FAST

from dlpy.build import build_callbacks, build_trainer
from dlpy.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    History,
    ImageFiles,
    ProgressBar,
    TensorBoard,
)
from dlpy.io import load_checkpoint
from dlpy.registry import CALLBACKS
from dlpy.train import train


def test_the_default_groups_build_the_callbacks_of_every_run_with_the_checkpoint_last(
    make_cfg, tmp_path
):
    trainer = build_trainer(make_cfg(fast=False), tmp_path)
    assert [type(cb) for cb in trainer.callbacks] == [
        ProgressBar,
        History,
        ImageFiles,
        TensorBoard,  # the logger group's
        Checkpoint,
    ]  # early stopping at patience 0 is no callback at all
    tensorboard = trainer.callbacks[3]
    assert tensorboard.run_dir == str(tmp_path)
    assert tensorboard.hparams["model"] == "cnn" and tensorboard.hparams["seed"] == 0
    stopping = make_cfg("callbacks.early_stopping.patience=2", fast=False)
    assert [type(cb) for cb in build_trainer(stopping, tmp_path).callbacks][-3:] == [
        EarlyStopping,
        TensorBoard,
        Checkpoint,
    ]


def test_the_checkpoint_runs_last_wherever_its_entry_stands_and_a_null_entry_is_off(tmp_path):
    entries = {
        "checkpoint": {"name": "checkpoint"},
        "progress_bar": None,  # what a preset writes, where it cannot delete the key
        "image_files": {"name": "image_files"},
    }
    assert [type(cb) for cb in build_callbacks(entries, tmp_path, {})] == [ImageFiles, Checkpoint]


def test_a_run_without_tensorboard_writes_no_events_and_finishes(run_cli, tmp_path):
    run = tmp_path / "run"
    status, _, err = run_cli("train", *FAST, "model=mlp", "~logger", f"hydra.run.dir={run}")
    assert status == 0, err
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    assert (run / "checkpoints" / "best.pt").is_file()
    assert not list(run.rglob("events.out.tfevents.*"))


class Recorder(Callback):
    """Records the hooks it receives; its state is how many."""

    def __init__(self, run_dir: str, label: str = "") -> None:
        self.run_dir = run_dir
        self.label = label
        self.hooks = []

    def on_fit_start(self, trainer) -> None:
        self.hooks.append("on_fit_start")

    def on_epoch_start(self, trainer) -> None:
        self.hooks.append("on_epoch_start")

    def on_train_batch_end(self, trainer, logs, batch_size) -> None:
        self.hooks.append("on_train_batch_end")

    def on_epoch_end(self, trainer, metrics) -> None:
        self.hooks.append("on_epoch_end")

    def on_fit_end(self, trainer) -> None:
        self.hooks.append("on_fit_end")

    def on_test_end(self, trainer, metrics) -> None:
        self.hooks.append("on_test_end")

    def state_dict(self) -> dict:
        return {"hooks": len(self.hooks)}


@pytest.fixture
def recorders():
    """A `recorder` callback registered for the test alone; the list of those built."""
    built = []

    @CALLBACKS.register("recorder")
    def recorder(run_dir: str, label: str = "") -> Recorder:
        """Records the hooks it receives."""
        built.append(Recorder(run_dir, label))
        return built[-1]

    yield built
    CALLBACKS._entries.pop("recorder")


def test_a_callback_of_ones_own_added_from_the_config_receives_every_hook(
    recorders, make_cfg, tmp_path
):
    train(make_cfg("model=mlp", "+callbacks.mine={name: recorder, label: x}"), tmp_path)
    (recorder,) = recorders
    assert (recorder.run_dir, recorder.label) == (str(tmp_path), "x")
    batches = ["on_train_batch_end"] * 5  # trainer=debug: one epoch of 5 batches
    assert recorder.hooks == [
        "on_fit_start",
        "on_epoch_start",
        *batches,
        "on_epoch_end",
        "on_fit_end",
        "on_test_end",
    ]
    # added after the checkpoint's entry, it still ran first: the checkpoint holds its epoch's end
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["callbacks"]["Recorder"] == {"hooks": 8}


@pytest.mark.slow  # trains in a subprocess that finds a package installed in a temporary folder
def test_a_callback_of_an_installed_package_is_found_through_its_entry_point(data_dir, tmp_path):
    site = tmp_path / "site"
    (site / "mine-0.1.dist-info").mkdir(parents=True)
    (site / "mine-0.1.dist-info" / "METADATA").write_text("Name: mine\nVersion: 0.1\n")
    (site / "mine-0.1.dist-info" / "entry_points.txt").write_text(
        "[dlpy.callbacks]\nmine = mine:Done\n"
    )
    (site / "mine.py").write_text(
        textwrap.dedent(
            '''
            from pathlib import Path
            from dlpy.callbacks import Callback

            class Done(Callback):
                """Writes done.txt when the test ends."""

                def __init__(self, run_dir):
                    self.run_dir = Path(run_dir)

                def on_test_end(self, trainer, metrics):
                    (self.run_dir / "done.txt").write_text(str(trainer.step))
            '''
        )
    )
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "DLPY_DATA_DIR": str(data_dir)}
    run = tmp_path / "run"
    args = [*FAST, "model=mlp", "+callbacks.mine={name:mine}", f"hydra.run.dir={run}"]
    done = subprocess.run(
        [sys.executable, "-m", "dlpy", "train", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (run / "done.txt").read_text() == "5"


BAD = [  # (override, the start of the one error line after `dlpy: error: `)
    (
        "callbacks.early_stopping.patience=-1",
        "callbacks.early_stopping.patience must be an integer >= 0",
    ),
    ("callbacks.early_stopping.patience=abc", "callbacks.early_stopping.patience must be an int"),
    ("callbacks.early_stopping.patience=true", "callbacks.early_stopping.patience must be an int"),
    ("+callbacks.early_stopping.bogus=1", "callbacks.early_stopping: unknown option(s) bogus"),
    ("callbacks.image_files=5", "callbacks.image_files must be a mapping"),
    ("callbacks.image_files.name=nosuch", "callbacks.image_files.name: Unknown callback"),
    ("logger.tensorboard=5", "logger.tensorboard must be a mapping"),
    ("logger.tensorboard.name=nosuch", "logger.tensorboard.name: Unknown logger"),
    ("+logger.tensorboard.run_dir=x", "logger.tensorboard.run_dir is dlpy's to give"),
    ("+callbacks.mine={every:1}", "callbacks.mine.name is missing"),
    ("+callbacks.checkpoint.run_dir=x", "callbacks.checkpoint.run_dir is dlpy's to give"),
    ("+callbacks.progress_bar.refresh_every=0", "callbacks.progress_bar.refresh_every must be"),
    ("+callbacks.progress_bar.enabled=abc", "callbacks.progress_bar.enabled must be true or false"),
]


@pytest.mark.parametrize(("override", "error"), BAD, ids=[case[0] for case in BAD])
def test_a_bad_callback_entry_fails_in_one_line_naming_its_key(override, error, run_cli, tmp_path):
    # the progress bar is kept for the cases that set its options
    args = [o for o in FAST if o != "~callbacks.progress_bar"]
    status, _, err = run_cli("train", *args, override, f"hydra.run.dir={tmp_path / 'run'}")
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"dlpy: error: {error}"), err

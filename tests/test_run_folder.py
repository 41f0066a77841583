"""No run overwrites another: a run folder that holds a run is refused, resumed on the same
settings, or replaced on trainer.overwrite=true; default folders are unique; a stopped run claims
only a checkpoint that is on disk.

The finished run is trained once (in-process, through dlpy.cli.main) and copied for each test.
"""

import hashlib
import json
import logging
import os
import shutil
import signal
import sys
from datetime import datetime

import hydra.core.utils
import pytest
import yaml
from conftest import FAST, write_mnist_family
from hydra.core.global_hydra import GlobalHydra

from dlpy import cli
from dlpy.tasks.classification import Classification

RUN = [*FAST, "model=mlp", "trainer.limit_train_batches=2", "~callbacks.image_files"]
QUICK = [*RUN, "~logger"]  # what the tests' own runs add, without TensorBoard's import and files


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """A finished run's folder, TensorBoard events and all; tests work on copies of it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    handlers, level = logging.root.handlers[:], logging.root.level
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLPY_DATA_DIR", str(data_dir))
        patch.setattr(sys, "argv", list(sys.argv))
        GlobalHydra.instance().clear()
        assert cli.main(["train", *RUN, f"hydra.run.dir={run}"]) == 0
        GlobalHydra.instance().clear()
    for handler in logging.root.handlers:
        if handler not in handlers:
            handler.close()
    logging.root.handlers[:], logging.root.level = handlers, level
    return run


@pytest.fixture
def run(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def contents(folder):
    """Every file under `folder`, by relative path, with its bytes' hash."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_the_finished_run_holds_what_the_refusals_must_leave_alone(run):
    names = contents(run)
    assert {"metrics.json", "checkpoints/last.pt", "checkpoints/best.pt"} <= names.keys()
    assert {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"} <= names.keys()
    assert "job.log" in names and any(name.startswith("events.out.tfevents") for name in names)
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    "attempt, named",
    [
        ([], "run folder {run} holds a run already"),  # a new run, hydra.run.dir=<run>
        (["trainer.resume={run}", "dataset=mnist"], "dataset.name: 'fashion_mnist' -> 'mnist'"),
        (["trainer.resume={run}", "model=cnn"], "model.name: 'mlp' -> 'cnn'"),
        (["trainer.resume={run}", "optimizer.lr=0.5"], "optimizer.lr: 0.001 -> 0.5"),
        (["trainer.resume={run}", "trainer.overwrite=true"], "would remove the run in {run}"),
    ],
    ids=["new-run", "other-data-set", "other-model", "other-optimizer", "resume-and-overwrite"],
)
def test_a_finished_run_is_never_written_over(run_cli, run, attempt, named):
    """Refused in one line naming the folder or the keys that differ; not a byte changes, and no
    file is added."""
    before = contents(run)
    args = [arg.format(run=run) for arg in attempt]
    where = [] if args else [f"hydra.run.dir={run}"]
    status, _, err = run_cli("train", *QUICK, *args, *where)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("dlpy: error: ")
    assert named.format(run=run) in err and str(run) in err
    assert contents(run) == before


def test_a_resumed_run_logs_and_keeps_each_setting_it_changes(run_cli, run):
    status, out, err = run_cli("train", *QUICK, "trainer.max_epochs=2", f"trainer.resume={run}")
    assert status == 0, err
    assert "trainer.resume: trainer.max_epochs 1 -> 2" in out
    assert "trainer.resume: logger.tensorboard.name 'tensorboard' -> (absent)" in out
    (entry,) = yaml.safe_load((run / "resumes.yaml").read_text())
    assert entry["from"] == str(run / "checkpoints" / "last.pt")
    assert entry["changed"]["trainer.max_epochs"] == {"was": 1, "now": 2}
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert "max_epochs: 2" in (run / ".hydra" / "config.yaml").read_text()  # the config it ran


def test_overwrite_true_replaces_the_run_and_leaves_none_of_its_files(run_cli, run):
    old = contents(run)
    status, _, err = run_cli(
        "train", *QUICK, "seed=1", "trainer.overwrite=true", f"hydra.run.dir={run}"
    )
    assert status == 0, err
    new = contents(run)
    assert new["metrics.json"] != old["metrics.json"]
    assert new["checkpoints/best.pt"] != old["checkpoints/best.pt"]
    assert "seed: 1" in (run / ".hydra" / "config.yaml").read_text()
    # the new run logged to no tracker: every events file left was the old run's
    assert not [name for name in new if "tfevents" in name]
    assert (run / "job.log").read_text().count("training mlp on fashion_mnist") == 1


def test_trainer_overwrite_must_be_true_or_false(run_cli, run):
    before = contents(run)
    status, _, err = run_cli("train", *QUICK, "trainer.overwrite=yes", f"hydra.run.dir={run}")
    assert (status, err) == (2, "dlpy: error: trainer.overwrite must be true or false, got 'yes'\n")
    assert contents(run) == before


@pytest.fixture
def one_second(tmp_path, monkeypatch):
    """Every ${now:...} reads 2026-01-02 12:00:00, in tmp_path: commands started in one second."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 12, 0, 0)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hydra.core.utils, "datetime", Frozen)  # Hydra's ${now:...}


def test_two_runs_started_in_the_same_second_get_folders_of_their_own(
    run_cli, tmp_path, one_second
):
    for _ in range(2):
        status, _, err = run_cli("train", *QUICK)
        assert status == 0, err
    folders = sorted((tmp_path / "outputs" / "2026-01-02").iterdir())
    assert [folder.name for folder in folders] == ["12-00-00", "12-00-00_01"]
    for folder in folders:
        assert json.loads((folder / "metrics.json").read_text())["status"] == "finished"


def test_two_sweeps_started_in_the_same_second_get_roots_of_their_own(
    run_cli, tmp_path, one_second
):
    # One root for both would give the second sweep's jobs the first's folders (0_seed=1, ...),
    # each refused as holding a run, and its multirun.yaml would replace the first's.
    for _ in range(2):
        status, _, err = run_cli("train", "-m", *QUICK, "seed=1,2")
        assert status == 0, err
    roots = sorted((tmp_path / "outputs" / "multirun" / "2026-01-02").iterdir())
    assert [root.name for root in roots] == ["12-00-00", "12-00-00_01"]
    for root in roots:
        assert (root / "multirun.yaml").is_file()
        for job in ("seed=1", "seed=2"):
            assert json.loads((root / job / "metrics.json").read_text())["status"] == "finished"


def test_a_sweep_folder_named_twice_is_refused_unchanged_unless_the_sweep_continues_it(
    run_cli, tmp_path
):
    root = tmp_path / "sweep"
    sweep = ("train", "-m", *QUICK, "seed=1,2", f"hydra.sweep.dir={root}")
    status, _, err = run_cli(*sweep)
    assert status == 0, err
    before = contents(root)
    status, _, err = run_cli(*sweep[:-2], "seed=3", sweep[-1])  # another sweep, the same folder
    assert (status, err) == (
        2,
        f"dlpy: error: sweep folder {root} holds a sweep already (multirun.yaml): continue it "
        "with trainer.resume=auto, write elsewhere (hydra.sweep.dir=...), or replace the jobs it "
        "runs with trainer.overwrite=true\n",
    )
    assert contents(root) == before
    status, _, err = run_cli(*sweep, "trainer.resume=auto")  # its finished jobs are skipped
    assert status == 0, err
    results = [name for name in before if name.endswith(("metrics.json", ".pt"))]
    assert len(results) == 6  # each job's metrics.json, last.pt and best.pt
    assert {name: contents(root)[name] for name in results} == {n: before[n] for n in results}


def signal_in_step(monkeypatch, step):
    """SIGTERM to this process during the classifier's training step `step`."""
    training_step = Classification.training_step

    def signalled(self, batch, at):
        if at == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return training_step(self, batch, at)

    monkeypatch.setattr(Classification, "training_step", signalled)


def test_sigterm_while_the_fid_network_trains_claims_no_checkpoint(run_cli, tmp_path, monkeypatch):
    """The feature network is a classifier with a trainer of its own: its step is not the run's,
    and nothing of the run is saved."""
    write_mnist_family(tmp_path / "data" / "FashionMNIST" / "raw")  # no FID network cached yet
    monkeypatch.setenv("DLPY_DATA_DIR", str(tmp_path / "data"))
    signal_in_step(monkeypatch, 1)
    run = tmp_path / "gan"
    status, _, err = run_cli("train", *FAST, "model=dcgan", "~logger", f"hydra.run.dir={run}")
    assert status == 143
    assert err.splitlines()[-1] == (
        "dlpy: interrupted by SIGTERM while the FID feature network trained; "
        "no checkpoint had been saved yet"
    )
    assert not (run / "checkpoints").exists()
    assert not list((tmp_path / "data").rglob("dlpy-fid/*.pt"))  # nor a half-trained network
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"


@pytest.mark.parametrize("checkpoint", [True, False], ids=["checkpoint", "no-checkpoint-callback"])
def test_a_signal_claims_the_checkpoint_only_once_it_is_on_disk(
    run_cli, tmp_path, monkeypatch, checkpoint
):
    signal_in_step(monkeypatch, 1)
    run = tmp_path / "run"
    off = [] if checkpoint else ["~callbacks.checkpoint"]
    status, _, err = run_cli("train", *QUICK, *off, f"hydra.run.dir={run}")
    last = run / "checkpoints" / "last.pt"
    line = err.splitlines()[-1]
    assert status == 143 and line.startswith("dlpy: interrupted by SIGTERM at epoch 1, step 2; ")
    assert last.is_file() == checkpoint
    assert (f"checkpoint saved to {last}; resume with" in line) == checkpoint
    assert line.endswith("; no checkpoint had been saved yet") != checkpoint

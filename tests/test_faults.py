"""Fault injection: signals, kills while writing, NaN losses, unwritable folders never lose a run.

Each test injects one fault into a real run (a `dlpy train` subprocess where a signal or a kill must
come from outside, in-process where the fault can be placed at an exact step) and checks what is
left behind: the checkpoint, metrics.json, the message and the exit status.
"""

import errno
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F
from conftest import FAST, idx_bytes, images_and_labels
from test_distributed import BUILD, torchrun

from dlpy.build import build_data, build_task, build_trainer
from dlpy.errors import Diverged, DlpyError, Interrupted
from dlpy.io import load_checkpoint
from dlpy.registry import TASKS
from dlpy.tasks.classification import Classification
from dlpy.train import train
from dlpy.trainer import Trainer


def weights(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")


def assert_same_weights(a, b):
    assert a["task"].keys() == b["task"].keys()
    for key in a["task"]:
        assert torch.equal(a["task"][key], b["task"][key]), key


# -- 1. SIGINT and SIGTERM: a checkpoint at the step reached, a clear message, resume from there ---

RESUMABLE = [
    "model=mlp",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "trainer.deterministic=true",
]


@pytest.mark.slow
def test_a_signal_mid_epoch_saves_that_step_and_the_resumed_run_ends_bitwise_equal(
    make_cfg, tmp_path, monkeypatch
):
    """SIGINT in step 4 of 6, then SIGINT and SIGTERM again while the checkpoint is being written.

    The MLP has dropout (torch's generator), the data are shuffled (their own generator), and the
    one-cycle schedule and Adam carry state: resuming inside the epoch must restore all of it.
    """
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(make_cfg(*RESUMABLE), straight)

    backward, save = Trainer.backward, torch.save

    def signalled_backward(self, loss, optimizer):
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        backward(self, loss, optimizer)

    def signalled_save(
        *args, **kwargs
    ):  # inside atomic_write: the checkpoint's temporary file is open
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        save(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "backward", signalled_backward)
        patch.setattr(torch, "save", signalled_save)
        with pytest.raises(
            Interrupted, match="^interrupted by SIGINT at epoch 1, step 4; checkpoint saved to"
        ) as stop:
            train(make_cfg(*RESUMABLE), stopped)
    assert (
        stop.value.exit_code == 130
        and f"resume with: dlpy train trainer.resume={stopped}" in str(stop.value)
    )
    assert (weights(stopped)["epoch"], weights(stopped)["step"], weights(stopped)["batch"]) == (
        0,
        4,
        4,
    )

    train(make_cfg(*RESUMABLE, f"trainer.resume={stopped}"), stopped)
    assert (
        (weights(straight)["epoch"], weights(straight)["step"])
        == (weights(stopped)["epoch"], weights(stopped)["step"])
        == (2, 12)
    )
    assert_same_weights(weights(straight), weights(stopped))


@pytest.fixture(scope="module")
def long_epochs(tmp_path_factory):
    """MNIST files with 2,100 training images: at batch 4, epochs of 500 steps.

    Long enough to be cut in the middle.
    """
    root = tmp_path_factory.mktemp("long")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", 2100, 0), ("t10k", 200, 1)):
        x, y = images_and_labels(n, 28, 1, 10, seed)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(x[..., 0]))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(y))
    return root


def dlpy_train(*args, data_dir):
    env = {**os.environ, "DLPY_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "dlpy", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_steps(proc, steps, timeout=120):
    """Read stderr's progress bar until the first epoch shows `steps` steps; return what it read."""
    seen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [int(n) for n in re.findall(rb"epoch 1/\d+:[^|]*\|[^|]*\|\s*(\d+)/", seen)]
        if done and max(done) >= steps:
            return seen
        if select.select([proc.stderr], [], [], 1.0)[0]:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
    proc.kill()
    raise AssertionError(f"no progress to step {steps}:\n{seen.decode(errors='replace')}")


def interrupt(run, signum, data_dir, common):
    """Start `dlpy train`, send `signum` once the first epoch is under way: (status, stderr)."""
    proc = dlpy_train(*common, f"hydra.run.dir={run}", data_dir=data_dir)
    seen = wait_for_steps(proc, 20)
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=120)
    return proc.returncode, (seen + rest).decode()


LONG = [
    *(o for o in FAST if o != "~callbacks.progress_bar"),  # the bar tells how far the epoch got
    "dataset=mnist",
    "model=mlp",
    "dataset.batch_size=4",
    "trainer.limit_train_batches=0",
    "trainer.max_epochs=1",
    "trainer.deterministic=true",
    "trainer.threads=1",
]


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_an_epoch_then_resume_gives_the_weights_of_an_uninterrupted_run(
    long_epochs, tmp_path
):
    straight = dlpy_train(*LONG, f"hydra.run.dir={tmp_path / 'straight'}", data_dir=long_epochs)
    run = tmp_path / "stopped"
    status, err = interrupt(run, signal.SIGINT, long_epochs, LONG)

    assert status == 130 and "Traceback" not in err
    state = weights(run)
    assert (
        state["epoch"] == 0 and 0 < state["batch"] == state["step"] < 500
    )  # in the middle of epoch 1
    assert err.strip().splitlines()[-1] == (
        f"dlpy: interrupted by SIGINT at epoch 1, step {state['step']}; checkpoint saved to "
        f"{run / 'checkpoints' / 'last.pt'}; resume with: dlpy train trainer.resume={run}"
    )
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"

    resumed = dlpy_train(*LONG, f"trainer.resume={run}", data_dir=long_epochs)
    for proc in (resumed, straight):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    assert weights(run)["step"] == weights(tmp_path / "straight")["step"] == 500
    assert_same_weights(weights(tmp_path / "straight"), weights(run))


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(long_epochs, tmp_path):
    run = tmp_path / "run"
    status, err = interrupt(run, signal.SIGTERM, long_epochs, LONG)
    assert status == 143 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("dlpy: interrupted by SIGTERM at epoch 1, step ")
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    assert 0 < weights(run)["batch"] < 500


DDP_FAULTS = (
    """
import os, signal
import torch.distributed as dist
import torch.nn.functional as F
from dlpy.errors import Interrupted
from dlpy.registry import TASKS
from dlpy.tasks.classification import Classification


@TASKS.register("one_rank_faults")
class OneRankFaults(Classification):
    '''Rank 1 alone has a NaN loss in step 2 and gets SIGINT in step 5.'''

    def training_step(self, batch, step):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        if dist.get_rank() == 1 and step == 1:
            loss = loss * float("nan")
        if dist.get_rank() == 1 and step == 4:
            os.kill(os.getpid(), signal.SIGINT)
        self.trainer.backward(loss, self.optimizer)
        return {"loss/xent": loss.detach()}
"""
    + BUILD
    + """
try:
    trainer.fit(task, data)
    stopped = None
except Interrupted as stop:
    stopped = stop.step
torch.save({"stopped": stopped, "skipped": trainer.nan_skipped}, f"{out}/rank{trainer.ddp.rank}.pt")
"""
)


@pytest.mark.slow
def test_data_parallel_processes_skip_and_stop_together_when_only_one_sees_the_fault(
    tmp_path, data_dir
):
    """A NaN loss or a signal in one process: the others must take the same decision at the same
    step, or they would wait forever for its gradients."""
    (tmp_path / "ddp_faults.py").write_text(DDP_FAULTS)
    torchrun(
        str(tmp_path / "ddp_faults.py"),
        str(tmp_path),
        f"data_dir={data_dir}",
        *FAST,
        "model=mlp",
        "model.task.name=one_rank_faults",
        "trainer.strategy=ddp",
        "trainer.on_nan=skip",
        "trainer.limit_train_batches=8",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    assert [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)] == [
        {"stopped": 5, "skipped": 1}
    ] * 2
    assert (weights(tmp_path)["step"], weights(tmp_path)["batch"]) == (
        5,
        5,
    )  # rank 0 saved where both stopped


# -- 2. SIGKILL while writing: the previous file stays whole ---------------------------------------

KILLED_WHILE_WRITING = """
import os, sys, time
import torch
from dlpy.io import save_checkpoint, save_json

kind, path = sys.argv[1], sys.argv[2]
checkpoint = kind == "checkpoint"
save = save_checkpoint if checkpoint else save_json
save({"task": {"w": torch.zeros(3)}, "step": 1} if checkpoint else {"status": "finished"}, path)


class Stalling:
    '''A file whose first write puts out half its bytes, then hangs until the process is killed.'''

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(bytes(data)[: len(data) // 2])
        self.f.flush()
        print("writing", flush=True)
        time.sleep(600)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


fdopen = os.fdopen
os.fdopen = lambda fd, mode: Stalling(fdopen(fd, mode))
save({"task": {"w": torch.ones(1000)}, "step": 2} if checkpoint else {"status": "running"}, path)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind, name", [("checkpoint", "last.pt"), ("metrics", "metrics.json")])
def test_sigkill_while_writing_leaves_the_previous_file_whole(kind, name, tmp_path):
    path = tmp_path / name
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WHILE_WRITING, kind, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "writing\n"
    proc.kill()
    proc.wait()
    leftover = [p.name for p in tmp_path.iterdir() if p != path]
    assert len(leftover) == 1 and leftover[0].startswith(
        f".{name}."
    )  # the half-written temporary file
    if kind == "checkpoint":
        state = load_checkpoint(path)
        assert state["step"] == 1 and torch.equal(state["task"]["w"], torch.zeros(3))
    else:
        assert json.loads(path.read_text()) == {"status": "finished"}


@pytest.mark.slow
def test_the_next_run_in_the_folder_removes_what_a_killed_write_left(make_cfg, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    train(make_cfg("model=mlp"), tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


# -- 3. NaN and inf losses: stop (diverged) or skip and count; checkpoints keep good weights -------


class FaultyLoss(Classification):
    """Classification whose loss is multiplied by `value` (nan, inf) at the given steps.

    A numerical fault on cue.
    """

    def __init__(self, net, optimizer, steps=(), value=math.nan, **kwargs):
        super().__init__(net, optimizer, **kwargs)
        self.steps, self.value = list(steps), float(value)

    def training_step(self, batch, step):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y) * (self.value if step in self.steps else 1.0)
        self.trainer.backward(loss, self.optimizer)
        return {"loss/xent": loss.detach()}


@pytest.fixture
def faulty():
    TASKS.register("faulty_loss")(FaultyLoss)
    yield ["model=mlp", "model.task.name=faulty_loss"]
    TASKS._entries.pop("faulty_loss")


@pytest.mark.slow
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_nan_or_inf_loss_stops_the_run_naming_step_and_term_and_keeps_the_last_good_checkpoint(
    value, faulty, run_cli, tmp_path
):
    run = tmp_path / "run"
    # trainer=debug: 5 steps an epoch; the 8th step (index 7) is the 3rd of epoch 2
    status, _, err = run_cli(
        "train",
        *FAST,
        *faulty,
        "+model.task.steps=[7]",
        f"+model.task.value={value}",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run}",
    )
    last = run / "checkpoints" / "last.pt"
    assert status == 1
    assert err == (
        f"dlpy: error: diverged: loss/xent = {value} at epoch 2, step 8 (trainer.on_nan=stop); "
        f"the last good checkpoint is {last}\n"
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["status"] == "diverged"
        and "loss/xent" in metrics["error"]
        and "step 8" in metrics["error"]
    )
    state = load_checkpoint(last)
    assert state["step"] == 5 and all(t.isfinite().all() for t in state["task"].values())
    assert (run / "checkpoints" / "best.pt").is_file()


@pytest.mark.slow
def test_on_nan_skip_skips_and_counts_the_batches_and_the_run_finishes(faulty, run_cli, tmp_path):
    run = tmp_path / "run"
    status, _, err = run_cli(
        "train",
        *FAST,
        *faulty,
        "+model.task.steps=[1,6]",
        "trainer.on_nan=skip",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run}",
    )
    assert status == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["status"], metrics["nan_skipped"], metrics["steps"]) == ("finished", 2, 10)
    assert all(math.isfinite(metrics[k]) for k in ("test/loss", "test/acc"))


def test_a_skipped_batch_changes_no_weight(faulty, make_cfg, tmp_path):
    cfg = make_cfg(
        *faulty, "+model.task.steps=[0,1,2]", "trainer.on_nan=skip", "trainer.max_steps=3"
    )
    torch.manual_seed(cfg.seed)
    initial = {f"net.{k}": v for k, v in build_task(cfg).net.state_dict().items()}
    train(cfg, tmp_path)
    assert_same_weights({"task": initial}, weights(tmp_path))


def test_fp16_loss_scaling_still_skips_overflowing_gradients_and_that_is_no_divergence(
    make_cfg, tmp_path
):
    cfg = make_cfg("model=mlp", "trainer.precision=fp16", "trainer.max_steps=3")
    trainer = build_trainer(cfg, tmp_path)
    trainer.precision.scaler = torch.amp.GradScaler(
        "cpu", init_scale=2.0**40
    )  # scaled gradients overflow fp16
    data = build_data(cfg)
    data.seed(cfg.seed)
    trainer.fit(build_task(cfg), data)
    assert trainer.step == 3 and trainer.nan_skipped == 0
    assert trainer.precision.scaler.get_scale() < 2.0**40  # it skipped those steps, backed off


def test_weights_that_hold_nan_are_never_written_over_a_checkpoint(make_cfg, tmp_path):
    cfg = make_cfg("model=mlp")
    trainer = build_trainer(cfg, tmp_path)
    task = build_task(cfg)
    trainer.fit(task, build_data(cfg))
    last = tmp_path / "checkpoints" / "last.pt"
    with torch.no_grad():
        next(task.parameters())[0, 0] = float("nan")
    with pytest.raises(Diverged, match=f"net.1.weight.*{last} was not overwritten"):
        trainer.save(last)
    assert all(t.isfinite().all() for t in load_checkpoint(last)["task"].values())


# -- 4. An output folder that cannot take the run's files fails before training --------------------


def unwritable(way, tmp_path, monkeypatch):
    """A run folder that cannot be written, made so in one of four ways; returns the folder."""
    if way == "under a file":
        (tmp_path / "file").write_text("not a folder")
        return tmp_path / "file" / "run"
    if way == "read-only":
        if os.geteuid() != 0:
            (tmp_path / "ro").mkdir()
            (tmp_path / "ro").chmod(0o500)
            return tmp_path / "ro" / "run"

        def refused(
            *args, **kwargs
        ):  # root writes through permissions: refuse the file as a read-only disk would
            raise PermissionError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "mkstemp", refused)
    if way == "full on write":

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
    if way == "too little free space":
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1024, 1024))
    return tmp_path / "run"


@pytest.mark.parametrize(
    "way", ["under a file", "read-only", "full on write", "too little free space"]
)
def test_an_output_folder_that_cannot_be_written_fails_before_training(
    way, make_cfg, tmp_path, monkeypatch
):
    cfg = make_cfg("model=mlp")
    run = unwritable(way, tmp_path, monkeypatch)
    with pytest.raises(DlpyError, match=f"output folder {re.escape(str(run))} "):
        train(cfg, run)
    assert not (run / "checkpoints").exists() and not list(run.glob("events.out.tfevents.*"))


def test_dlpy_train_into_a_folder_that_cannot_be_created_says_so_in_one_line(run_cli, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    status, _, err = run_cli("train", *FAST, f"hydra.run.dir={tmp_path / 'file' / 'run'}")
    assert status == 1 and err.count("\n") == 1 and str(tmp_path / "file" / "run") in err, err

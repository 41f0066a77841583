"""Data-parallel training: torchrun with 2 CPU processes (gloo) against one, same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from conftest import FAST

from dlpy.build import build_data, build_task, build_trainer
from dlpy.checkpointing import seed_everything
from dlpy.errors import DlpyError
from dlpy.train import train

# The same few steps for both: no dropout, so one process and two can compute the same thing.
TINY = ["model=mlp", "model.dropout=0.0"]

# What every torchrun script here starts with: the config from its command line, then the pieces
# dlpy train builds
BUILD = """
import sys, torch
from hydra import compose, initialize_config_dir
from dlpy import CONF_DIR
from dlpy.build import build_data, build_task, build_trainer
from dlpy.checkpointing import seed_everything

out, *overrides = sys.argv[1:]
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    cfg = compose("train", overrides)
seed_everything(cfg.seed)
trainer = build_trainer(cfg, out)
data = build_data(cfg).to(trainer.device)
data.seed(cfg.seed)
task = build_task(cfg)
"""

SCRIPT = (
    BUILD
    + """
trainer.fit(task, data)
result = {"weights": task.state_dict(), "val": trainer.evaluate("val")}
torch.save(result, f"{out}/rank{trainer.ddp.rank}.pt")
"""
)


def torchrun(*args, cwd, data_dir, check=True, timeout=300):
    """`torchrun --standalone --nproc_per_node=2 *args`; with check, it must exit 0."""
    env = {**os.environ, "DLPY_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


def train_in_one_process(make_cfg, run_dir):
    cfg = make_cfg(*TINY)
    seed_everything(cfg.seed)
    trainer = build_trainer(cfg, run_dir)
    data = build_data(cfg).to(trainer.device)
    data.seed(cfg.seed)
    task = build_task(cfg)
    trainer.fit(task, data)
    return task.state_dict(), trainer.evaluate("val")


@pytest.mark.slow
def test_two_processes_end_with_the_same_weights_as_one_process_on_the_same_global_batch(
    tmp_path, data_dir, make_cfg
):
    (tmp_path / "ddp_train.py").write_text(SCRIPT)
    torchrun(
        str(tmp_path / "ddp_train.py"),
        str(tmp_path),
        f"data_dir={data_dir}",
        *FAST,
        *TINY,
        "trainer.strategy=ddp",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    single, single_val = train_in_one_process(make_cfg, tmp_path / "single")

    assert ranks[0]["weights"].keys() == single.keys()
    for key in single:
        assert torch.equal(ranks[0]["weights"][key], ranks[1]["weights"][key]), (
            key
        )  # identical on both ranks
        torch.testing.assert_close(ranks[0]["weights"][key], single[key], rtol=1e-4, atol=1e-5)
    assert ranks[0]["val"] == ranks[1]["val"]  # numbers reduced over both shards
    for key, value in single_val.items():
        assert ranks[0]["val"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


@pytest.mark.slow
def test_torchrun_leaves_one_run_folder_written_by_rank_0(tmp_path, data_dir):
    proc = torchrun(
        "-m", "dlpy", "train", *FAST, *TINY, "trainer.strategy=ddp", cwd=tmp_path, data_dir=data_dir
    )
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["status"] == "finished" and "test/acc" in metrics
    assert (runs[0] / "checkpoints" / "best.pt").is_file() and (
        runs[0] / ".hydra" / "config.yaml"
    ).is_file()
    assert proc.stdout.count("run folder:") == 1  # rank 1 logs warnings only


@pytest.mark.slow
def test_k_fold_validation_under_ddp_gives_the_fold_means_from_one_run_folder(tmp_path):
    from conftest import write_boston

    write_boston(tmp_path / "data" / "boston_housing.npz")
    torchrun(
        "-m",
        "dlpy",
        "train",
        "trainer.strategy=ddp",
        "dataset=boston_housing",
        "model=mlp",
        "dataset.folds=2",
        "trainer.max_epochs=2",
        "~callbacks.progress_bar",
        cwd=tmp_path,
        data_dir=tmp_path / "data",
    )
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs
    folds = [json.loads((runs[0] / f"fold{k}" / "metrics.json").read_text()) for k in (0, 1)]
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["folds"] == 2 and metrics["status"] == "finished"
    assert metrics["val/mae"] == pytest.approx((folds[0]["val/mae"] + folds[1]["val/mae"]) / 2)


FAIL_ON_RANK_1 = """
import os, sys
import dlpy.train
from dlpy.cli import main

if os.environ["RANK"] == "1":
    def build_task(cfg):
        raise RuntimeError("rank 1 alone cannot build its task")
    # rank 0 goes on, into DistributedDataParallel's first broadcast
    dlpy.train.build_task = build_task
raise SystemExit(main(["train", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_a_process_that_fails_alone_stops_the_run_instead_of_leaving_the_others_waiting(
    tmp_path, data_dir
):
    (tmp_path / "fail_on_rank_1.py").write_text(FAIL_ON_RANK_1)
    proc = torchrun(
        "fail_on_rank_1.py",
        *FAST,
        *TINY,
        "trainer.strategy=ddp",
        cwd=tmp_path,
        data_dir=data_dir,
        check=False,
        timeout=120,  # a hang would wait 30 min
    )
    assert proc.returncode != 0
    assert "rank 1 alone cannot build its task" in proc.stderr


@pytest.fixture
def one_process_group(monkeypatch):
    """A process group of one (gloo), as torchrun --nproc_per_node=1 would set up."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
    }.items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_ddp_refuses_a_task_with_two_optimizers_naming_them(one_process_group, make_cfg, tmp_path):
    with pytest.raises(DlpyError, match="one optimizer; GAN has 2"):
        train(make_cfg("model=dcgan", "trainer.strategy=ddp", "trainer.device=cpu"), tmp_path)


def test_ddp_without_torchrun_and_torchrun_without_ddp_say_what_to_do(
    make_cfg, tmp_path, monkeypatch
):
    with pytest.raises(DlpyError, match="torchrun --nproc_per_node=N"):
        train(make_cfg("model=mlp", "trainer.strategy=ddp"), tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DlpyError, match="add trainer.strategy=ddp"):
        train(make_cfg("model=mlp"), tmp_path)


@pytest.mark.slow
def test_a_ddp_step_agrees_on_a_nan_loss_and_a_signal_in_one_collective(
    one_process_group, make_cfg, tmp_path, monkeypatch
):
    agreements, all_reduce = (
        [],
        dist.all_reduce,
    )  # the gradients' own averaging runs in DDP's C++ reducer

    def counted(tensor, *args, **kwargs):
        if tensor.dtype == torch.int64:  # decisions; epoch and evaluation means are float64
            agreements.append(tensor.numel())
        return all_reduce(tensor, *args, **kwargs)

    monkeypatch.setattr(dist, "all_reduce", counted)
    cfg = make_cfg(
        *TINY,
        "trainer.strategy=ddp",
        "trainer.device=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=6",
    )
    train(cfg, tmp_path)
    assert agreements == [2] * 6 + [
        1
    ]  # per step (loss not finite, signal) together; after validating, the signal


DDP_RESUME = (
    """
import os, signal
import torch.distributed as dist
from dlpy.errors import Interrupted
from dlpy.registry import TASKS
from dlpy.tasks.classification import Classification


@TASKS.register("signal_to_rank_1")
class SignalToRank1(Classification):
    '''Rank 1 alone gets SIGINT in step STOP_AT (an environment variable; none without it).'''

    def training_step(self, batch, step):
        if dist.get_rank() == 1 and step == int(os.environ.get("STOP_AT", -1)):
            os.kill(os.getpid(), signal.SIGINT)
        return super().training_step(batch, step)
"""
    + BUILD
    + """
try:
    trainer.fit(task, data)
except Interrupted:
    pass
torch.save(task.state_dict(), f"{out}/rank{trainer.ddp.rank}.pt")
"""
)


@pytest.mark.slow
def test_a_resumed_ddp_run_ends_with_the_weights_of_an_uninterrupted_one(
    tmp_path, data_dir, monkeypatch
):
    """Each process draws its own dropout masks: the checkpoint keeps each one's random state."""
    (tmp_path / "ddp_resume.py").write_text(DDP_RESUME)
    args = [
        *FAST,
        "model=mlp",
        "model.dropout=0.5",
        "model.task.name=signal_to_rank_1",
        "trainer.strategy=ddp",
        "trainer.deterministic=true",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=6",
    ]
    runs = {name: tmp_path / name for name in ("straight", "cut", "resumed")}
    for name, run in runs.items():
        run.mkdir()
        monkeypatch.setenv(
            "STOP_AT", "8" if name == "cut" else "-1"
        )  # step 8: inside the second epoch
        resume = (
            [f"trainer.resume={runs['cut'] / 'checkpoints' / 'last.pt'}"]
            if name == "resumed"
            else []
        )
        torchrun(
            str(tmp_path / "ddp_resume.py"),
            str(run),
            f"data_dir={data_dir}",
            *args,
            *resume,
            cwd=tmp_path,
            data_dir=data_dir,
        )
    assert torch.load(runs["cut"] / "checkpoints" / "last.pt", weights_only=True)["step"] == 9
    for rank in (0, 1):
        straight, resumed = (
            torch.load(runs[name] / f"rank{rank}.pt") for name in ("straight", "resumed")
        )
        assert all(torch.equal(straight[key], resumed[key]) for key in straight), f"rank {rank}"

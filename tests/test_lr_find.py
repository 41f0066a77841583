"""`dlpy lr_find`: the range test's ramp, its stopping rule and suggestions, that it leaves every
state as it found it, and the command's files and refusals (on the tiny data of conftest.py)."""

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST

from dlpy.checkpointing import rng_state
from dlpy.lr_find import prepare
from dlpy.range_test import Curve, Options, minimum, range_test, steepest, sweep

SMALL = [o for o in FAST if o.startswith(("trainer=", "dataset."))]  # the tiny data's settings


def snapshot(trainer):
    """Every state the range test may touch, as plain copies."""
    task = trainer.task
    (optimizer,) = trainer.optimizers
    rng = rng_state()
    return {
        "weights": {k: v.clone() for k, v in task.state_dict().items()},
        "moments": {
            i: {k: v.clone() for k, v in s.items()}
            for i, s in optimizer.state_dict()["state"].items()
        },
        "lrs": [group["lr"] for group in optimizer.param_groups],
        "torch_rng": rng["torch"],
        "numpy_rng": rng["numpy"][1].clone(),
        "python_rng": rng["python"],
        "data": trainer.data.state_dict()["generator"].clone(),
        "training": task.training,
    }


def same(a, b):
    """Whether two snapshots are equal, key by key, bitwise."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_the_range_test_leaves_weights_optimizer_generators_and_data_as_they_were(make_cfg):
    trainer = prepare(make_cfg())
    options = Options(min_lr=1e-4, max_lr=1e-1, steps=8)
    before = snapshot(trainer)
    curve = range_test(trainer, options, lr=1e-3)
    assert len(curve.lrs) == 8
    assert same(snapshot(trainer), before)
    # the same steps without the restore do change all of it: the comparison above can fail
    sweep(trainer, options, lr=1e-3)
    after = snapshot(trainer)
    for key in ("weights", "moments", "lrs", "torch_rng", "data"):
        assert not same(after[key], before[key]), key


def test_the_ramp_is_exponential_and_each_group_keeps_its_ratio_to_the_configured_rate(make_cfg):
    trainer = prepare(make_cfg())
    (optimizer,) = trainer.optimizers
    optimizer.param_groups[0]["lr"] = 2e-3  # as a pretrained body at twice the configured 1e-3
    curve = sweep(trainer, Options(min_lr=1e-5, max_lr=1e-3, steps=5, stop_factor=1e9), lr=1e-3)
    assert curve.lrs == pytest.approx([1e-5, 1e-5 * 10**0.5, 1e-4, 1e-4 * 10**0.5, 1e-3])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2 * curve.lrs[-1])
    # debiased EMA: the first smoothed point is the first loss itself
    assert curve.smoothed[0] == pytest.approx(curve.losses[0])


def test_the_test_stops_once_the_smoothed_loss_passes_k_times_its_best(make_cfg):
    trainer = prepare(make_cfg())
    options = Options(min_lr=1e-2, max_lr=1e6, steps=60, beta=0.5)
    curve = range_test(trainer, options, lr=1e-3)
    assert len(curve.lrs) < options.steps
    last = curve.smoothed[-1]
    best = min(curve.smoothed[:-1])
    assert not math.isfinite(last) or last > options.stop_factor * best
    assert curve.stopped


def test_the_suggestions_find_the_steepest_descent_and_a_tenth_of_the_minimum():
    lrs = list(np.logspace(-6, 0, 61))
    # falls fastest at lr 1e-3 (a tanh step in log10 lr), lowest at 1e-1, then climbs
    smoothed = [2 - math.tanh(2 * (math.log10(lr) + 3)) + max(0, math.log10(lr) + 1) for lr in lrs]
    curve = Curve(lrs=lrs, losses=smoothed, smoothed=smoothed)
    assert steepest(curve) == pytest.approx(1e-3)
    assert minimum(curve) == pytest.approx(1e-2)
    assert steepest(Curve(lrs=lrs[:12], losses=smoothed[:12], smoothed=smoothed[:12])) is None


def test_lr_find_writes_its_plot_and_prints_the_override(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("lr_find", *SMALL, "steps=30", "min_lr=1e-5")
    assert status == 0, err
    (override,) = re.findall(r"optimizer\.lr=(\S+)", out)
    assert 1e-5 <= float(override) <= 10
    (folder,) = re.findall(r"saved: (\S+)/lr_find\.png", out)
    folder = Path(folder)
    assert folder.parts[:2] == ("outputs", "lr_find")
    assert (folder / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(folder / "lr_find.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lrs = [float(row["lr"]) for row in rows]
    assert lrs[0] == pytest.approx(1e-5, rel=1e-4)
    assert float(override) in {float(f"{lr:.2g}") for lr in lrs} | {
        float(f"{lr / 10:.2g}") for lr in lrs
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=dcgan", *SMALL], "steps 2 optimizers"),
        (["model=reinforce", "dataset=cartpole", "trainer.device=cpu"], "is an environment"),
        (["steps=1"], "steps must be an integer >= 2"),
        (["steps=1000000"], "steps must be an integer >= 2 and <= 100000, got 1000000"),
        (["min_lr=fast"], "min_lr takes float"),
        (["trainer.strategy=ddp"], "trainer.strategy=single"),
        (["-m", "seed=0,1"], "takes overrides, not flags"),
    ],
)
def test_lr_find_refuses_in_one_line(run_cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("lr_find", *args)
    assert status != 0
    (line,) = err.splitlines()
    assert message in line
    assert not (tmp_path / "outputs").exists()

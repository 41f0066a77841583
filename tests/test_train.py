"""Training end to end, in-process, on the synthetic upstream-format files of conftest."""

import json
import math

import pytest
import torch
from conftest import SMALL_MODELS, presets
from omegaconf import OmegaConf

from dlpy.curves import read_history
from dlpy.io import load_checkpoint
from dlpy.train import train

# The character model reads text; every other preset trains on 28x28 Fashion-MNIST (the sequence
# models read the rows as steps); an agent plays CartPole, and its final numbers come from playing
# episodes (eval/), not from a test split, and it draws no images. The big presets train shrunk.
DATASET_FOR = {"char_lstm": "text", "reinforce": "cartpole"}


@pytest.mark.slow
# model=pretrained needs weights in torch's hub cache: tests/test_pretrained.py trains it there.
@pytest.mark.parametrize("model", [m for m in presets("model") if m != "pretrained"])
def test_two_steps_of_every_model_train_and_write_metrics(model, make_cfg, tmp_path):
    dataset = DATASET_FOR.get(model, "fashion_mnist")
    overrides = [f"model={model}", f"dataset={dataset}", "trainer.max_steps=2"]
    overrides += SMALL_MODELS.get(model, [])
    if dataset == "text":
        (tmp_path / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 100)
        overrides += [f"dataset.path={tmp_path / 'corpus.txt'}", "dataset.test_size=500"]
    cfg = make_cfg(*overrides)
    before = {k: v.clone() for k, v in _net_weights(cfg).items()}

    train(cfg, tmp_path)

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    tested = [
        key for key in metrics if key.startswith("test/" if dataset != "cartpole" else "eval/")
    ]
    assert tested and cfg.trainer.monitor in metrics
    for key in (*tested, cfg.trainer.monitor, "time/total_s", "train/samples_per_s"):
        assert math.isfinite(metrics[key]), key
    assert metrics["steps"] == 2 and metrics["status"] == "finished"
    history = read_history(tmp_path / "history.csv")  # agents and GANs too
    assert [row["epoch"] for row in history] == ["1"] and history[0]["step"] == "2"
    assert metrics["model/params"] == _parameters(cfg)  # every network: both of a GAN
    assert metrics["model/flops_per_sample"] > 0
    if dataset != "cartpole":
        assert list(
            (tmp_path / "images").glob("*_epoch001.png" if dataset != "text" else "*_epoch001.txt")
        )
    after = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["task"]
    assert any(not torch.equal(before[k], after[f"net.{k}"]) for k in before), "no weight changed"


def _parameters(cfg):
    from dlpy.build import build_task

    return sum(p.numel() for p in build_task(cfg).net.parameters())


def _net_weights(cfg):
    from dlpy.build import build_task

    torch.manual_seed(cfg.seed)
    return build_task(cfg).net.state_dict()


@pytest.mark.slow
def test_a_few_epochs_learn_the_synthetic_classes(make_cfg, tmp_path):
    cfg = make_cfg(
        "model=mlp",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=0",
        "trainer.limit_eval_batches=0",
    )
    assert train(cfg, tmp_path) > 0.9  # returns the monitored val/acc; chance is 0.1


@pytest.mark.slow
def test_resume_continues_exactly_where_the_run_stopped(make_cfg, tmp_path):
    """2 epochs straight == 1 epoch, then resume for 1 more: identical weights on CPU.

    The CNN has dropout (torch RNG) and batchnorm (buffers), the data is shuffled (its own
    generator), and the step schedule halves the rate after epoch 1 (scheduler state).
    """
    common = [
        "model=cnn",
        "optimizer=sgd",
        "optimizer.lr=0.05",
        "scheduler=step",
        "scheduler.step_epochs=1",
        "scheduler.gamma=0.5",
        "trainer.limit_train_batches=4",
        "trainer.deterministic=true",
    ]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(make_cfg(*common, "trainer.max_epochs=2"), straight)
    train(make_cfg(*common, "trainer.max_epochs=1"), interrupted)
    train(make_cfg(*common, "trainer.max_epochs=2", f"trainer.resume={interrupted}"), interrupted)

    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(interrupted / "checkpoints" / "last.pt")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (2, 8)
    assert a["task"].keys() == b["task"].keys()
    for key in a["task"]:
        assert torch.equal(a["task"][key], b["task"][key]), key
    assert (
        a["optimizers"][0]["param_groups"][0]["lr"]
        == b["optimizers"][0]["param_groups"][0]["lr"]
        == 0.0125
    )


def test_checkpoint_carries_everything_needed_to_resume(make_cfg, tmp_path):
    train(make_cfg("model=mlp"), tmp_path)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert {
        "task",
        "optimizers",
        "schedulers",
        "scaler",
        "epoch",
        "step",
        "rng",
        "data",
        "callbacks",
        "config",
    } <= state.keys()
    assert state["config"]["model"]["name"] == "mlp"
    assert OmegaConf.create(state["config"]).trainer.max_epochs == 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps_give_finite_losses(precision, make_cfg, tmp_path):
    cfg = make_cfg(
        "model=mlp",
        f"trainer.precision={precision}",
        "trainer.grad_clip=1.0",
        "trainer.max_steps=3",
    )
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert math.isfinite(metrics["test/loss"])


@pytest.mark.slow
def test_early_stopping_stops_when_the_monitored_metric_stalls(make_cfg, tmp_path):
    # lr 0: nothing ever improves after the first evaluation, so patience 1 stops after epoch 2
    cfg = make_cfg(
        "model=mlp",
        "optimizer.lr=0.0",
        "scheduler=none",
        "trainer.max_epochs=10",
        "callbacks.early_stopping.patience=1",
    )
    train(cfg, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", presets("scheduler"))
def test_every_schedule_runs(scheduler, make_cfg, tmp_path):
    train(
        make_cfg(
            "model=mlp",
            f"scheduler={scheduler}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=2",
        ),
        tmp_path,
    )
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 4


def test_total_time_covers_start_up_for_the_first_job_and_the_next(make_cfg, tmp_path):
    """The first job of a process counts from the process's start, a later one from its own."""
    import dlpy.train

    times = []
    for job in ("first", "second"):
        dlpy.train._jobs_started = 0 if job == "first" else 1
        train(make_cfg("model=mlp", "trainer.max_steps=2"), tmp_path / job)
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        times.append((metrics["time/startup_s"], metrics["time/total_s"]))
    (first_startup, first_total), (second_startup, second_total) = times
    assert first_total >= first_startup > 0
    assert second_total >= second_startup > 0
    assert second_startup < first_startup  # not the first job's time again

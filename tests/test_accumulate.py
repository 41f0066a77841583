"""Gradient accumulation (trainer.accumulate): N micro-batches are one step of an N-times larger
batch."""

import pytest
import torch

from dlpy.errors import DlpyError
from dlpy.io import load_checkpoint
from dlpy.train import train

# no dropout and no batch norm: the larger batch's step is then the same function of the same
# samples; the shuffled order does not depend on the batch size (one permutation, then split)
EXACT = ["model=mlp", "model.dropout=0", "scheduler=cosine", "trainer.limit_train_batches=0"]


def final_weights(make_cfg, run, *overrides):
    train(make_cfg(*EXACT, *overrides), run)
    return load_checkpoint(run / "checkpoints" / "last.pt")


def test_accumulating_4_batches_of_32_steps_as_one_batch_of_128(make_cfg, tmp_path):
    """500 samples: 4 steps of 128 (the last 116), or 4 windows of four 32s (the last ends on 20)"""
    big = final_weights(make_cfg, tmp_path / "big", "dataset.batch_size=128")
    small = final_weights(
        make_cfg, tmp_path / "small", "dataset.batch_size=32", "trainer.accumulate=4"
    )
    plain = final_weights(make_cfg, tmp_path / "plain", "dataset.batch_size=32")
    assert big["step"] == small["step"] == 4  # optimizer steps, which the schedule counts too
    assert plain["step"] == 16
    for key, weight in big["task"].items():
        torch.testing.assert_close(small["task"][key], weight, rtol=1e-5, atol=1e-6)
    moved = [not torch.allclose(plain["task"][k], w, atol=1e-4) for k, w in big["task"].items()]
    assert any(moved)  # 16 steps of 32 land elsewhere: the comparison can fail
    lr = [run["optimizers"][0]["param_groups"][0]["lr"] for run in (big, small)]
    assert lr[0] == lr[1]


def test_a_nan_micro_batch_skips_the_whole_accumulated_step(make_cfg, tmp_path, monkeypatch):
    from dlpy.tasks.classification import Classification

    step = Classification.training_step
    calls = []

    def nan_in_the_second_micro_batch(self, batch, index):
        calls.append(index)
        if len(calls) == 2:  # micro-batch 2 of the first window
            batch = (batch[0] * float("nan"), batch[1])
        return step(self, batch, index)

    monkeypatch.setattr(Classification, "training_step", nan_in_the_second_micro_batch)
    cfg = make_cfg(
        *EXACT,
        "scheduler=none",
        "trainer.accumulate=4",
        "trainer.on_nan=skip",
        "trainer.max_steps=1",
    )
    from dlpy.build import build_data, build_task, build_trainer

    trainer = build_trainer(cfg, tmp_path)
    data = build_data(cfg)
    task = build_task(cfg)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    trainer.fit(task, data)
    assert calls == [0, 0, 0, 0]  # four micro-batches, all of step 0
    assert trainer.step == 1
    assert trainer.nan_skipped == 1
    after = task.state_dict()
    assert all(torch.equal(before[k], after[k].cpu()) for k in before)


@pytest.mark.parametrize(
    ("model", "error"),
    [("dcgan", "steps 2 optimizers"), ("reinforce", "several optimizer steps per batch")],
)
def test_tasks_that_step_more_than_once_a_batch_refuse_in_one_line(
    model, error, make_cfg, tmp_path, monkeypatch
):
    from dlpy import metrics

    monkeypatch.setattr(metrics, "feature_network", lambda data: pytest.fail("FID came first"))
    dataset = "cartpole" if model == "reinforce" else "fashion_mnist"
    cfg = make_cfg(
        f"model={model}", f"dataset={dataset}", "trainer.accumulate=2", "trainer.max_steps=2"
    )
    with pytest.raises(DlpyError, match=error):
        train(cfg, tmp_path)  # before the GAN trains its FID feature network


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ({"accumulate": 0}, "trainer.accumulate must be an integer >= 1, got 0"),
        ({"accumulate": 2.5}, "trainer.accumulate must be an integer"),
        ({"val_every_n_epochs": 0}, "trainer.val_every_n_epochs must be an integer >= 1"),
        ({"ema": 1.0}, r"trainer.ema must be a number in \[0, 1\), got 1.0"),
        ({"ema": True}, r"trainer.ema must be a number in \[0, 1\), got True"),
    ],
)
def test_bad_values_of_the_new_options_fail_naming_the_key(option, error):
    from dlpy.trainer import Trainer

    with pytest.raises(DlpyError, match=error):
        Trainer(device="cpu", **option)

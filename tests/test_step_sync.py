"""The training step never waits for the device: its NaN guard stays on the device.

On a GPU every read of a tensor's value on the host (`.item()`, `bool(t)`, `.tolist()`) waits for
the queued kernels. The CPU runs kernels at once, so these tests count the reads instead: a mock
of each reading method, which fails the test when a training step calls it.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from dlpy.build import build_data, build_task, build_trainer
from dlpy.tasks.classification import Classification

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")


@pytest.fixture
def host_reads(monkeypatch):
    """Every host read of a tensor's value from here on, by method name."""
    reads = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: reads.append("synchronize"))
    return reads


class NaNAt(Classification):
    """Classification whose loss is NaN at the steps in `steps`."""

    steps = ()

    def training_step(self, batch, step):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y) * (math.nan if step in self.steps else 1.0)
        self.trainer.backward(loss, self.optimizer)
        return {"loss/xent": loss.detach()}


def started(make_cfg, tmp_path, *overrides):
    cfg = make_cfg("model=mlp", "scheduler=none", "~logger", *overrides)
    trainer = build_trainer(cfg, tmp_path)
    data = build_data(cfg)
    data.seed(cfg.seed)
    trainer.setup(build_task(cfg), data)
    trainer.optimizers = trainer.task.configure_optimizers()
    trainer.schedulers = [None]
    return trainer


def steps(trainer, n):
    batches = trainer.data.train_batches()
    for _ in range(n):
        trainer.flags = []
        logs = trainer.training_step(trainer.precision.move(next(batches)))
        trainer.step += 1
        trainer.unsettled.append((trainer.epoch, trainer.step, logs, trainer.flags))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_reads_nothing_back_from_the_device(
    precision, make_cfg, tmp_path, host_reads
):
    trainer = started(make_cfg, tmp_path, f"trainer.precision={precision}")
    host_reads.clear()  # building the optimizers may read; the steps must not
    steps(trainer, 4)
    assert host_reads == []
    trainer.settle()  # the logging step: one read for all four steps' flags
    assert host_reads == ["tolist"]
    assert trainer.epoch_batches == 4


def test_an_optimizer_without_fused_kernels_reads_its_flag_each_step(
    make_cfg, tmp_path, host_reads
):
    trainer = started(make_cfg, tmp_path, "optimizer=rmsprop")
    host_reads.clear()
    steps(trainer, 3)
    assert host_reads == ["__bool__"] * 3  # the fallback: one sync a step, as documented


def test_a_nan_loss_flagged_on_the_device_changes_no_weight_and_no_moment(make_cfg, tmp_path):
    trainer = started(make_cfg, tmp_path, "trainer.on_nan=skip")
    trainer.task.__class__ = NaNAt
    steps(trainer, 2)  # two good steps: Adam has moments to lose
    optimizer = trainer.optimizers[0]
    before = {k: v.clone() for k, v in trainer.task.state_dict().items()}
    moments = [optimizer.state[p]["exp_avg"].clone() for p in trainer.task.parameters()]
    trainer.task.steps = (2, 3)
    steps(trainer, 2)  # both NaN: skipped on the device
    after = trainer.task.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(
        torch.equal(m, optimizer.state[p]["exp_avg"])
        for m, p in zip(moments, trainer.task.parameters(), strict=True)
    )
    assert all(optimizer.state[p]["step"] == 2 for p in trainer.task.parameters())
    trainer.settle()
    assert (trainer.nan_skipped, trainer.epoch_batches) == (2, 2)
    assert math.isfinite(trainer.epoch_means()["loss/xent"])  # the skipped steps are left out


@pytest.mark.parametrize(
    "clipping",
    [
        ("trainer.grad_clip=0.1",),
        (
            "trainer.grad_clip=0.1",
            "trainer.grad_clip_mode=per_tensor",
            "trainer.grad_clip_value=0.01",
        ),
    ],
)
def test_clipping_reads_nothing_back_from_the_device(clipping, make_cfg, tmp_path, host_reads):
    trainer = started(make_cfg, tmp_path, *clipping)
    host_reads.clear()
    steps(trainer, 2)
    assert host_reads == []

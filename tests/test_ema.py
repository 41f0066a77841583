"""trainer.ema: a moving average of the weights, evaluated, checkpointed and resumed exactly; and
trainer.val_every_n_epochs."""

import torch
from test_step_sync import host_reads, started  # noqa: F401  (host_reads is a fixture)
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dlpy.build import build_data, build_task, build_trainer
from dlpy.callbacks.base import Callback
from dlpy.ema import EMA, evaluated_weights
from dlpy.io import load_checkpoint
from dlpy.runs import load_run
from dlpy.train import train

SMALL = ["model=mlp", "scheduler=none", "trainer.deterministic=true", "trainer.ema=0.9"]


def test_the_average_is_torchs_averaged_model_step_for_step():
    """The oracle: AveragedModel.update_parameters, weights and BatchNorm buffers alike."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    ours = EMA(net, 0.9)
    oracle = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    oracle.update_parameters(net)  # its first call copies: the weights the run starts from
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(5):
        net(torch.randn(16, 4)).pow(2).mean().backward()  # BatchNorm's statistics move too
        optimizer.step()
        optimizer.zero_grad()
        ours.update()
        oracle.update_parameters(net)
    got = ours.averaged.module.state_dict()
    for key, value in oracle.module.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-7)
    # a count is copied (as timm's ModelEmaV3 does), where torch's integer lerp truncates to 0
    assert int(got["1.num_batches_tracked"]) == 5
    assert not torch.equal(got["0.weight"], net.state_dict()["0.weight"])  # it lags behind


def test_the_average_updates_without_reading_anything_back(make_cfg, tmp_path, host_reads):  # noqa: F811
    trainer = started(make_cfg, tmp_path, "trainer.ema=0.99")
    trainer.ema = EMA(trainer.task.net, 0.99)
    batches = trainer.data.train_batches()
    host_reads.clear()
    for _ in range(3):
        trainer.train_window([next(batches)])
        trainer.ema.update()
    assert host_reads == []


def test_val_test_and_dlpy_eval_use_the_averaged_weights(make_cfg, tmp_path):
    cfg = make_cfg(*SMALL)
    trainer = build_trainer(cfg, tmp_path)
    data = build_data(cfg)
    data.seed(cfg.seed)
    task = build_task(cfg)
    trainer.fit(task, data)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    averaged = {k[len("module.") :]: v for k, v in state["ema"].items() if k != "n_averaged"}
    assert int(state["ema"]["n_averaged"]) == trainer.step == 5
    trained = {k: v.clone() for k, v in task.net.state_dict().items()}
    assert not torch.equal(averaged["1.weight"], trained["1.weight"])
    val = trainer.evaluate("val")
    task.net.load_state_dict(averaged)
    with trainer.precision.evaluating(task):
        by_hand = task.evaluate(map(trainer.precision.move, data.eval_batches("val")), "val")
    assert val == by_hand  # the numbers are those of the averaged weights
    weights = evaluated_weights(state)
    assert torch.equal(weights["net.1.weight"], averaged["1.weight"])
    (tmp_path / ".hydra").mkdir()
    from omegaconf import OmegaConf

    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    _, _, evaluated = load_run([str(tmp_path)], "usage")  # dlpy eval, predict, export start here
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    for key, value in evaluated.task.net.state_dict().items():
        assert torch.equal(value.cpu(), best["ema"][f"module.{key}"]), key


def test_a_resumed_run_averages_on_bitwise_equal(make_cfg, tmp_path):
    """The MLP has dropout and the data are shuffled: resuming must bring the average back too."""
    straight = tmp_path / "straight"
    resumed = tmp_path / "resumed"
    train(make_cfg(*SMALL, "trainer.max_epochs=2"), straight)
    train(make_cfg(*SMALL, "trainer.max_epochs=1"), resumed)
    train(make_cfg(*SMALL, "trainer.max_epochs=2", f"trainer.resume={resumed}"), resumed)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 10
    for part in ("task", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


class Seen(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, trainer, metrics):
        self.epochs.append((trainer.epoch, trainer.validated, sorted(metrics)))


def test_validation_every_2_epochs_and_after_the_last_and_best_pt_only_from_those(
    make_cfg, tmp_path
):
    cfg = make_cfg("model=mlp", "trainer.max_epochs=3", "trainer.val_every_n_epochs=2")
    trainer = build_trainer(cfg, tmp_path)
    seen = Seen()
    trainer.callbacks.insert(0, seen)
    data = build_data(cfg)
    data.seed(cfg.seed)
    trainer.fit(build_task(cfg), data)
    val = ["val/acc", "val/loss"]
    assert seen.epochs == [(1, False, []), (2, True, val), (3, True, val)]
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] in (2, 3)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 3

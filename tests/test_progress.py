"""The progress bar: its length and label follow trainer.max_steps, counts print whole, no log line
is glued to a bar."""

import logging
from types import SimpleNamespace

from dlpy.callbacks.progress import ProgressBar


def trainer(**given):
    fields = dict(
        max_epochs=12, max_steps=0, steps_per_epoch=430, accumulate=1, step=0, batch=0, epoch=0
    )
    fields |= {"task": SimpleNamespace(unit="samples"), "epoch_means": dict} | given
    return SimpleNamespace(**fields)


def test_a_run_that_max_steps_ends_in_the_first_epoch_counts_its_steps():
    bar = ProgressBar()
    bar.on_epoch_start(trainer(max_steps=50))
    assert (bar.bar.total, bar.bar.desc) == (50, "epoch 1/1")
    bar.on_epoch_start(trainer(max_steps=500, step=430, epoch=1))
    assert (bar.bar.total, bar.bar.desc) == (70, "epoch 2/2")
    bar.on_epoch_start(trainer())
    assert (bar.bar.total, bar.bar.desc) == (430, "epoch 1/12")


def test_accumulated_steps_and_a_resumed_epoch():
    bar = ProgressBar()
    # 430 batches in windows of 4: 108 steps an epoch; resumed after 10 steps (40 batches)
    bar.on_epoch_start(trainer(steps_per_epoch=108, accumulate=4, step=10, batch=40))
    assert (bar.bar.n, bar.bar.total) == (10, 108)


def test_the_epoch_line_prints_counts_whole_and_an_agents_rate_in_env_steps(caplog):
    bar = ProgressBar(enabled=False)
    means = {"charts/env_steps": 6528.0, "loss/policy": 0.25}  # a mean of a count is no count
    agent = trainer(task=SimpleNamespace(unit="env steps"), epoch_means=lambda: means)
    bar.on_epoch_start(agent)
    bar.on_train_batch_end(agent, {"charts/env_steps": 12800, "loss/policy": 0.25}, 256)
    with caplog.at_level(logging.INFO):
        bar.on_epoch_end(agent, {"val/return_mean100": 114.94})
    line = caplog.messages[-1]
    assert "charts/env_steps 12800 " in line  # the latest count, not the epoch's mean, as 12800
    assert "loss/policy 0.2500" in line
    assert "env steps/s" in line and "samples/s" not in line


def test_a_log_line_during_a_bar_starts_a_line_of_its_own(capsys):
    logger = logging.getLogger("dlpy.test_progress")
    handler = logging.StreamHandler()  # the console handler, on sys.stderr as Hydra's is
    logging.root.addHandler(handler)
    try:
        bar = ProgressBar(refresh_seconds=0)
        run = trainer()
        bar.on_fit_start(run)
        bar.on_epoch_start(run)
        bar.on_train_batch_end(run, {}, 32)
        logger.warning("training the FID feature network")
        bar.on_fit_end(run)
    finally:
        logging.root.removeHandler(handler)
    err = capsys.readouterr().err
    before = err[: err.index("training the FID")]
    assert before.endswith(("\n", "\r")) and "epoch 1/12" in before

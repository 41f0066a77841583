"""HPARAMS that compare runs: the hyperparameters chosen, and a logdir of several families read
back through TensorBoard's own backend, as its HPARAMS tab reads it."""

import os

import pytest
from conftest import FAST
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import (
    api_pb2,
    backend_context,
    get_experiment,
    list_session_groups,
    metadata,
)

from dlpy.callbacks.tensorboard import SESSION, TensorBoard
from dlpy.hparams import select
from dlpy.tasks.autoencoder import VAE
from dlpy.tasks.classification import Classification
from dlpy.tasks.gan import GAN
from dlpy.tasks.reinforce import Reinforce

# The dashboard shows this many hyperparameters (those that differ first, then by name) and
# metrics at first; the others wait to be ticked (TensorBoard's tf-hparams-query-pane,
# `_computeHParams` and `_computeMetrics`, in tensorboard/webfiles.zip).
SHOWN = 5
NAMESPACES = ("train/", "val/", "test/", "eval/", "lr/", "charts/")
AGENT = [
    "model=reinforce",
    "dataset=cartpole",
    "dataset.num_envs=2",
    "model.task.steps_per_update=8",
    "model.task.eval_episodes=2",
]


def hparams_tab(logdir):
    """What TensorBoard's HPARAMS tab gets from its backend for `logdir`: the hyperparameters in
    the order it shows them, with whether they differ; the metric tags in its order; and per
    session, its hyperparameters and metric values."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux, data_provider=provider)
    backend = backend_context.Context(tb)
    request = context.RequestContext()
    ask = api_pb2.GetExperimentRequest(hparams_limit=1000)  # the dashboard's own limit
    experiment = get_experiment.Handler(request, backend, "", ask).run()
    hparams = sorted(experiment.hparam_infos, key=lambda h: not h.differs)  # stable, as the UI's
    metrics = [m.name for m in experiment.metric_infos]
    columns = [api_pb2.ColParams(hparam=h.name) for h in hparams]
    columns += [api_pb2.ColParams(metric=m) for m in metrics]
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_RUNNING]
    ask = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=100, allowed_statuses=statuses, col_params=columns
    )
    groups = list_session_groups.Handler(request, backend, "", ask).run().session_groups
    sessions = {}
    for group in groups:
        values = {name: value_of(value) for name, value in group.hparams.items()}
        scores = {m.name.tag: m.value for m in group.metric_values}
        sessions[group.sessions[0].name] = (values, scores, group.sessions[0].status)
    return [(h.name, h.differs) for h in hparams], [m.tag for m in metrics], sessions


def value_of(value):
    """A google.protobuf Value as Python: bool, number or string."""
    return getattr(value, value.WhichOneof("kind"))


def experiment_tags(logdir):
    """The `_hparams_/experiment` summaries in the logdir: TensorBoard uses only one of them."""
    found = []
    for folder, _, files in os.walk(logdir):
        if any(name.startswith("events.out.tfevents") for name in files):
            events = EventAccumulator(folder)
            events.Reload()
            found += [folder for tag in events.Tags()["tensors"] if tag == metadata.EXPERIMENT_TAG]
    return found


def scalar_tags(logdir):
    """Every scalar tag of every run folder in the logdir."""
    tags = set()
    for folder, _, files in os.walk(logdir):
        if any(name.startswith("events.out.tfevents") for name in files):
            events = EventAccumulator(folder)
            events.Reload()
            tags |= set(events.Tags()["scalars"])
    return tags


# -- which hyperparameters ---------------------------------------------------------------------


CONFIG = {
    "seed": 1,
    "data_dir": "~/data",
    "model": {"name": "policy_mlp", "hidden": [64, 64], "task": {"normalize": True}},
    "dataset": {"name": "cartpole"},
    "optimizer": {"name": "adam", "lr": 0.003},
}


def test_the_overrides_come_first_then_the_fixed_set_each_with_its_own_type():
    overrides = ["model.task.normalize=true", "data_dir=~/data", "model.hidden=[64,64]", "seed=1"]
    hparams = select(CONFIG, overrides, {"model": "reinforce", "dataset": "cartpole"})
    assert list(hparams) == [
        "model.task.normalize",
        "data_dir",
        "model.hidden",
        "seed",
        "model",
        "dataset",
        "optimizer",
        "optimizer.lr",
    ]  # the agent has no dataset.batch_size: left out, not 'None'
    assert hparams["model.task.normalize"] is True  # a bool, not 1.0
    assert hparams["data_dir"] == os.path.expanduser("~/data") != "~/data"
    assert hparams["model.hidden"] == "[64, 64]"
    assert hparams["model"] == "reinforce"  # the group's choice, as typed, not the builder's name
    assert hparams["optimizer"] == "adam"  # no choice known: the builder's name


def test_deletions_and_how_a_run_is_watched_are_no_hyperparameters():
    overrides = ["~callbacks.progress_bar", "logger=[tensorboard,mlflow]", "+optimizer.lr=0.01"]
    hparams = select(CONFIG, overrides, {"logger": "[tensorboard, mlflow]"})
    assert list(hparams) == ["optimizer.lr", "model", "dataset", "optimizer", "seed"]
    assert "logger" not in hparams and not any(k.startswith("callbacks") for k in hparams)


def test_a_composed_config_without_hydra_gives_the_fixed_set(make_cfg, tmp_path):
    from dlpy.build import build_trainer

    trainer = build_trainer(make_cfg("model=vae", "seed=4"), tmp_path)
    (tensorboard,) = [cb for cb in trainer.callbacks if isinstance(cb, TensorBoard)]
    assert tensorboard.hparams == {
        "model": "vae",
        "dataset": "fashion_mnist",
        "optimizer": "adam",
        "optimizer.lr": 0.003,
        "dataset.batch_size": 32,
        "seed": 4,
    }


# -- a logdir of several families, read back as TensorBoard does ---------------------------------


FAMILIES = {  # run folder: (task, hparams, the final numbers its test gives)
    "cnn": (Classification, {"model": "cnn", "optimizer.lr": 1e-3, "seed": 0}, {"test/acc": 0.9}),
    "vae": (VAE, {"model": "vae", "optimizer.lr": 3e-3, "seed": 0}, {"test/neg_elbo": 250.0}),
    "dcgan": (GAN, {"model": "dcgan", "optimizer.lr": 2e-4, "seed": 0}, {"test/fid": 40.0}),
    "agent": (Reinforce, {"model": "reinforce", "seed": 0}, {"eval/return_mean": 500.0}),
    "sweep/seed=0": (Classification, {"model": "mlp", "seed": 0}, {"test/acc": 0.8}),
    "sweep/seed=1": (Classification, {"model": "mlp", "seed": 1}, {"test/acc": 0.7}),
}


def write_session(run_dir, task, hparams, metrics):
    """What a run's TensorBoard logger writes at the end, without the training before it."""
    logger = TensorBoard(run_dir, hparams | {"flag": True})
    logger.headline = task.headline_metrics
    final = metrics | {"test/loss": 0.5, "test/kid": 0.1, "eval/return_std": 0.0}
    logger.log_scalars(final, 10)
    logger.log_hparams(logger.hparams, final, 10)
    logger.close()


def test_every_family_shows_its_own_metrics_in_one_experiment(tmp_path):
    for name, (task, hparams, metrics) in FAMILIES.items():
        write_session(tmp_path / name, task, hparams, metrics)
    hparams, metrics, sessions = hparams_tab(tmp_path)
    assert experiment_tags(tmp_path) == []  # TensorBoard then merges every run's own session
    assert len(sessions) == len(FAMILIES)
    # Each family's headline metrics, and only those: the first five shown cover them all.
    assert sorted(metrics) == [
        "eval/return_mean",
        "test/acc",
        "test/fid",
        "test/loss",
        "test/neg_elbo",
    ]
    for name, (task, _, given) in FAMILIES.items():
        values, scores, status = sessions[f"{name}/{SESSION}"]
        assert status == api_pb2.STATUS_SUCCESS
        assert set(scores) == set(task.headline_metrics)
        assert {k: scores[k] for k in given} == pytest.approx(given)
        assert values["flag"] is True
    shown = [name for name, _ in hparams[:SHOWN]]
    assert shown == ["model", "optimizer.lr", "seed", "flag"]  # what differs first, seed among it
    assert dict(hparams)["seed"] and not dict(hparams)["flag"]


def test_a_run_added_later_brings_its_own_columns(tmp_path):
    write_session(tmp_path / "cnn", Classification, {"model": "cnn", "seed": 0}, {"test/acc": 0.9})
    write_session(tmp_path / "vae", VAE, {"model": "vae", "model.task.beta": 4.0}, {})
    hparams, metrics, sessions = hparams_tab(tmp_path)
    assert "model.task.beta" in dict(hparams) and "test/neg_elbo" not in metrics  # none measured
    assert sessions[f"vae/{SESSION}"][0]["model.task.beta"] == 4.0


# -- real runs: a CNN, a VAE, a DCGAN, an agent and a two-seed sweep -------------------------------


@pytest.mark.slow
def test_real_runs_of_every_family_in_one_logdir(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = ["trainer.max_steps=2", "trainer.log_every_n_steps=1"]
    agent = [o for o in FAST if not o.startswith("dataset.")] + quick + AGENT
    for name, args in {
        "cnn": [*FAST, *quick, "model=cnn"],
        "vae": [*FAST, *quick, "model=vae"],
        "dcgan": [*FAST, *quick, "model=dcgan"],
        "agent": agent,
    }.items():
        status, _, err = run_cli("train", *args, f"hydra.run.dir=logs/{name}")
        assert status == 0, err
    sweep = [*FAST, *quick, "model=mlp", "seed=0,1", "hydra.sweep.dir=logs/sweep"]
    status, _, err = run_cli("train", "-m", *sweep)
    assert status == 0, err
    logs = tmp_path / "logs"
    hparams, metrics, sessions = hparams_tab(logs)
    assert experiment_tags(logs) == []
    assert len(sessions) == 6
    expected = {
        "cnn": {"test/acc", "test/loss"},
        "vae": {"test/neg_elbo"},
        "dcgan": {"test/fid"},
        "agent": {"eval/return_mean"},
        "sweep/seed=0": {"test/acc", "test/loss"},
        "sweep/seed=1": {"test/acc", "test/loss"},
    }
    for name, tags in expected.items():
        values, scores, _ = sessions[f"{name}/{SESSION}"]
        assert set(scores) == tags, name
    assert len(metrics) <= SHOWN  # every run's metrics are among the columns shown at first
    shown = dict(hparams[:SHOWN])
    assert shown.get("seed") is True  # the swept seed is a column from the start
    assert {"model", "dataset"} <= set(shown)
    assert values["trainer.max_steps"] == 2 and values["seed"] == 1  # the overrides, typed
    tags = scalar_tags(logs)
    assert {"lr/discriminator", "lr/generator", "lr/adam", "charts/epoch"} <= tags
    assert [tag for tag in tags if not tag.startswith(NAMESPACES)] == []  # epoch, lr, ... all gone
    assert not any(tag.startswith("hparam") for tag in tags)  # no hparam/* copies of the metrics

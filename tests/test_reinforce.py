"""The policy-gradient agent: returns and advantages against hand-computed values, updates,
seeding, stopping."""

import json
import math
import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from dlpy.build import build_data, build_task, check_config
from dlpy.cli import main as cli
from dlpy.data.env import EnvData
from dlpy.errors import DlpyError, report
from dlpy.io import load_checkpoint
from dlpy.plots import save_gif
from dlpy.registry import DATASETS
from dlpy.tasks.advantages import discounted_returns, gae
from dlpy.tasks.ppo import clipped_surrogate, ppo_update
from dlpy.train import train

TINY = [
    "model=reinforce",
    "dataset=cartpole",
    "dataset.num_envs=2",
    "model.task.steps_per_update=8",
    "model.task.eval_episodes=2",
]


def cartpole(**options):
    return DATASETS.build(
        "gym",
        id="CartPole-v1",
        **{"num_envs": 2, "updates_per_epoch": 1, "num_features": 4, "num_actions": 2, **options},
    )


# -- the mathematics -------------------------------------------------------------------------------


def test_discounted_returns_restart_after_each_episode_end():
    gamma = 0.5
    rewards = torch.tensor([[1.0, 0.0], [1.0, 2.0], [1.0, 3.0]])  # (T=3 steps, N=2 copies)
    dones = torch.tensor([[False, False], [False, True], [True, False]])
    # copy 0: one episode of three 1s: 1 + .5 (1 + .5 * 1) = 1.75, then 1.5, then 1
    # copy 1: an episode 0, 2 that ends, then a new one whose 3 is all that is known of it
    expected = torch.tensor([[1.75, 1.0], [1.5, 2.0], [1.0, 3.0]])
    assert torch.allclose(discounted_returns(rewards, dones, gamma), expected)


def test_gae_by_hand():
    gamma, lam = 0.5, 0.5
    rewards, values, next_value = (
        torch.tensor([[1.0], [1.0]]),
        torch.tensor([[0.5], [1.0]]),
        torch.tensor([2.0]),
    )
    # delta_1 = 1 + .5 * 2 - 1 = 1;  delta_0 = 1 + .5 * 1 - .5 = 1;
    # A_0 = delta_0 + .5 * .5 * A_1 = 1.25
    running = gae(rewards, values, torch.tensor([[False], [False]]), next_value, gamma, lam)
    assert torch.allclose(running, torch.tensor([[1.25], [1.0]]))
    # the episode ends after step 0: neither V(s_1) nor A_1 reaches back to it: A_0 = 1 - .5 = .5
    ended = gae(rewards, values, torch.tensor([[True], [False]]), next_value, gamma, lam)
    assert torch.allclose(ended, torch.tensor([[0.5], [1.0]]))


def test_gae_with_lambda_1_is_the_bootstrapped_return_minus_the_value():
    torch.manual_seed(0)
    rewards, values, next_value = torch.rand(6, 3), torch.rand(6, 3), torch.rand(3)
    dones = torch.rand(6, 3) < 0.3
    advantages = gae(rewards, values, dones, next_value, 0.9, 1.0)
    # oracle: the plain discounted reward-to-go, with V(s_T) as one more reward where the episode
    # runs on
    padded_rewards = torch.cat([rewards, next_value[None]])
    padded_dones = torch.cat([dones, torch.ones(1, 3, dtype=torch.bool)])
    returns = discounted_returns(padded_rewards, padded_dones, 0.9)[:-1]
    assert torch.allclose(advantages, returns - values, atol=1e-6)


def test_the_clipped_surrogate_by_hand_and_where_its_gradient_stops():
    # ratios 1.5, 1.1, 0.5, 0.9 (clip 0.2) against advantages 1, 1, -1, -1
    ratios = torch.tensor([1.5, 1.1, 0.5, 0.9])
    log_probs = ratios.log().requires_grad_()
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss = clipped_surrogate(log_probs, torch.zeros(4), advantages, clip=0.2)
    # min(r A, clip(r) A): 1.2 (clipped), 1.1, -0.8 (clipped), -0.9
    assert torch.isclose(loss, -torch.tensor(1.2 + 1.1 - 0.8 - 0.9) / 4)
    loss.backward()
    # d(-r A / 4)/d log r = -r A / 4 where r is within the clip range; zero where clipped: the
    # policy moved far enough in the direction the advantage favours
    expected = torch.tensor([0.0, -1.1 / 4, 0.0, 0.9 / 4])
    assert torch.allclose(log_probs.grad, expected)


def test_the_clipped_surrogate_still_pulls_back_a_ratio_moved_the_wrong_way():
    # r = 0.5 with a positive advantage (or 1.5 with a negative one): min() keeps the unclipped
    # term, so the gradient stays and undoes the move (the bound is pessimistic, eq. 7)
    log_probs = torch.tensor([0.5, 1.5]).log().requires_grad_()
    clipped_surrogate(log_probs, torch.zeros(2), torch.tensor([1.0, -1.0]), 0.2).backward()
    assert torch.allclose(log_probs.grad, torch.tensor([-0.5 / 2, 1.5 / 2]))


class TinyPolicy(torch.nn.Module):
    """Logits and values linear in the observation, as PolicyMLP has them."""

    def __init__(self):
        super().__init__()
        self.actor, self.critic = torch.nn.Linear(3, 2), torch.nn.Linear(3, 1)

    def forward(self, obs):
        return self.actor(obs)

    def value(self, obs):
        return self.critic(obs).squeeze(-1)


def test_a_ppo_update_takes_a_step_per_minibatch_of_every_epoch():
    torch.manual_seed(0)
    net = TinyPolicy()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    losses = []

    def step(loss):
        losses.append(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    obs, actions = torch.randn(12, 3), torch.randint(0, 2, (12,))
    rollout = (obs, actions, torch.randn(12), torch.randn(12))
    before = torch.log_softmax(net(obs), -1).detach()
    options = {"value_coef": 0.5, "entropy_coef": 0.01, "normalize": True}
    logs = ppo_update(net, step, rollout, epochs=3, minibatches=4, clip=0.2, **options)
    assert len(losses) == 3 * 4 and all(loss.ndim == 0 for loss in losses)
    assert set(logs) == {
        "train/policy_loss",
        "train/value_loss",
        "train/entropy",
        "train/clip_frac",
    }
    assert 0 < logs["train/clip_frac"] <= 1  # so large a rate pushes some ratios past the clip
    assert not torch.allclose(torch.log_softmax(net(obs), -1), before)


# -- the environment as data -----------------------------------------------------------------------


def test_a_time_limit_truncates_and_hands_over_the_last_observation():
    data = cartpole(max_episode_steps=3)
    data.seed(0)
    for _ in range(3):
        before = data.obs
        step = data.step(torch.zeros(2, dtype=torch.long))
    assert step.truncated.all() and not step.terminated.any()
    assert step.final_obs is not None and step.final_obs.shape == (2, 4)
    assert not torch.equal(
        step.final_obs, before
    )  # the state the episode was cut at, after the third step
    assert list(data.lengths) == [3, 3] and list(data.returns) == [3.0, 3.0] and data.episodes == 2
    assert data.env_steps == 6


def test_solved_needs_100_episodes_whose_mean_reaches_the_threshold():
    data = cartpole()
    assert data.reward_threshold == 475  # CartPole-v1's, from its gymnasium spec
    data.returns = deque([500.0] * 99, maxlen=100)
    assert not data.solved()  # 99 perfect episodes are not 100
    data.returns = deque([474.0] + [475.0] * 99, maxlen=100)  # mean 474.99
    assert not data.solved()
    data.returns.append(475.0)  # the 474 falls out of the window: mean 475, the threshold itself
    assert data.solved()
    assert (
        not cartpole(reward_threshold=476).solved()
        and cartpole(reward_threshold=476).reward_threshold == 476
    )


def test_a_continuous_action_space_is_refused_naming_the_key():
    with pytest.raises(
        DlpyError, match="dataset.id: Pendulum-v1 has a Box action space; model=reinforce needs a"
    ):
        DATASETS.build("gym", id="Pendulum-v1", num_features=3, num_actions=None)


def test_sizes_that_do_not_fit_the_environment_name_the_key():
    with pytest.raises(DlpyError, match="dataset.num_actions is 3, but CartPole-v1 has 2"):
        cartpole(num_actions=3)


def test_the_config_reads_the_sizes_from_the_environment(make_cfg):
    for dataset, sizes in (("cartpole", (4, 2)), ("acrobot", (6, 3)), ("mountain_car", (2, 3))):
        cfg = make_cfg("model=reinforce", f"dataset={dataset}")
        assert (cfg.model.num_features, cfg.model.num_actions) == sizes, dataset
    cfg = make_cfg("model=reinforce", "dataset=gym", "dataset.id=CartPole-v1")
    assert (cfg.dataset.num_features, cfg.dataset.num_actions) == (4, 2)


def test_ppo_is_the_default_and_acrobot_keeps_its_preset(make_cfg):
    task = make_cfg("model=reinforce", "dataset=cartpole").model.task
    assert (task.advantage, task.normalize, task.entropy_coef) == ("ppo", False, 0.0)
    task = make_cfg("model=reinforce", "dataset=acrobot").model.task
    assert (task.advantage, task.normalize, task.entropy_coef) == ("ppo", True, 0.01)


def test_each_advantage_takes_the_settings_it_was_measured_with(make_cfg):
    def settings(*overrides):
        cfg = make_cfg("model=reinforce", "dataset=cartpole", *overrides)
        task = cfg.model.task
        return task.gamma, task.gae_lambda, task.steps_per_update, cfg.optimizer.lr

    assert settings() == (0.98, 0.8, 32, 1e-3)  # PPO's
    assert settings("model.task.advantage=a2c") == (0.99, 0.95, 16, 3e-3)
    assert settings("model.task.advantage=reinforce")[::3] == (0.99, 3e-3)
    # an override still wins over the advantage's own
    assert settings("model.task.advantage=a2c", "optimizer.lr=0.01")[3] == 0.01


def test_ppo_options_out_of_range_are_refused_naming_the_key(make_cfg):
    for option, key in (
        ("minibatches=0", "minibatches"),
        ("epochs=1.5", "epochs"),
        ("clip=-1", "clip"),
    ):
        with pytest.raises(DlpyError, match=f"model.task.{key} must be"):
            build_task(make_cfg(*TINY, f"model.task.{option}"))


@pytest.mark.slow
def test_whole_episode_rollouts_hold_exactly_the_episodes_that_ended(make_cfg):
    """An episode still running at an update waits for the next; no step is used twice or lost."""
    cfg = make_cfg(*TINY, "model.task.advantage=reinforce", "model.task.episodes_per_update=3")
    torch.manual_seed(0)
    data, task = build_data(cfg), build_task(cfg)
    data.seed(0)
    task.attach(data)
    rollouts = task.batches(data)
    lengths_seen = 0
    for _ in range(3):
        episodes_before = data.episodes
        obs, actions, returns = next(rollouts)
        ended = data.episodes - episodes_before
        assert ended >= 3
        assert len(obs) == len(actions) == len(returns) == sum(list(data.lengths)[lengths_seen:])
        lengths_seen += ended
        # each episode's last step (CartPole pays 1 a step) has return 1; every other step more
        assert int((returns == 1).sum()) == ended and (returns >= 1).all()


# -- training --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("advantage", ["reinforce", "baseline", "a2c", "ppo"])
def test_one_update_changes_the_policy_and_the_critic_it_trains(advantage, make_cfg, tmp_path):
    cfg = make_cfg(
        *TINY,
        f"model.task.advantage={advantage}",
        "model.task.episodes_per_update=2",
        "trainer.max_steps=1",
    )
    torch.manual_seed(cfg.seed)
    before = {k: v.clone() for k, v in build_task(cfg).net.state_dict().items()}
    train(cfg, tmp_path)
    after = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["task"]
    changed = {k for k in before if not torch.equal(before[k], after[f"net.{k}"])}
    assert {k for k in changed if k.startswith("actor.")}, "the policy did not change"
    critic = {k for k in changed if k.startswith("critic.")}
    assert bool(critic) == (advantage != "reinforce"), critic


@pytest.mark.slow
def test_the_same_seed_plays_the_same_first_episodes(make_cfg, tmp_path):
    def first_episodes(seed, folder):
        train(make_cfg(*TINY, f"seed={seed}", "trainer.max_steps=8"), tmp_path / folder)
        return load_checkpoint(tmp_path / folder / "checkpoints" / "last.pt")["data"]["returns"]

    a, b, c = first_episodes(3, "a"), first_episodes(3, "b"), first_episodes(4, "c")
    assert len(a) >= 2
    assert a == b
    assert a != c


@pytest.mark.slow
def test_a_run_stops_when_solved_and_reports_it(make_cfg, tmp_path):
    # a threshold a random policy meets (CartPole episodes of a random policy last about 22 steps);
    # a policy that does not learn keeps them that short, so 100 episodes come quickly
    cfg = make_cfg(
        *TINY,
        "optimizer.lr=0",
        "dataset.reward_threshold=5",
        "trainer.max_epochs=1000",
        "trainer.limit_train_batches=0",
    )
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["solved"] is True
    assert (
        metrics["episodes"] >= 100 and metrics["episodes"] < 130
    )  # stopped at the first update that solved it
    assert metrics["val/return_mean100"] >= 5
    for key in (
        "env_steps",
        "time/total_s",
        "eval/return_mean",
        "eval/return_std",
        "eval/sampled_return_mean",
    ):
        assert key in metrics, key
    assert metrics["env_steps"] == metrics["steps"] * 2 * 8


def test_a_run_stops_at_the_env_step_budget(make_cfg, tmp_path):
    cfg = make_cfg(
        *TINY,
        "model.task.max_env_steps=40",
        "trainer.max_epochs=1000",
        "trainer.limit_train_batches=0",
    )
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        metrics["env_steps"] == 48 and metrics["steps"] == 3 and metrics["solved"] is False
    )  # 16 steps an update


@pytest.mark.slow
def test_resume_restores_the_counters_and_goes_on(make_cfg, tmp_path):
    common = [*TINY, "trainer.max_epochs=10"]
    train(make_cfg(*common, "trainer.max_steps=2"), tmp_path)
    first = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["data"]
    train(make_cfg(*common, "trainer.max_steps=4", f"trainer.resume={tmp_path}"), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert first["env_steps"] == 32 and metrics["env_steps"] == 64 and metrics["steps"] == 4
    assert metrics["episodes"] >= first["episodes"]


# -- evaluation ------------------------------------------------------------------------------------


def test_save_gif_writes_every_frame_shrunk(tmp_path):
    frames = [np.full((40, 60, 3), 25 * i, dtype=np.uint8) for i in range(5)]
    save_gif(frames, tmp_path / "a.gif", fps=50)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 5 and gif.size == (30, 20)
        assert gif.info["duration"] == 20 and gif.info["loop"] == 0


@pytest.mark.slow
def test_dlpy_eval_plays_episodes_and_records_a_gif(make_cfg, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    train(make_cfg(*TINY, "trainer.max_steps=1"), run)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        json.dumps(load_checkpoint(run / "checkpoints" / "best.pt")["config"])
    )
    capsys.readouterr()
    assert cli(["eval", str(run), "episodes=3"]) == 0
    printed = capsys.readouterr().out
    assert "eval/return_mean" in printed and "eval/sampled_return_std" in printed
    assert not (run / "episode.gif").exists()

    # the frames as the environment would draw them (drawing needs pygame)
    frames = [np.full((8, 8, 3), 60 * i, np.uint8) for i in range(4)]
    monkeypatch.setattr(EnvData, "frames", lambda self, act, seed: frames)
    assert cli(["eval", str(run), "record=true"]) == 0
    with Image.open(run / "episode.gif") as gif:
        assert gif.n_frames == 4


def test_recording_draws_the_episode_and_without_pygame_names_the_package(make_cfg, monkeypatch):
    pytest.importorskip("pygame")  # the `render` extra; `make` installs it
    data = build_data(make_cfg(*TINY))
    always_left = lambda obs: torch.zeros(len(obs), dtype=torch.long)  # noqa: E731 - the pole falls in a few steps
    frames = data.frames(always_left, seed=0)
    assert 2 <= len(frames) < 100 and frames[0].ndim == 3 and frames[0].shape[2] == 3
    assert any((a != b).any() for a, b in zip(frames, frames[1:], strict=False)), (
        "the frames do not move"
    )

    monkeypatch.setitem(sys.modules, "pygame", None)  # as if it were not installed
    with pytest.raises(DlpyError, match="pygame"):
        build_data(make_cfg(*TINY)).frames(always_left, seed=0)


def test_eval_options_of_agents_are_refused_for_other_models(make_cfg, tmp_path):
    run = tmp_path / "run"
    train(make_cfg("model=mlp", "trainer.max_steps=1"), run)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        json.dumps(load_checkpoint(run / "checkpoints" / "best.pt")["config"])
    )
    assert cli(["eval", str(run), "episodes=3"]) == 2


RECORD_ONE_EPISODE = """
import torch
from dlpy import catalog
from dlpy.registry import DATASETS

data = DATASETS.build(
    "gym", id="CartPole-v1", num_envs=1, updates_per_epoch=1, num_features=4, num_actions=2
)
frames = data.frames(lambda obs: torch.zeros(len(obs), dtype=torch.long), seed=0)
print(len(frames))
"""


@pytest.mark.slow  # a fresh interpreter: about 5 s
def test_recording_without_a_display_prints_nothing_from_sdl(tmp_path):
    """SDL probed for a display, and without XDG_RUNTIME_DIR said so on stderr; now it draws
    off-screen (SDL_VIDEODRIVER=dummy), and the process prints only what it means to."""
    pytest.importorskip("pygame")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDL_", "XDG_", "DISPLAY"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", RECORD_ONE_EPISODE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) >= 2
    assert "XDG_RUNTIME_DIR" not in done.stderr and "error" not in done.stderr.lower()


# -- bounds on evaluation, and which environments may be made -------------------------------------


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory):
    """A run folder of an untrained CartPole agent, as `dlpy eval` reads one: the config and
    checkpoints/best.pt (its weights as built; training a step takes seconds more)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from dlpy import CONF_DIR

    run = tmp_path_factory.mktemp("agent")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["trainer=debug", "~callbacks.progress_bar", *TINY])
    config = OmegaConf.to_container(cfg, resolve=True)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(json.dumps(config))
    (run / "checkpoints").mkdir()
    state = {"task": build_task(cfg).state_dict(), "epoch": 0, "step": 0, "config": config}
    torch.save(state, run / "checkpoints" / "best.pt")
    return run


def files_in(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize(
    "option, message",
    [
        ("episodes=100000", "episodes must be an integer in [1, 10000], got 100000"),
        ("episodes=0", "episodes must be an integer in [1, 10000], got 0"),
        ("episodes=nan", "episodes must be an integer in [1, 10000], got 'nan'"),
        ("record=maybe", "record must be true or false, got 'maybe'"),
    ],
)
def test_eval_options_out_of_range_are_refused_before_anything_runs(
    option, message, agent_run, capsys
):
    assert cli(["eval", str(agent_run), option]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"dlpy: error: {message}"
    assert "evaluating" not in out  # refused before the checkpoint was even read


def test_eval_episodes_in_the_config_are_bounded_too(agent_run, capsys):
    assert cli(["eval", str(agent_run), "model.task.eval_episodes=100000"]) == 2
    assert "model.task.eval_episodes must be an integer in [1, 10000]" in capsys.readouterr().err


def test_eval_shows_its_episodes_in_a_bar_and_plays_as_many_as_asked(agent_run, capsys):
    assert cli(["eval", str(agent_run), "episodes=3"]) == 0
    out, err = capsys.readouterr()
    assert "eval episodes:" in err and "0/6" in err  # 3 greedy and 3 sampled
    assert "eval/return_mean" in out


def test_sigint_stops_eval_in_one_line_with_status_130(agent_run, capsys, monkeypatch):
    """Ctrl-C while the episodes are played: the bar closes, one line says why, nothing is
    written, and the handlers are the previous ones again."""
    from dlpy.tasks.reinforce import Reinforce

    act = Reinforce.act
    calls = []

    def act_then_sigint(self, obs, greedy=False):
        calls.append(greedy)
        if len(calls) == 5:  # in the middle of the greedy episodes
            os.kill(os.getpid(), signal.SIGINT)
        return act(self, obs, greedy)

    monkeypatch.setattr(Reinforce, "act", act_then_sigint)
    before = files_in(agent_run)
    # the handler before the command: Python's default_int_handler, or SIG_IGN where a shell
    # without job control started the suite in the background (`make test &`)
    handler = signal.getsignal(signal.SIGINT)
    assert cli(["eval", str(agent_run), "episodes=1000", "record=true"]) == 130
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1] == "dlpy: interrupted by SIGINT"
    assert "eval episodes:" in err and "/2000" in err
    assert "eval/return_mean" not in out and len(calls) == 5 and all(calls)
    assert files_in(agent_run) == before  # no episode.gif, nor anything else
    assert signal.getsignal(signal.SIGINT) is handler


def test_evaluation_plays_each_episode_from_its_own_seed_in_batches(monkeypatch):
    """More episodes than are played side by side: episode i still starts from seed + i, and
    every one is counted once."""
    from dlpy.data import env

    data = cartpole()
    always_left = lambda obs: torch.zeros(len(obs), dtype=torch.long)  # noqa: E731
    ended = []
    returns, lengths = data.play(always_left, 5, seed=7, ended=ended.append)
    monkeypatch.setattr(env, "PLAYED_TOGETHER", 2)
    batched, batched_lengths = data.play(always_left, 5, seed=7)
    assert np.array_equal(returns, batched) and np.array_equal(lengths, batched_lengths)
    assert sum(ended) == 5 and len(set(lengths.tolist())) > 1  # the seeds differ


def test_a_module_in_the_id_is_refused_and_not_imported(make_cfg, monkeypatch):
    """gymnasium's make imports `module` of `module:Env-v0`: `this` prints the Zen of Python."""
    monkeypatch.delitem(sys.modules, "this", raising=False)
    cfg = make_cfg("model=reinforce", "dataset=gym", "dataset.id=this:Foo-v0")
    with pytest.raises(DlpyError, match="dataset.id='this:Foo-v0' would import the module 'this'"):
        check_config(cfg)
    with pytest.raises(DlpyError, match="dataset.allow_import=true allows that"):
        DATASETS.build("gym", id="this:Foo-v0", num_features=4, num_actions=2)
    assert "this" not in sys.modules


def test_the_command_line_says_the_resolvers_refusal_in_one_line(make_cfg):
    """The sizes are resolved from the id (`${dlpy.env:...}`), and OmegaConf wraps what the
    resolver raises: dlpy's own line still reaches the user."""
    cfg = make_cfg("model=reinforce", "dataset=gym", "dataset.id=CartPol-v1")
    with pytest.raises(Exception) as caught:
        OmegaConf.to_container(cfg.model, resolve=True)
    line, status = report(caught.value)
    assert status == 2 and line.startswith("dlpy: error: dataset.id: Unknown gymnasium id")


DUMMY_ENVS = """
import gymnasium
gymnasium.register("DlpyDummy-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv")
"""


def test_a_module_in_the_id_is_imported_with_allow_import(make_cfg, tmp_path, monkeypatch):
    import gymnasium as gym

    (tmp_path / "dlpy_dummy_envs.py").write_text(DUMMY_ENVS)
    monkeypatch.syspath_prepend(str(tmp_path))
    env_id = "dlpy_dummy_envs:DlpyDummy-v0"
    given = (
        "dataset=gym",
        f"dataset.id={env_id}",
        "dataset.allow_import=true",
        "dataset.num_envs=1",
    )
    allowed = make_cfg("model=reinforce", *given)
    refused = allowed.copy()
    refused.dataset.allow_import = False
    try:
        with pytest.raises(DlpyError, match="would import the module 'dlpy_dummy_envs'"):
            check_config(refused)
        assert "dlpy_dummy_envs" not in sys.modules
        data = build_data(allowed)
        assert "dlpy_dummy_envs" in sys.modules and (data.num_features, data.num_actions) == (4, 2)
    finally:
        sys.modules.pop("dlpy_dummy_envs", None)
        gym.registry.pop("DlpyDummy-v0", None)


def test_environment_options_out_of_range_are_refused_naming_the_key(make_cfg):
    cfg = make_cfg("model=reinforce", "dataset=gym", "dataset.id=CartPole-v1")
    for key, value, message in (
        ("id", "CartPol-v1", "dataset.id: Unknown gymnasium id 'CartPol-v1'. Did you mean "),
        ("allow_import", "maybe", "dataset.allow_import must be true or false, got 'maybe'"),
        ("num_envs", 1e12, "dataset.num_envs must be an integer in [1, 1024], got 1000000000000.0"),
        ("num_envs", 0, "dataset.num_envs must be an integer in [1, 1024], got 0"),
        ("max_episode_steps", 0, "dataset.max_episode_steps must be an integer >= 1 or null"),
        ("reward_threshold", math.nan, "dataset.reward_threshold must be a finite number or null"),
        ("reward_threshold", -math.inf, "dataset.reward_threshold must be a finite number or null"),
    ):
        changed = cfg.copy()
        changed.dataset[key] = value
        with pytest.raises(DlpyError) as caught:
            check_config(changed)
        assert str(caught.value).startswith(message), key

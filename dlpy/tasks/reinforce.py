"""Policy gradients on an environment: REINFORCE (Williams 1992), with a learned baseline, A2C,
and PPO (Schulman et al. 2017).

`batches(data)` plays the environment instead of reading stored samples: each batch is a rollout
collected by the current policy, and `training_step` turns it into one update. The trainer runs
it like any other task; the task stops it (`trainer.should_stop`) once the environment is solved
or the env-step budget is spent.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dlpy.data.base import Batch, DataSet
from dlpy.data.env import EnvData
from dlpy.errors import DlpyError
from dlpy.plots import save_gif
from dlpy.registry import TASKS
from dlpy.schema import Count, NonNegative, Positive, Probability, Range, Size
from dlpy.tasks.advantages import discounted_returns, gae
from dlpy.tasks.base import Logs, OptimizerFactory, Task
from dlpy.tasks.ppo import policy_terms, ppo_update

log = logging.getLogger(__name__)
ADVANTAGES = ("reinforce", "baseline", "a2c", "ppo")
EVAL_SEED = 1_000_000  # evaluation episodes start from seeds the training copies never use
# Evaluation episodes (model.task.eval_episodes, `dlpy eval <run> episodes=`): at most 10,000. The
# mean return's standard error is std / sqrt(n), 1% of the returns' spread at 10,000 episodes, so
# more tell nothing new; a solved CartPole agent's 10,000 greedy and 10,000 sampled episodes are
# already 10 million environment steps. Unbounded, episodes=100000 ran on with nothing shown.
EvalEpisodes = Annotated[int, Range(ge=1, le=10_000)]


@TASKS.register("reinforce")
class Reinforce(Task):
    """Policy gradient on discrete actions: REINFORCE, REINFORCE with a learned baseline, A2C,
    or PPO; with an entropy bonus."""

    headline_metrics = ("eval/return_mean",)
    unit = "env steps"  # a rollout's rows are the environment's steps
    probed = False  # a rollout is played, not read: the policy's sizes are checked against the env

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        advantage: Literal[ADVANTAGES] = "ppo",
        gamma: Probability = 0.98,
        gae_lambda: Probability = 0.8,
        normalize: bool = False,
        steps_per_update: Size = 32,
        episodes_per_update: Size = 8,
        value_coef: NonNegative = 0.5,
        entropy_coef: NonNegative = 0.0,
        max_env_steps: Count = 0,
        eval_episodes: EvalEpisodes = 20,
        epochs: Size = 10,
        minibatches: Size = 4,
        clip: Positive = 0.2,
    ) -> None:
        super().__init__(optimizer)
        self.net = net
        self.advantage = advantage
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.normalize = normalize
        self.value_coef = value_coef
        self.entropy_coef = entropy_coef
        self.steps_per_update = steps_per_update
        self.episodes_per_update = episodes_per_update
        self.max_env_steps = max_env_steps
        self.eval_episodes = eval_episodes
        self.show_progress = False  # `dlpy eval` shows a bar over the evaluation episodes
        self.ppo = {"epochs": epochs, "minibatches": minibatches, "clip": clip}
        self.data: EnvData | None = None
        self.rows = []

    def attach(self, data: DataSet) -> None:
        if not isinstance(data, EnvData):
            raise DlpyError(
                "model=reinforce plays an environment: choose dataset=cartpole, acrobot, "
                "mountain_car, or gym with dataset.id=<a gymnasium id>"
            )
        self.data = data
        # Whole-episode rollouts: the steps taken so far (one row per step of every copy), the
        # index of each copy's first step not yet used in an update, and of its running
        # episode's first step.
        self.rows = []
        self.offset = 0
        self.used = np.zeros(data.num_envs, dtype=np.int64)
        self.start = np.zeros(data.num_envs, dtype=np.int64)
        self.episodes_seen = 0
        self.last_episodes = (0.0, 0.0)
        self.clock = None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, greedy: bool = False) -> torch.Tensor:
        """Each copy's action: the likeliest (greedy), else one drawn from the policy."""
        logits = self.net(obs)
        return logits.argmax(-1) if greedy else torch.multinomial(logits.softmax(-1), 1).squeeze(-1)

    # -- rollouts -------------------------------------------------------------------------------

    def batches(self, data: EnvData) -> Iterator[Batch]:
        collect = self.steps if self.advantage in ("a2c", "ppo") else self.episodes
        if self.clock is None:  # env steps per second count from the first rollout of this process
            self.clock = (time.perf_counter(), data.env_steps)
        while True:
            yield collect(data)

    def steps(self, data: EnvData) -> Batch:
        """A2C's rollout: steps_per_update steps of every copy, as (T x N) grids, plus the state
        reached."""
        obs = []
        actions = []
        rewards = []
        dones = []
        truncated = []
        final_obs = torch.zeros(
            self.steps_per_update, data.num_envs, data.num_features, device=data.device
        )
        for t in range(self.steps_per_update):
            obs.append(data.obs)
            actions.append(self.act(data.obs))
            step = data.step(actions[-1])
            rewards.append(step.reward)
            dones.append(step.terminated | step.truncated)
            truncated.append(step.truncated)
            if step.final_obs is not None:
                final_obs[t] = step.final_obs
        return (
            torch.cat(obs),
            torch.cat(actions),
            torch.stack(rewards),
            torch.stack(dones),
            torch.stack(truncated),
            final_obs.flatten(0, 1),
            data.obs,
        )

    def episodes(self, data: EnvData) -> Batch:
        """REINFORCE's rollout: play until episodes_per_update episodes have ended; the steps of
        those episodes with their reward-to-go. An episode still running when the update comes
        waits for the next one (its first actions then come from the policy before the update,
        as in any asynchronous actor)."""
        ended = 0
        while ended < self.episodes_per_update:
            obs = data.obs
            action = self.act(obs)
            step = data.step(action)
            done = step.terminated | step.truncated
            self.rows.append((obs, action, step.reward, done))
            if done.any():
                ended += int(done.sum())
                self.start[done.cpu().numpy()] = self.offset + len(self.rows)
        obs, actions, rewards, dones = (
            torch.stack(column) for column in zip(*self.rows, strict=False)
        )
        # The classic return of an episode ends at its end, whether it fell or ran out of time.
        returns = discounted_returns(rewards, dones, self.gamma)
        t = torch.arange(self.offset, self.offset + len(self.rows))[:, None]
        ready = (t >= torch.from_numpy(self.used)) & (t < torch.from_numpy(self.start))
        ready = ready.to(data.device)
        self.used[:] = self.start
        drop = int(self.start.min()) - self.offset
        self.rows = self.rows[drop:]
        self.offset += drop
        return obs[ready], actions[ready], returns[ready]

    # -- the update -----------------------------------------------------------------------------

    def a2c_targets(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """(obs, actions, values, advantages, returns) of an A2C rollout, by GAE."""
        obs, actions, rewards, dones, truncated, final_obs, next_obs = batch
        values = self.net.value(obs)
        with torch.no_grad():
            # A time limit is not a failure: where an episode was cut, its last reward is followed
            # by the value of the state it was cut at (Pardo et al. 2018, "Time limits in RL").
            if truncated.any():
                cut_value = self.net.value(final_obs).view_as(rewards)
                rewards = rewards + self.gamma * truncated * cut_value
            advantages = gae(
                rewards,
                values.detach().view_as(rewards),
                dones,
                self.net.value(next_obs),
                self.gamma,
                self.gae_lambda,
            ).flatten()
            returns = advantages + values.detach()
        return obs, actions, values, advantages, returns

    def episode_targets(self, batch: Batch) -> tuple[torch.Tensor | None, ...]:
        """(obs, actions, values, advantages, returns) of whole episodes: REINFORCE's advantage
        is the return itself, or the return less a learned baseline."""
        obs, actions, returns = batch
        values = self.net.value(obs) if self.advantage == "baseline" else None
        advantages = returns - values.detach() if values is not None else returns
        return obs, actions, values, advantages, returns

    def training_step(self, batch: Batch, step: int) -> Logs:
        if self.advantage == "ppo":
            return self.ppo_step(batch)
        targets = self.a2c_targets if self.advantage == "a2c" else self.episode_targets
        obs, actions, values, advantages, returns = targets(batch)
        if self.normalize and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        log_probs, entropy = policy_terms(self.net(obs), actions)
        # (1) policy: raise the log-probability of actions in proportion to their advantage
        # (Williams 1992)
        policy_loss = -(log_probs * advantages).mean()
        loss = policy_loss - self.entropy_coef * entropy
        logs = {"train/policy_loss": policy_loss.detach(), "train/entropy": entropy.detach()}
        if values is not None:
            # (2) critic: regress the state values on the (bootstrapped) returns
            value_loss = F.mse_loss(values, returns)
            loss = loss + self.value_coef * value_loss
            logs["train/value_loss"] = value_loss.detach()
        self.trainer.backward(loss, self.optimizer)
        return logs | self.progress()

    def ppo_step(self, batch: Batch) -> Logs:
        """PPO: A2C's rollout and GAE targets, then several epochs of clipped minibatch steps."""
        with torch.no_grad():
            obs, actions, _, advantages, returns = self.a2c_targets(batch)
        step = partial(self.trainer.backward, optimizer=self.optimizer)
        coefs = {"value_coef": self.value_coef, "entropy_coef": self.entropy_coef}
        rollout = (obs, actions, advantages, returns)
        logs = ppo_update(self.net, step, rollout, **self.ppo, **coefs, normalize=self.normalize)
        return logs | self.progress()

    def progress(self) -> Logs:
        """The episodes' numbers for the logs, and the decision to stop."""
        data = self.data
        now = time.perf_counter()
        if data.episodes > self.episodes_seen:
            new = min(data.episodes - self.episodes_seen, len(data.returns))
            self.last_episodes = (
                float(np.mean(list(data.returns)[-new:])),
                float(np.mean(list(data.lengths)[-new:])),
            )
            self.episodes_seen = data.episodes
        if data.solved() or (self.max_env_steps and data.env_steps >= self.max_env_steps):
            log.info(
                "%s after %d episodes, %d env steps: 100-episode mean return %.1f",
                "solved" if data.solved() else "env-step budget spent",
                data.episodes,
                data.env_steps,
                data.return_mean() or 0.0,
            )
            self.trainer.should_stop = True
        return {
            "charts/episodic_return": self.last_episodes[0],
            "charts/episodic_length": self.last_episodes[1],
            "charts/return_mean100": data.return_mean() or 0.0,
            "charts/env_steps": data.env_steps,
            "charts/env_steps_per_s": (data.env_steps - self.clock[1])
            / max(now - self.clock[0], 1e-9),
        }

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate(self, batches: Iterable[Batch], split: str) -> dict[str, float]:
        """Between epochs: the running mean of the training episodes (no extra env steps). At the
        end ("test"): eval_episodes fresh episodes with the greedy and with the sampled policy."""
        if split != "test":
            mean = self.data.return_mean()
            return {} if mean is None else {f"{split}/return_mean100": mean}
        seed = EVAL_SEED + self.data.base_seed
        n = self.eval_episodes
        log.info("playing %d evaluation episodes, greedy then sampled", n)
        bar = tqdm(
            total=2 * n,
            desc="eval episodes",
            unit="episode",
            leave=False,
            disable=not self.show_progress,
        )
        with bar:  # closed also when a signal stops the episodes, before the line that says so
            greedy, lengths = self.data.play(partial(self.act, greedy=True), n, seed, bar.update)
            sampled, _ = self.data.play(self.act, n, seed, bar.update)
        return {
            "eval/return_mean": float(greedy.mean()),
            "eval/return_std": float(greedy.std()),
            "eval/length_mean": float(lengths.mean()),
            "eval/sampled_return_mean": float(sampled.mean()),
            "eval/sampled_return_std": float(sampled.std()),
        }

    def record(self, path: Path) -> int:
        """One greedy episode as an animated GIF at `path`; returns its number of frames."""
        frames = self.data.frames(partial(self.act, greedy=True), EVAL_SEED + self.data.base_seed)
        save_gif(frames, path, fps=self.data.render_fps)
        return len(frames)

    def summary(self) -> dict[str, float]:
        return {
            "episodes": self.data.episodes,
            "env_steps": self.data.env_steps,
            "solved": self.data.solved(),
            "train/return_mean100": self.data.return_mean(),
        }

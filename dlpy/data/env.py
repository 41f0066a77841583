"""Environments as data: seeded gymnasium vector envs that an agent plays instead of reading batches.

`EnvData` has the trainer's side of the data interface (`steps_per_epoch`, `to`, `seed`,
`state_dict`, `eval_batches`); the reinforce task steps it and reads its episode counters.
Episodes end by termination (the pole fell) or truncation (the time limit); the vector env
resets an ended copy in the same step and hands over the last observation, which an
actor-critic needs to bootstrap a truncated episode.
"""

from collections import deque, namedtuple
from collections.abc import Iterator
from functools import cache

import numpy as np
import torch

from dlpy.data.base import Batch
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS

WINDOW = 100  # episodes in the running mean that decides "solved", as gymnasium's reward thresholds mean it


@cache
def env_shape(env_id):
    """{"num_features": n, "num_actions": k} of a gymnasium id, or None where it has no such shape.

    The config reads it (`${dlpy.env:${.id},num_actions}`, a resolver registered in dlpy/__init__.py),
    so a network fits any environment without numbers typed by hand; what is wrong with an
    environment is said by EnvData, which names the key.
    """
    import gymnasium as gym

    try:
        env = gym.make(env_id)
    except Exception:  # noqa: BLE001 - unknown id or missing dependency: EnvData says which
        return None
    obs, act = env.observation_space, env.action_space
    env.close()
    if not isinstance(act, gym.spaces.Discrete) or not isinstance(obs, gym.spaces.Box):
        return None
    return {"num_features": int(np.prod(obs.shape)), "num_actions": int(act.n)}


# What one step of every copy gives, as (num_envs, ...) tensors; final_obs only where a time limit cut an episode.
Step = namedtuple("Step", "reward terminated truncated final_obs")


class EnvData:
    def __init__(
        self,
        env_id,
        num_envs,
        updates_per_epoch,
        num_features,
        num_actions,
        reward_threshold=None,
        max_episode_steps=None,
    ):
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        for key, value in (("num_envs", num_envs), ("updates_per_epoch", updates_per_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DlpyError(f"dataset.{key} must be a positive integer, got {value!r}")
        self.id, self.num_envs, self.updates_per_epoch = env_id, num_envs, updates_per_epoch
        self.limits = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
        try:
            probe = gym.make(env_id, **self.limits)
        except Exception as err:  # noqa: BLE001 - unknown id, missing dependency, bad keyword
            raise DlpyError(
                f"dataset.id: gymnasium cannot make {env_id!r}: {type(err).__name__}: {err}"
            ) from None
        if not isinstance(probe.action_space, gym.spaces.Discrete):
            raise DlpyError(
                f"dataset.id: {env_id} has a {type(probe.action_space).__name__} action space; "
                "model=reinforce needs a discrete one"
            )
        if not isinstance(probe.observation_space, gym.spaces.Box):
            raise DlpyError(
                f"dataset.id: {env_id} observes a {type(probe.observation_space).__name__}; "
                "model=reinforce needs an array of numbers (a Box)"
            )
        shape = {
            "num_features": int(np.prod(probe.observation_space.shape)),
            "num_actions": int(probe.action_space.n),
        }
        for key, value in (("num_features", num_features), ("num_actions", num_actions)):
            if value != shape[key]:
                raise DlpyError(f"dataset.{key} is {value}, but {env_id} has {shape[key]}")
        self.num_features, self.num_actions = num_features, num_actions
        self.reward_threshold = (
            reward_threshold if reward_threshold is not None else probe.spec.reward_threshold
        )
        self.render_fps = probe.metadata.get("render_fps", 30)
        probe.close()
        self.envs = SyncVectorEnv([self.make] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
        self.name, self.root, self.device = env_id, None, torch.device("cpu")
        self.env_steps, self.episodes, self.base_seed = 0, 0, 0
        self.returns, self.lengths = deque(maxlen=WINDOW), deque(maxlen=WINDOW)
        self.episode_return, self.episode_length = (
            np.zeros(num_envs),
            np.zeros(num_envs, dtype=np.int64),
        )
        self.obs = None

    def make(self, render_mode=None):
        import gymnasium as gym

        return gym.make(self.id, render_mode=render_mode, **self.limits)

    def tensor(self, array):
        return torch.as_tensor(np.asarray(array), dtype=torch.float32, device=self.device).flatten(
            1
        )

    # -- the trainer's interface ----------------------------------------------------------------

    def steps_per_epoch(self) -> int:
        return self.updates_per_epoch

    def train_batches(self) -> Iterator[Batch]:
        raise DlpyError(f"{self.id} is an environment: an agent plays it (model=reinforce)")

    def shard(self, rank: int, world: int) -> None:
        raise DlpyError(
            f"trainer.strategy=ddp shards tensor data sets; the environment {self.id} is not one"
        )

    def to(self, device):
        self.device = torch.device(device)
        if self.obs is not None:
            self.obs = self.obs.to(self.device)
        return self

    def seed(self, seed):
        """Every copy starts from its own seed (seed, seed + 1, ...); the episode counters start anew."""
        self.base_seed = seed
        self.episode_return[:], self.episode_length[:] = 0, 0
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self.tensor(obs)

    def state_dict(self):
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "seed": self.base_seed,
            "returns": list(self.returns),
            "lengths": list(self.lengths),
        }

    def load_state_dict(self, state):
        """Counters and the last 100 episodes come back; the episodes that were running start afresh.

        A simulator's internal state cannot in general be saved, so the copies are reset, seeded from
        the run's seed and the steps taken, so that a resumed run does not replay its first episodes.
        """
        self.seed(state["seed"] + state["env_steps"])
        self.base_seed, self.env_steps, self.episodes = (
            state["seed"],
            state["env_steps"],
            state["episodes"],
        )
        self.returns.extend(state["returns"])
        self.lengths.extend(state["lengths"])

    def eval_batches(self, split):
        return iter(
            ()
        )  # an agent is evaluated by playing (the task's evaluate), not on stored samples

    # -- playing ----------------------------------------------------------------------------------

    def step(self, actions):
        """Step every copy with its action; ended episodes are counted and their copies reset."""
        obs, reward, terminated, truncated, info = self.envs.step(actions.cpu().numpy())
        self.env_steps += self.num_envs
        self.episode_return += reward
        self.episode_length += 1
        final_obs = None
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            self.returns.extend(self.episode_return[ended].tolist())
            self.lengths.extend(self.episode_length[ended].tolist())
            self.episodes += len(ended)
            self.episode_return[ended], self.episode_length[ended] = 0, 0
            if (
                truncated.any()
            ):  # the observation an episode was cut at, for bootstrapping its value
                final_obs = np.zeros(
                    (self.num_envs, *self.envs.single_observation_space.shape), dtype=np.float32
                )
                for i in np.flatnonzero(truncated):
                    final_obs[i] = info["final_obs"][i]
                final_obs = self.tensor(final_obs)
        self.obs = self.tensor(obs)
        flags = [
            torch.as_tensor(a, dtype=torch.bool, device=self.device)
            for a in (terminated, truncated)
        ]
        return Step(
            torch.as_tensor(reward, dtype=torch.float32, device=self.device), *flags, final_obs
        )

    def return_mean(self):
        """Mean return of the last 100 episodes (fewer before there are 100); None before the first."""
        return float(np.mean(self.returns)) if self.returns else None

    def solved(self):
        """The last 100 episodes reached the reward threshold on average (gymnasium's definition of solved)."""
        return (
            self.reward_threshold is not None
            and len(self.returns) == WINDOW
            and self.return_mean() >= self.reward_threshold
        )

    def play(self, act, episodes, seed):
        """Returns and lengths of `episodes` fresh episodes played side by side (seeds seed, seed + 1, ...)."""
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        envs = SyncVectorEnv([self.make] * episodes, autoreset_mode=AutoresetMode.SAME_STEP)
        obs, _ = envs.reset(seed=seed)
        returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        while running.any():  # a copy that ended goes on into a new episode, which is not counted
            obs, reward, terminated, truncated, _ = envs.step(act(self.tensor(obs)).cpu().numpy())
            returns += reward * running
            lengths += running
            running &= ~(terminated | truncated)
        envs.close()
        return returns, lengths

    def frames(self, act, seed):
        """The rgb_array frames of one episode played by `act`, its first frame before the first action."""
        import gymnasium as gym

        env = self.make(render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        try:
            frames, done = [env.render()], False
            while not done:
                obs, _, terminated, truncated, _ = env.step(int(act(self.tensor(obs[None]))[0]))
                frames.append(env.render())
                done = terminated or truncated
        except (gym.error.DependencyNotInstalled, ImportError) as err:
            raise DlpyError(
                f"record=true: drawing {self.id} needs a package that is not installed ({err}); "
                "for the classic-control environments: pip install 'dlpy[render]' (pygame)"
            ) from None
        finally:
            env.close()
        return frames


@DATASETS.register("gym")
def gym_env(
    *,
    id: str,
    num_envs=8,
    updates_per_epoch=50,
    num_features,
    num_actions,
    reward_threshold=None,
    max_episode_steps=None,
    agent=None,
):
    """Any gymnasium environment with discrete actions (dataset.id), num_envs seeded copies stepped together.

    `agent` holds what the environment suggests to the agent's config (model presets read it); the data ignore it.
    """
    return EnvData(
        id,
        num_envs,
        updates_per_epoch,
        num_features,
        num_actions,
        reward_threshold,
        max_episode_steps,
    )

"""Environments as data: seeded gymnasium vector envs that an agent plays instead of reading.

`EnvData` has all of the data interface (dlpy/data/base.py), though batches mean nothing to it;
the reinforce task steps it and reads its episode counters. Episodes end by termination (the
pole fell) or truncation (the time limit); the vector env resets an ended copy in the same step
and hands over the last observation, which an actor-critic needs to bootstrap a truncated one.
"""

import os
from collections import deque
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import numpy as np
import torch

from dlpy.data.base import Batch, Shapes
from dlpy.errors import DlpyError, unknown
from dlpy.registry import DATASETS
from dlpy.schema import Option, Range, Real, Size

if TYPE_CHECKING:
    import gymnasium as gym

WINDOW = 100  # episodes in the mean that decides "solved", as gymnasium's thresholds mean it
# Evaluation episodes are played at most this many side by side: memory holds 256 simulators
# however many episodes are asked for, and each step's one forward pass of the policy still
# serves 256 of them.
PLAYED_TOGETHER = 256

Act = Callable[[torch.Tensor], torch.Tensor]  # a policy: (N, features) observations -> N actions


# Copies stepped side by side in training (dataset.num_envs): SyncVectorEnv steps them one after
# another in this process, so more copies only make each step longer and hold more simulators in
# memory. The books and cleanrl use 1 to 16 (cleanrl's PPO: 4; RL Baselines3 Zoo's CartPole PPO:
# 8); 1024 leaves room for cheap environments, where num_envs=1e12 ended in a MemoryError.
NumEnvs = Annotated[int, Range(ge=1, le=1024)]


def check_id(env_id: object, allow_import: object = False) -> None:
    """dataset.id must be an id gymnasium has registered, unless dataset.allow_import=true.

    gymnasium's make imports the module written before a colon (`module:Env-v0`), so that it
    registers its environments: such an id runs whatever code that module holds, named by a config
    or a command line (`dataset.id=this:Foo-v0` imports `this`). Only allow_import=true hands it on.
    """
    import gymnasium as gym  # slow to import: only the runs that play need it

    Option(str).check("dataset.id", env_id)
    Option(bool).check("dataset.allow_import", allow_import)
    module, colon, _ = env_id.partition(":")
    if colon and not allow_import:
        raise DlpyError(
            f"dataset.id={env_id!r} would import the module {module!r} (gymnasium's "
            "module:Env-v0); dataset.allow_import=true allows that, else give a registered id "
            "such as CartPole-v1"
        )
    if not colon and env_id not in gym.registry:
        raise DlpyError("dataset.id: " + unknown("gymnasium id", env_id, gym.registry))


def probe(env_id: str, limits: dict[str, Any]) -> tuple["gym.Env", dict[str, int]]:
    """One copy of the environment, and its shape {"num_features": n, "num_actions": k}.

    The error names what model=reinforce cannot play: an id gymnasium cannot make, actions that
    are not discrete, observations that are not an array of numbers.
    """
    import gymnasium as gym  # slow to import: only the runs that play need it

    try:
        env = gym.make(env_id, **limits)
    except Exception as err:  # noqa: BLE001 - unknown id, missing dependency, bad keyword
        raise DlpyError(
            f"dataset.id: gymnasium cannot make {env_id!r}: {type(err).__name__}: {err}"
        ) from None
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise DlpyError(
            f"dataset.id: {env_id} has a {type(env.action_space).__name__} action space; "
            "model=reinforce needs a discrete one"
        )
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise DlpyError(
            f"dataset.id: {env_id} observes a {type(env.observation_space).__name__}; "
            "model=reinforce needs an array of numbers (a Box)"
        )
    features = int(np.prod(env.observation_space.shape))
    return env, {"num_features": features, "num_actions": int(env.action_space.n)}


@cache
def env_shape(env_id: str, allow_import: bool = False) -> dict[str, int]:
    """The shape of a gymnasium id (see `probe`), once the id is checked (see `check_id`).

    The config reads it (`${dlpy.env:${.id},num_actions,${.allow_import}}`, a resolver in
    dlpy/__init__.py), so a network fits any environment without numbers typed by hand. It is
    resolved before any builder runs, so an id that cannot be played fails here, naming
    dataset.id, and not as a model size that came out None."""
    check_id(env_id, allow_import)
    env, shape = probe(env_id, {})
    env.close()
    return shape


class Step(NamedTuple):
    """What one step of every copy gives, as (num_envs, ...) tensors."""

    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: torch.Tensor | None  # only where a time limit cut an episode


class EnvData:
    """num_envs seeded copies of one environment, and the counters of the episodes they played."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        updates_per_epoch: int,
        num_features: int | None,
        num_actions: int | None,
        reward_threshold: float | None = None,
        max_episode_steps: int | None = None,
        allow_import: bool = False,
    ) -> None:
        check_id(env_id, allow_import)
        self.id = env_id
        self.num_envs = num_envs
        self.updates_per_epoch = updates_per_epoch
        self.limits = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        env, shape = probe(env_id, self.limits)
        for key, value in (("num_features", num_features), ("num_actions", num_actions)):
            if value != shape[key]:
                raise DlpyError(f"dataset.{key} is {value}, but {env_id} has {shape[key]}")
        self.num_features = num_features
        self.num_actions = num_actions
        self.reward_threshold = (
            env.spec.reward_threshold if reward_threshold is None else reward_threshold
        )
        self.render_fps = env.metadata.get("render_fps", 30)
        env.close()
        self.envs = self.copies(num_envs)
        self.name = env_id
        self.root = None
        self.device = torch.device("cpu")
        self.env_steps = 0
        self.episodes = 0
        self.base_seed = 0
        self.returns = deque(maxlen=WINDOW)
        self.lengths = deque(maxlen=WINDOW)
        self.episode_return = np.zeros(num_envs)
        self.episode_length = np.zeros(num_envs, dtype=np.int64)
        self.obs: torch.Tensor | None = None

    def make(self, render_mode: str | None = None) -> "gym.Env":
        import gymnasium as gym  # slow to import: only the runs that play need it

        return gym.make(self.id, render_mode=render_mode, **self.limits)

    def copies(self, n: int) -> "gym.vector.SyncVectorEnv":
        """n copies stepped together; one whose episode ends starts the next in the same step."""
        # slow to import: only the runs that play need it
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        return SyncVectorEnv([self.make] * n, autoreset_mode=AutoresetMode.SAME_STEP)

    def tensor(self, array: Any) -> torch.Tensor:
        """Observations as float32 (N, features) on the data's device."""
        values = torch.as_tensor(np.asarray(array), dtype=torch.float32, device=self.device)
        return values.flatten(1)

    # -- the data interface ---------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return self.updates_per_epoch

    def train_batches(self) -> Iterator[Batch]:
        raise DlpyError(f"{self.id} is an environment: an agent plays it (model=reinforce)")

    def eval_batches(self, split: str) -> Iterator[Batch]:
        return iter(())  # an agent is evaluated by playing (the task's evaluate), not on samples

    def shard(self, rank: int, world: int) -> None:
        raise DlpyError(
            f"trainer.strategy=ddp shards tensor data sets; the environment {self.id} is not one"
        )

    def shapes(self) -> Shapes:
        """What the agent observes and can do: checked against the environment when built."""
        return {"num_features": self.num_features, "num_actions": self.num_actions}

    def to(self, device: torch.device | str) -> "EnvData":
        self.device = torch.device(device)
        if self.obs is not None:
            self.obs = self.obs.to(self.device)
        return self

    def seed(self, seed: int) -> None:
        """Every copy starts from its own seed (seed, seed + 1, ...); the episodes start anew."""
        self.base_seed = seed
        self.episode_return[:] = 0
        self.episode_length[:] = 0
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self.tensor(obs)

    def state_dict(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "seed": self.base_seed,
            "returns": list(self.returns),
            "lengths": list(self.lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Counters and the last 100 episodes come back; the running episodes start afresh.

        A simulator's state cannot in general be saved: the copies are reset from the run's seed
        plus the steps taken, so that a resumed run does not replay its first episodes."""
        self.seed(state["seed"] + state["env_steps"])
        self.base_seed = state["seed"]
        self.env_steps = state["env_steps"]
        self.episodes = state["episodes"]
        self.returns.extend(state["returns"])
        self.lengths.extend(state["lengths"])

    # -- playing ----------------------------------------------------------------------------------
    def step(self, actions: torch.Tensor) -> Step:
        """Step every copy with its action; ended episodes are counted and their copies reset."""
        obs, reward, terminated, truncated, info = self.envs.step(actions.cpu().numpy())
        self.env_steps += self.num_envs
        self.episode_return += reward
        self.episode_length += 1
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            self.end_episodes(ended)
        final_obs = self.final_obs(truncated, info) if truncated.any() else None
        self.obs = self.tensor(obs)
        return Step(
            reward=torch.as_tensor(reward, dtype=torch.float32, device=self.device),
            terminated=torch.as_tensor(terminated, dtype=torch.bool, device=self.device),
            truncated=torch.as_tensor(truncated, dtype=torch.bool, device=self.device),
            final_obs=final_obs,
        )

    def end_episodes(self, ended: np.ndarray) -> None:
        """Count the episodes of copies `ended` into the window of the last 100; zero their sums."""
        self.returns.extend(self.episode_return[ended].tolist())
        self.lengths.extend(self.episode_length[ended].tolist())
        self.episodes += len(ended)
        self.episode_return[ended] = 0
        self.episode_length[ended] = 0

    def final_obs(self, truncated: np.ndarray, info: dict[str, Any]) -> torch.Tensor:
        """Where truncated episodes were cut (zeros elsewhere): the step's obs start new ones."""
        shape = (self.num_envs, *self.envs.single_observation_space.shape)
        final_obs = np.zeros(shape, dtype=np.float32)
        for i in np.flatnonzero(truncated):
            final_obs[i] = info["final_obs"][i]
        return self.tensor(final_obs)

    def return_mean(self) -> float | None:
        """Mean return of the last 100 episodes (fewer before there are 100); None before any."""
        return float(np.mean(self.returns)) if self.returns else None

    def solved(self) -> bool:
        """The last 100 episodes reached the reward threshold on average (gymnasium's "solved")."""
        return (
            self.reward_threshold is not None
            and len(self.returns) == WINDOW
            and self.return_mean() >= self.reward_threshold
        )

    def play(
        self, act: Act, episodes: int, seed: int, ended: Callable[[int], Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns and lengths of `episodes` fresh episodes, episode i from seed + i, played
        PLAYED_TOGETHER at a time side by side; `ended(k)` hears of each k that end."""
        returns = []
        lengths = []
        for start in range(0, episodes, PLAYED_TOGETHER):
            n = min(PLAYED_TOGETHER, episodes - start)
            played = self.play_together(act, n, seed + start, ended or (lambda k: None))
            returns.append(played[0])
            lengths.append(played[1])
        return np.concatenate(returns), np.concatenate(lengths)

    def play_together(
        self, act: Act, n: int, seed: int, ended: Callable[[int], Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns and lengths of n episodes played side by side, from seed + i."""
        envs = self.copies(n)
        try:
            obs, _ = envs.reset(seed=seed)
            returns = np.zeros(n)
            lengths = np.zeros(n, dtype=np.int64)
            running = np.ones(n, dtype=bool)
            while running.any():  # a copy that ended goes on into a new episode, not counted
                actions = act(self.tensor(obs)).cpu().numpy()
                obs, reward, terminated, truncated, _ = envs.step(actions)
                returns += reward * running
                lengths += running
                done = running & (terminated | truncated)
                running &= ~done
                ended(int(done.sum()))
        finally:
            envs.close()  # also when a signal stops the evaluation
        return returns, lengths

    def frames(self, act: Act, seed: int) -> list[np.ndarray]:
        """The rgb_array frames of one episode played by `act`, the first one before any action."""
        import gymnasium as gym  # slow to import: only the runs that play need it

        quiet_sdl()
        env = self.make(render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        try:
            frames = [env.render()]
            done = False
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


def quiet_sdl() -> None:
    """Off-screen drawing for pygame, set before it loads: rgb_array frames need no display, and
    SDL's probing for one prints "XDG_RUNTIME_DIR is invalid" where there is none (a server, a
    container). A driver the user chose is kept."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@DATASETS.register("gym")
def gym_env(
    *,
    id: str,
    num_envs: NumEnvs = 8,
    updates_per_epoch: Size = 50,
    num_features: Size | None,
    num_actions: Size | None,
    reward_threshold: Real | None = None,
    max_episode_steps: Size | None = None,
    allow_import: bool = False,
    agent: dict | None = None,
) -> EnvData:
    """Any gymnasium environment with discrete actions (dataset.id), in seeded copies.

    `id` is one gymnasium has registered; `module:Env-v0`, which makes gymnasium import `module`
    first, only with allow_import=true (see `check_id`). `agent` holds what the environment
    suggests to the agent's config (model presets read it).
    """
    return EnvData(
        id,
        num_envs,
        updates_per_epoch,
        num_features,
        num_actions,
        reward_threshold,
        max_episode_steps,
        allow_import,
    )

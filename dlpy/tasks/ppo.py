"""PPO's update (Schulman et al. 2017, "Proximal policy optimization algorithms"): the clipped
surrogate objective, which lets one rollout serve several epochs of minibatch steps."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlpy.tasks.base import Logs


def policy_terms(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """log pi(a|s) of the actions taken, and the policy's mean entropy over the states."""
    log_probs = F.log_softmax(logits, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    return log_probs.gather(1, actions[:, None]).squeeze(1), entropy


def clipped_surrogate(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """-L^CLIP (eq. 7): minus the mean of min(r A, clip(r, 1 - clip, 1 + clip) A), where
    r = pi(a|s) / pi_old(a|s).

    The minimum makes it a pessimistic bound: once r has left [1 - clip, 1 + clip] in the
    direction the advantage favours, the sample's gradient is zero, so the policy cannot move far
    from the one that played the rollout however many epochs reuse it."""
    ratio = (log_probs - old_log_probs).exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    return -torch.min(unclipped, clipped).mean()


def ppo_update(
    net: nn.Module,
    step: Callable[[torch.Tensor], None],
    rollout: tuple[torch.Tensor, ...],
    *,
    epochs: int,
    minibatches: int,
    clip: float,
    value_coef: float,
    entropy_coef: float,
    normalize: bool,
) -> Logs:
    """`epochs` passes over a rollout (obs, actions, advantages, returns), each in `minibatches`
    random minibatches, one optimizer `step(loss)` each (Algorithm 1); the losses' means.

    The advantages and returns are those of the policy and critic that played the rollout (GAE,
    as A2C's): fixed for the whole update, as the paper computes them once per iteration."""
    obs, actions, advantages, returns = rollout
    with torch.no_grad():
        old_log_probs, _ = policy_terms(net(obs), actions)
    sums = dict.fromkeys(
        ("train/policy_loss", "train/value_loss", "train/entropy", "train/clip_frac"), 0.0
    )
    steps = 0
    for _ in range(epochs):
        for idx in torch.randperm(len(obs)).chunk(minibatches):
            adv = advantages[idx]
            if normalize and len(adv) > 1:  # per minibatch, as the PPO baselines do
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            log_probs, entropy = policy_terms(net(obs[idx]), actions[idx])
            policy_loss = clipped_surrogate(log_probs, old_log_probs[idx], adv, clip)
            value_loss = F.mse_loss(net.value(obs[idx]), returns[idx])
            step(policy_loss - entropy_coef * entropy + value_coef * value_loss)
            with torch.no_grad():
                moved = ((log_probs - old_log_probs[idx]).exp() - 1).abs() > clip
            terms = (policy_loss, value_loss, entropy, moved.float().mean())
            for key, value in zip(sums, terms, strict=True):
                sums[key] += value.detach()
            steps += 1
    return {key: total / steps for key, total in sums.items()}

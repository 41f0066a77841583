"""The returns and advantages a policy gradient weighs its actions by, over (T, N) tensors of T
steps of N environment copies; an episode that ends at step t starts afresh at t + 1."""

import torch


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Reward-to-go G_t = r_t + gamma G_{t+1}, restarted after each episode's end, over (T, N)
    tensors."""
    returns = torch.empty_like(rewards)
    future = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        future = rewards[t] + gamma * future * ~dones[t]
        returns[t] = future
    return returns


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016, eq. 16) over (T, N) tensors.

    delta_t = r_t + gamma V(s_t+1) - V(s_t) and A_t = delta_t + gamma lam A_t+1, both cut at
    episode ends; lam = 1 gives the discounted return bootstrapped from V at the rollout's end,
    minus V(s_t).
    """
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        alive = (~dones[t]).float()
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
        next_value = values[t]
    return advantages

"""The actor-critic MLP of the policy-gradient agents: REINFORCE, with or without baseline, A2C."""

import math
from collections.abc import Sequence

from torch import Tensor, nn

from dlpy.errors import check_number
from dlpy.models.layers import Activation, make_activation
from dlpy.registry import MODELS
from dlpy.schema import Size


def init(layer: nn.Linear, gain: float) -> nn.Linear:
    """Orthogonal weights and zero biases, as the PPO and A2C baselines start their networks."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def hidden_layers(width: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    """Linear and activation per hidden size; gain sqrt(2), as the baselines' hidden layers."""
    layers = []
    for size in hidden:
        layers.append(init(nn.Linear(width, size), math.sqrt(2)))
        layers.append(make_activation(activation))
        width = size
    return nn.Sequential(*layers)


@MODELS.register("policy_mlp")
class PolicyMLP(nn.Module):
    """Actor-critic MLP for discrete actions: `forward` gives action logits, `value` the values."""

    def __init__(
        self,
        num_features: Size,
        num_actions: Size,
        hidden: Sequence[Size] = (64, 64),
        activation: Activation = "tanh",
        shared: bool = False,
    ) -> None:
        super().__init__()
        check_number("model.num_features", num_features, at_least=1, integer=True)
        check_number("model.num_actions", num_actions, at_least=1, integer=True)
        width = hidden[-1] if hidden else num_features
        actor_body = hidden_layers(num_features, hidden, activation)
        critic_body = actor_body if shared else hidden_layers(num_features, hidden, activation)
        # A near-zero policy layer starts every action equally likely, and a unit-gain value layer
        # starts the values near 0 (Andrychowicz et al., 2021, "What matters in on-policy RL",
        # sec. 3.2).
        self.actor = nn.Sequential(actor_body, init(nn.Linear(width, num_actions), 0.01))
        self.critic = nn.Sequential(critic_body, init(nn.Linear(width, 1), 1.0))

    def forward(self, obs: Tensor) -> Tensor:
        return self.actor(obs)

    def value(self, obs: Tensor) -> Tensor:
        return self.critic(obs).squeeze(-1)

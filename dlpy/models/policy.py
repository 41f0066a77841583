import math

from torch import nn

from dlpy.errors import DlpyError
from dlpy.models.layers import make_activation
from dlpy.registry import MODELS


@MODELS.register("policy_mlp")
class PolicyMLP(nn.Module):
    """Actor-critic MLP for discrete actions: `forward` gives action logits, `value` a state's value."""

    def __init__(
        self, num_features: int, num_actions: int, hidden=(64, 64), activation="tanh", shared=False
    ):
        super().__init__()
        for key, value in (("num_features", num_features), ("num_actions", num_actions)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DlpyError(
                    f"model.{key} must be a positive integer (the environment's sizes), got {value!r}"
                )

        def body():
            layers, width = [], num_features
            for size in hidden:
                layers += [init(nn.Linear(width, size), math.sqrt(2)), make_activation(activation)]
                width = size
            return nn.Sequential(*layers), width

        actor_body, width = body()
        critic_body = actor_body if shared else body()[0]
        # A near-zero policy layer starts every action equally likely, and a unit-gain value layer
        # starts the values near 0 (Andrychowicz et al., 2021, "What matters in on-policy RL", sec. 3.2).
        self.actor = nn.Sequential(actor_body, init(nn.Linear(width, num_actions), 0.01))
        self.critic = nn.Sequential(critic_body, init(nn.Linear(width, 1), 1.0))

    def forward(self, obs):
        return self.actor(obs)

    def value(self, obs):
        return self.critic(obs).squeeze(-1)


def init(layer, gain):
    """Orthogonal weights and zero biases, as the PPO and A2C baselines start their networks."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer

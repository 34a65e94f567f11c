"""CartPole variants for the PathNet RL transfer experiment (`gato/experiments/pathnet/tasks.toml`).

Importing this module registers gymnasium ids that differ from CartPole-v1 only in the pole's
physics, so a variant has CartPole-v1's observation and action spaces (4 floats, 2 actions) and
a policy learnt on one is a sensible start on another: a pair of related control tasks.
`gym.make("gato.experiments.pathnet.cartpole_variants:PathNetCartPoleShort-v0")` imports it (also in
IMPALA's actor processes), which is how the registry file names them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

__all__ = ["VARIANTS", "CartPoleVariant"]


class CartPoleVariant(CartPoleEnv):
    """CartPole-v1 with another pole half-length (`length`, CartPole-v1: 0.5 m) and pole mass
    (`masspole`, CartPole-v1: 0.1 kg)."""

    def __init__(self, length: float = 0.5, masspole: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if length <= 0 or masspole <= 0:
            raise ValueError(f"pole length and mass must be positive, got {length}, {masspole}")
        self.length = float(length)
        self.masspole = float(masspole)
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


VARIANTS: dict[str, dict[str, float]] = {
    # Half the pole: faster dynamics, a harder balance than CartPole-v1.
    "PathNetCartPoleShort-v0": {"length": 0.25},
    # A pole twice as long and five times as heavy.
    "PathNetCartPoleLongHeavy-v0": {"length": 1.0, "masspole": 0.5},
}
"""gymnasium id -> `CartPoleVariant` arguments."""

for _id, _kwargs in VARIANTS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point="gato.experiments.pathnet.cartpole_variants:CartPoleVariant",
            kwargs=_kwargs,
            max_episode_steps=500,
            reward_threshold=475.0,
        )

"""The policy in a user's own environment loop: observations and actions as the environment has
them, and a gymnasium wrapper that binds a policy to one environment.

`GatoPolicy.act` takes either the canonical dict ({JAT column: value}, what the project's
adapters return; it then returns the canonical action, what they take) or, for a policy that
knows its task, the observation exactly as the task's environment returns it (a gymnasium
array, a dm-control observation dict, Atari frames, a BabyAI dict, a Meta-World array; see
`gato.tasks.envs.convert`), and then returns the action in the environment's own space and
bounds (Pendulum-v1: a float32 (1,) torque in [-2, 2]).

`GatoPolicy.for_env(env)` returns `gato.policy.gym_wrapper.PolicyWrapper`, a `gymnasium.Wrapper`
that checks the environment's spaces against the task once (`check_action_space`,
`check_observation_space`), restarts the policy's context on every `reset`, and whose
`act(observation)` gives the action `step` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gato.schema import MODALITIES, OBSERVATION_COLUMNS
from gato.tasks.envs.convert import check_action_space, check_observation_space, space_bounds

__all__ = ["check_action_space", "check_observation_space", "is_canonical", "space_bounds"]

_CANONICAL_KEYS = frozenset(OBSERVATION_COLUMNS) | frozenset(MODALITIES)


def is_canonical(observation: Any) -> bool:
    """Whether `observation` is the canonical dict: a mapping keyed by JAT observation columns
    (or modality names) only."""
    return (
        isinstance(observation, Mapping)
        and bool(observation)
        and all(isinstance(k, str) and k in _CANONICAL_KEYS for k in observation)
    )

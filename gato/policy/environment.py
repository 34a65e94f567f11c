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
from typing import TYPE_CHECKING, Any

import numpy as np

from gato.schema import MODALITIES, OBSERVATION_COLUMNS

if TYPE_CHECKING:
    from gato.tasks.registry import TaskSpec

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


def space_bounds(space: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) of a gymnasium Box; None for other spaces."""
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None:
        return None
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def check_action_space(space: Any, task: TaskSpec) -> None:
    """Raise a ValueError naming both when a gymnasium action space is not the task's."""
    import gymnasium as gym

    spec = task.action
    where = f"task {task.id!r}"
    if spec.kind == "discrete":
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(
                f"{where}: the policy plays {spec.num_values} discrete actions, but the "
                f"environment's action space is {space}"
            )
        if int(space.n) != spec.num_values or int(space.start) != 0:
            raise ValueError(
                f"{where}: the policy was trained on {spec.num_values} discrete actions "
                f"[0, {spec.num_values}); the environment's action space is {space}"
            )
        return
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(
            f"{where}: the policy plays continuous actions of shape {spec.shape}, but the "
            f"environment's action space is {space}"
        )
    if tuple(space.shape) != spec.shape:
        raise ValueError(
            f"{where}: the policy was trained on continuous actions of shape {spec.shape}; the "
            f"environment's action space is {space}"
        )
    bounds = space_bounds(space)
    if spec.low is not None and bounds is not None:
        low, high = spec.bounds()
        if not (np.allclose(bounds[0], low, rtol=1e-6) and np.allclose(bounds[1], high, rtol=1e-6)):
            raise ValueError(
                f"{where}: the policy was trained on actions within low={low.ravel().tolist()}, "
                f"high={high.ravel().tolist()}; the environment's action space is {space}"
            )


def check_observation_space(space: Any, task: TaskSpec) -> int:
    """Check a gymnasium observation space against the task's; returns a Discrete's start."""
    import gymnasium as gym

    where = f"task {task.id!r}"
    if isinstance(space, gym.spaces.Discrete):
        expected = task.observation.get("discrete_observations")
        if expected is None or expected.shape != (1,):
            raise ValueError(
                f"{where}: the policy observes {dict(task.observation)}; the environment's "
                f"observation space is {space}"
            )
        return int(space.start)
    if isinstance(space, gym.spaces.Box) and task.suite in ("gym", "metaworld"):
        (column,) = task.observation_columns
        shape = task.observation[column].shape
        if int(np.prod(space.shape)) != int(np.prod(shape)):
            raise ValueError(
                f"{where}: the policy was trained on {column} of shape {shape}; the "
                f"environment's observation space is {space}"
            )
    return 0

"""A task's observation and action spaces as gymnasium spaces, what IMPALA's networks are built
from, and their JSON form (saved with checkpoints and exported experts).

IMPALA learns from one observation column per task (the registry's JAT columns):
`image_observations` -> `Box(0, 255, (H, W, C), uint8)`, `continuous_observations` ->
`Box(-inf, inf, (D,), float32)`, `discrete_observations` -> `MultiDiscrete` (the number of values
of each component comes from the environment, which the registry does not record). Actions are
canonical: `Discrete(num_values)`, or `Box(-1, 1, (A,), float32)` for continuous tasks.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from gato.tasks.registry import TaskSpec


def observation_column(task: TaskSpec) -> str:
    """The single observation column IMPALA learns from; ValueError if there is none or several."""
    columns = [c for c in task.observation_columns if c != "text_observations"]
    if "text_observations" in task.observation_columns:
        raise ValueError(f"task {task.id!r}: IMPALA does not learn from text observations")
    if len(columns) != 1:
        raise ValueError(
            f"task {task.id!r}: IMPALA needs exactly one observation column, got {columns}"
        )
    return columns[0]


def _discrete_sizes(task: TaskSpec, env: Any) -> np.ndarray:
    """How many values each discrete observation component takes, read from the environment."""
    raw = getattr(getattr(env, "_env", None), "observation_space", None)
    if isinstance(raw, gym.spaces.Discrete):
        return np.array([int(raw.n)])
    if isinstance(raw, gym.spaces.MultiDiscrete):
        return np.asarray(raw.nvec).reshape(-1)
    if (
        isinstance(raw, gym.spaces.Box)
        and np.isfinite(raw.low).all()
        and np.isfinite(raw.high).all()
    ):
        return (np.asarray(raw.high) - np.asarray(raw.low) + 1).astype(np.int64).reshape(-1)
    raise ValueError(
        f"task {task.id!r}: cannot tell how many values its discrete observations take "
        f"(environment space {raw}); IMPALA one-hot encodes them and needs the sizes"
    )


def task_spaces(task: TaskSpec, env: Any | None = None) -> tuple[gym.Space, gym.Space]:
    """(observation_space, action_space) of a task; `env` (its adapter) is needed only for
    discrete observations, whose value counts only the environment knows."""
    column = observation_column(task)
    spec = task.observation[column]
    if column == "image_observations":
        observation: gym.Space = gym.spaces.Box(0, 255, spec.shape, np.uint8)
    elif column == "continuous_observations":
        observation = gym.spaces.Box(-np.inf, np.inf, spec.shape, np.float32)
    else:
        if env is None:
            raise ValueError(f"task {task.id!r}: discrete observations need the environment")
        sizes = _discrete_sizes(task, env)
        if sizes.shape != spec.shape:
            raise ValueError(
                f"task {task.id!r}: the environment has {sizes.size} discrete components, the "
                f"registry says shape {spec.shape}"
            )
        observation = gym.spaces.MultiDiscrete(sizes)
    if task.action.kind == "discrete":
        if task.action.shape != ():
            raise ValueError(f"task {task.id!r}: IMPALA needs a single discrete action")
        action: gym.Space = gym.spaces.Discrete(task.action.num_values)
    else:
        if len(task.action.shape) != 1:
            raise ValueError(f"task {task.id!r}: continuous actions must be a vector")
        action = gym.spaces.Box(-1.0, 1.0, task.action.shape, np.float32)
    return observation, action


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A JSON-serialisable description of a Box, Discrete or MultiDiscrete space."""
    if isinstance(space, gym.spaces.Discrete):
        return {"kind": "discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"kind": "multi_discrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, gym.spaces.Box):
        return {
            "kind": "box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            # Bounds are uniform in every space task_spaces builds; keep one number each.
            "low": float(np.min(space.low)),
            "high": float(np.max(space.high)),
        }
    raise ValueError(f"cannot serialise space {space}")


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """Inverse of `space_to_dict`."""
    kind = data.get("kind")
    if kind == "discrete":
        return gym.spaces.Discrete(int(data["n"]))
    if kind == "multi_discrete":
        return gym.spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
    if kind == "box":
        return gym.spaces.Box(data["low"], data["high"], tuple(data["shape"]), data["dtype"])
    raise ValueError(f"unknown space kind {kind!r} in {data}")


__all__ = ["observation_column", "space_from_dict", "space_to_dict", "task_spaces"]

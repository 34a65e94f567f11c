"""gymnasium tasks with Box or Discrete spaces (see `GymEnv`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gato.tasks.envs.base import ControlEnv
from gato.tasks.envs.convert import gym_observation
from gato.tasks.registry import TaskSpec


class GymEnv(ControlEnv):
    """A gymnasium task with a Box or Discrete observation and action space.

    Args (the registry's `env` table):
        id: the gymnasium id ("Pendulum-v1", "InvertedPendulum-v5").
        kwargs: passed to `gymnasium.make`.
    """

    def __init__(self, task: TaskSpec, id: str, kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__(task)
        import gymnasium as gym

        self._env = gym.make(
            id, max_episode_steps=task.episode_limit, disable_env_checker=True, **(kwargs or {})
        )
        space = self._env.observation_space
        if isinstance(space, gym.spaces.Discrete):
            column, start = "discrete_observations", int(space.start)
        elif isinstance(space, gym.spaces.Box):
            column, start = "continuous_observations", 0
            if np.issubdtype(space.dtype, np.integer):
                column = "discrete_observations"
        else:
            raise ValueError(f"task {task.id!r}: unsupported observation space {space}")
        self._convert = lambda obs: gym_observation(obs, column, start)
        self._column = column
        action_space = self._env.action_space
        if isinstance(action_space, gym.spaces.Box):
            self._set_bounds(action_space.low, action_space.high)
        elif isinstance(action_space, gym.spaces.Discrete):
            if int(action_space.n) != task.action.num_values or int(action_space.start) != 0:
                raise ValueError(
                    f"task {task.id!r}: {id} has actions [{action_space.start}, "
                    f"{action_space.start + action_space.n}) but the registry says "
                    f"num_values = {task.action.num_values}"
                )
        else:
            raise ValueError(f"task {task.id!r}: unsupported action space {action_space}")

    @property
    def unwrapped(self):
        """The raw gymnasium environment (MuJoCo `model`/`data` for model-based experts)."""
        return self._env.unwrapped

    def _reset(self, seed: int | None) -> dict[str, Any]:
        observation, _ = self._env.reset(seed=seed)
        return {self._column: self._convert(observation)}

    def _step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool]:
        if self.task.action.kind == "continuous":
            action = action.astype(self._env.action_space.dtype)
        observation, reward, terminated, truncated, _ = self._env.step(action)
        return {self._column: self._convert(observation)}, reward, terminated, truncated

    def close(self) -> None:
        self._env.close()

"""Meta-World's MT50 tasks, goal observable (see `MetaWorldEnv`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gato.tasks.envs.base import ControlEnv, MissingPackageError, require_suite
from gato.tasks.envs.convert import gym_observation
from gato.tasks.registry import TaskSpec

_METAWORLD_MUJOCO_LIMIT = (3, 17)
"""MuJoCo 3.17 widened `eq_data` to 12 numbers; Meta-World 3.0's mocap weld writes 11."""


class MetaWorldEnv(ControlEnv):
    """A Meta-World task with the goal observable (the MT50 setting), one placement per seed.

    Observation: `continuous_observations` float32 (39,): hand position, gripper opening, two
    objects' positions and quaternions, the same 18 numbers one step earlier, the goal position.
    Actions: 4 floats in [-1, 1] (hand displacement x, y, z and gripper effort). Reward:
    Meta-World's dense shaping in [0, 10] per step. Episodes run `max_path_length` (500) steps;
    success does not end them. `last_info["success"]` says whether the task is solved now.

    Every reset draws the objects' and the goal's placement from Meta-World's own random-reset
    space with a generator seeded by `seed`, so a seed fixes the episode (MT50 itself fixes 50
    placements per task; the seed plays that role here).

    Args (the registry's `env` table):
        name: the task, e.g. "reach-v3".
    """

    def __init__(self, task: TaskSpec, name: str) -> None:
        super().__init__(task)
        require_suite("metaworld")
        import mujoco

        version = tuple(int(p) for p in mujoco.__version__.split(".")[:2])
        if version >= _METAWORLD_MUJOCO_LIMIT:
            raise MissingPackageError(
                f"task {task.id!r}: Meta-World runs on mujoco < 3.17 (installed "
                f"{mujoco.__version__}); install mujoco==3.16.0 and dm-control==1.0.49 "
                "(see data/README.md, 'Dependencies')"
            )
        import metaworld

        key = f"{name}-goal-observable"
        envs = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
        if key not in envs:
            known = sorted(k.removesuffix("-goal-observable") for k in envs)
            raise ValueError(f"task {task.id!r}: no Meta-World task {name!r}; tasks: {known}")
        self._env = envs[key](seed=0)
        # The goal-observable classes freeze one placement after construction; unfreezing and
        # drawing from the env's own seeded generator gives a new, reproducible one per reset.
        self._env._freeze_rand_vec = False
        self._env.seeded_rand_vec = True
        if task.episode_limit > self._env.max_path_length:
            raise ValueError(
                f"task {task.id!r}: episode_limit {task.episode_limit} exceeds Meta-World's "
                f"max_path_length {self._env.max_path_length}"
            )
        space = self._env.action_space
        self._set_bounds(space.low, space.high)
        self.last_info: dict[str, Any] = {}

    @property
    def unwrapped(self):
        """The Meta-World `SawyerXYZEnv`."""
        return self._env

    def _reset(self, seed: int | None) -> dict[str, Any]:
        if seed is not None:
            self._env.seed(seed)
        obs, info = self._env.reset()
        self.last_info = dict(info)
        return {"continuous_observations": gym_observation(obs, "continuous_observations")}

    def _step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool]:
        obs, reward, terminated, truncated, info = self._env.step(action.astype(np.float32))
        self.last_info = dict(info)
        observation = {"continuous_observations": gym_observation(obs, "continuous_observations")}
        return observation, reward, terminated, truncated

    def close(self) -> None:
        self._env.close()

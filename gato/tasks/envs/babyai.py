"""BabyAI levels through `minigrid` (see `BabyAIEnv`)."""

from __future__ import annotations

from typing import Any

from gato.tasks.envs.base import ControlEnv, require_suite
from gato.tasks.envs.convert import babyai_observation
from gato.tasks.registry import TaskSpec


class BabyAIEnv(ControlEnv):
    """A BabyAI level: mission text plus the agent's symbolic view and direction.

    Observation: `text_observations` the mission ("go to the red ball"); `discrete_observations`
    int64 (148,): the direction (0-3) then the 7x7x3 egocentric view (object, colour, state per
    cell) flattened row-major, as JAT lays it out. Actions: minigrid's 7 (left, right, forward,
    pickup, drop, toggle, done). The level ends itself on success (reward 1 - 0.9 t / max_steps)
    or at its `max_steps`, which the registry's `episode_limit` repeats.

    Args (the registry's `env` table):
        level: the minigrid id, e.g. "BabyAI-GoToRedBall-v0".
    """

    def __init__(self, task: TaskSpec, level: str) -> None:
        super().__init__(task)
        require_suite("babyai")
        import gymnasium as gym
        import minigrid  # noqa: F401  registers the BabyAI ids

        self._env = gym.make(level, disable_env_checker=True)
        n = int(self._env.action_space.n)
        if n != task.action.num_values:
            raise ValueError(
                f"task {task.id!r}: {level} has {n} actions but the registry says "
                f"num_values = {task.action.num_values}"
            )
        self.episode = 0

    @property
    def unwrapped(self):
        """The minigrid level (what the BabyAI bot plans on)."""
        return self._env.unwrapped

    @property
    def gym_env(self):
        """The gymnasium environment as made (the BabyAI bot takes this)."""
        return self._env

    _observation = staticmethod(babyai_observation)

    def _reset(self, seed: int | None) -> dict[str, Any]:
        obs, _ = self._env.reset(seed=seed)
        self.episode += 1
        return self._observation(obs)

    def _step(self, action: int) -> tuple[dict[str, Any], float, bool, bool]:
        obs, reward, terminated, truncated, _ = self._env.step(action)
        return self._observation(obs), reward, terminated, truncated

    def close(self) -> None:
        self._env.close()

"""`PolicyWrapper`: a gymnasium environment bound to a `GatoPolicy` (`GatoPolicy.for_env`).

A module of its own so that importing the policy package does not import gymnasium.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from gato.policy.environment import check_action_space, check_observation_space, space_bounds

__all__ = ["PolicyWrapper"]


class PolicyWrapper(gym.Wrapper):
    """A gymnasium environment bound to a `GatoPolicy` of its task.

    `reset` resets the environment and restarts the policy's context (a new episode);
    `act(observation)` is the policy's action for the observation, in the environment's
    action space (its dtype and bounds); `step` is the environment's. The policy must be
    made for the environment's task (`GatoPolicy.from_pretrained(path, task=...)`).
    """

    def __init__(self, env: Any, policy: Any) -> None:
        super().__init__(env)
        task = policy.task
        if task is None:
            raise ValueError(
                "GatoPolicy.for_env needs a policy that knows its task: "
                "GatoPolicy.from_pretrained(path, task=...)"
            )
        if policy.num_envs != 1:
            raise ValueError(
                f"GatoPolicy.for_env binds one environment; the policy has {policy.num_envs}"
            )
        check_action_space(env.action_space, task)
        start = check_observation_space(env.observation_space, task)
        self.policy = policy
        bounds = space_bounds(env.action_space) if task.action.kind == "continuous" else None
        policy.bind_environment(discrete_start=start, action_bounds=bounds)
        self._dtype = getattr(env.action_space, "dtype", None)

    def reset(self, **kwargs: Any):
        observation, info = self.env.reset(**kwargs)
        self.policy.reset()
        return observation, info

    def act(self, observation: Any) -> Any:
        """The policy's action for `observation`, as the environment's `step` takes it."""
        action = self.policy.act(observation)
        if self._dtype is not None and isinstance(action, np.ndarray):
            action = action.astype(self._dtype, copy=False)
        return action

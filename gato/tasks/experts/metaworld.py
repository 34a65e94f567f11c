"""Meta-World experts: the scripted policy Meta-World ships for each of its tasks."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from gato.tasks.envs import ControlEnv, require_suite
from gato.tasks.experts.base import Expert, register_expert
from gato.tasks.registry import TaskSpec

# The policies' proportional gains exceed 1 by design (the environment clips actions), and each
# call would say so; the message carries no information for collection.
warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", module=r"metaworld\.")


@register_expert("metaworld-policy")
class MetaWorldPolicy(Expert):
    """`metaworld.policies.ENV_POLICY_MAP[name]`: a hand-written state machine per task (reach,
    grasp, move, place) on the goal-observable observation. Its actions are clipped to [-1, 1],
    the environment's action box.

    Args:
        noise: standard deviation of Gaussian noise added to each action (0: the policy as
            shipped); a little noise varies otherwise near-identical demonstrations.
        grab_effort: when set, replaces the gripper command (the last action). The shipped
            button-press-topdown-wall policy presses with an open gripper, which solves the
            task but earns none of its shaped reward (paid only with a closed gripper).
    """

    def __init__(
        self, task: TaskSpec, noise: float = 0.0, grab_effort: float | None = None
    ) -> None:
        super().__init__(task)
        require_suite("metaworld")
        from metaworld.policies import ENV_POLICY_MAP

        name = task.env.get("name")
        if name not in ENV_POLICY_MAP:
            raise ValueError(
                f"task {task.id!r}: Meta-World has no scripted policy for {name!r}; "
                f"policies: {sorted(ENV_POLICY_MAP)}"
            )
        self.policy = ENV_POLICY_MAP[name]()
        self.noise = float(noise)
        self.grab_effort = None if grab_effort is None else float(grab_effort)

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        state = np.asarray(observation["continuous_observations"], dtype=np.float64)
        action = np.asarray(self.policy.get_action(state), dtype=np.float64)
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=action.shape)
        if self.grab_effort is not None:
            action[-1] = self.grab_effort
        return np.clip(action, -1.0, 1.0).astype(np.float32)

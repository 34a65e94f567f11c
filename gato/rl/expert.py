"""Experts trained by IMPALA (`python -m gato.rl.impala`): a saved policy network that acts.

Registry entry::

    [tasks.gym-taxi]
    expert = "impala"
    expert_params = { checkpoint = "experts/impala/gym-taxi" }

`checkpoint` is a policy folder (`policy.pt`, `policy.json`, `MANIFEST.json`; what
`--export_dir` writes) or a training run folder (its latest checkpoint), relative to the
registry file's folder unless absolute.

This module lives with the IMPALA code it needs (`gato.rl` is a layer above `gato.tasks`); the
task layer finds it by name (`gato.tasks.experts.EXPERT_MODULES`) and imports it only when a task
whose expert is "impala" is played.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.rl.learner import load_policy
from gato.rl.spaces import observation_column
from gato.tasks.envs import ControlEnv
from gato.tasks.experts.base import Expert, register_expert
from gato.tasks.registry import TaskSpec


@register_expert("impala")
class ImpalaExpert(Expert):
    """A policy trained by IMPALA, acting greedily (argmax, or the Gaussian's mean) or by
    sampling its distribution with the expert's seeded generator.

    Args:
        checkpoint: the policy folder or run folder (relative to the registry's folder).
        greedy: play the most likely action instead of sampling.
    """

    def __init__(self, task: TaskSpec, checkpoint: str, greedy: bool = True) -> None:
        super().__init__(task)
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError(f"task {task.id!r}: impala expert needs checkpoint = a folder path")
        path = Path(checkpoint)
        if not path.is_absolute():
            path = task.root / path
        self.network, self.meta = load_policy(path)
        self.column = observation_column(task)
        self.greedy = bool(greedy)
        self.discrete = task.action.kind == "discrete"
        self._check(task, path)

    def _check(self, task: TaskSpec, path: Path) -> None:
        """The saved network must fit the task: same observation shape, same actions."""
        network = self.network
        obs_shape = tuple(task.observation[self.column].shape)
        if tuple(network.observation_space.shape) != obs_shape:
            raise ValueError(
                f"task {task.id!r}: the policy at {path} takes observations of shape "
                f"{tuple(network.observation_space.shape)}, the task gives {obs_shape}"
            )
        if network.discrete != self.discrete:
            raise ValueError(
                f"task {task.id!r}: the policy at {path} has "
                f"{'discrete' if network.discrete else 'continuous'} actions, the task "
                f"{task.action.kind} ones"
            )
        want = task.action.num_values if self.discrete else int(np.prod(task.action.shape))
        if network.action_dim != want:
            raise ValueError(
                f"task {task.id!r}: the policy at {path} has {network.action_dim} action "
                f"{'values' if self.discrete else 'dimensions'}, the task {want}"
            )

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> Any:
        obs = torch.as_tensor(np.asarray(observation[self.column])[None])
        with torch.no_grad():
            params, _ = self.network(obs)
            if self.discrete:
                if self.greedy:
                    return int(params[0].argmax())
                probs = torch.softmax(params[0].double(), -1).numpy()
                return int(self.rng.choice(len(probs), p=probs / probs.sum()))
            mean = params[0].numpy().astype(np.float64)
            if not self.greedy:
                std = self.network.distribution(params).stddev[0].numpy()
                mean = mean + std * self.rng.standard_normal(mean.shape)
        return np.clip(mean, -1.0, 1.0).astype(np.float32).reshape(self.task.action.shape)

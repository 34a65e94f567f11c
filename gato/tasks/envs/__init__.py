"""Environment adapters: one per suite, each yielding canonical observation dicts.

Every adapter turns its simulator into the same small interface, `ControlEnv`:

- `reset(seed)` and `step(action)` return observations as {JAT column: per-step value}:
  `continuous_observations` float32 (D,), `discrete_observations` int64 (D,),
  `image_observations` uint8 (H, W, C), `text_observations` str. Every observation is checked
  against the task's spec; NaN, a wrong shape or a wrong type raises `ObservationError` naming
  the task, the step and the field.
- actions are what the tokenizer decodes: an int in [0, num_values) for discrete tasks, floats in
  [-1, 1] for continuous ones (rescaled here to the environment's bounds, since the tokenizer
  bins actions uniformly on [-1, 1]).
- the episode ends with `terminated` (the task's own end) or `truncated` (the registry's
  `episode_limit`, or the simulator's time limit).

Suites:

- "atari": ALE v5 through gymnasium, the JAT convention: frame skip 4 with max-pooling of the last
  two frames, no sticky actions, up to 30 no-op resets, 84x84 grayscale frames stacked by 4 into
  one (84, 84, 4) uint8 image (channel 0 the oldest frame). The game's minimal action set by
  default (`full_action_space = true` in the registry gives the 18 actions).
- "dmc": the DeepMind Control suite; the observation dict flattened in lexicographic key order
  into `continuous_observations`; optional rendered pixels as `image_observations`
  (`MUJOCO_GL=egl` unless set).
- "gym": gymnasium tasks with Box or Discrete spaces (classic control, MuJoCo).
- "babyai": BabyAI levels (`minigrid`, optional): the mission as `text_observations`; the
  agent's direction followed by its 7x7x3 symbolic view, row-major, as `discrete_observations`
  (148 integers, the JAT layout); 7 discrete actions.
- "metaworld": Meta-World's 50 MT50 tasks (`metaworld`, optional), goal observable: 39 floats,
  4 actions in [-1, 1]; each reset draws a new object and goal placement from the seed.

The conversions from what a suite's simulator returns to the canonical dict, and from canonical
actions to the simulator's, are pure functions in `convert` (`ObservationConverter`,
`to_env_action`), shared by the adapters and by a policy dropped into a user's own loop.

One module per suite; `make_env` imports the task's suite module when it builds an environment,
and each adapter imports its library when it is constructed, so importing this package imports no
simulator. A suite whose optional package is missing raises `MissingPackageError` naming the
package to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from gato.tasks.envs.base import (
    SUITE_PACKAGES,
    ControlEnv,
    MissingPackageError,
    ObservationError,
    Step,
    bounds_to_unit,
    missing_package,
    require_suite,
    unit_to_bounds,
)
from gato.tasks.envs.convert import ObservationConverter, to_env_action
from gato.tasks.registry import TaskSpec

SUITES: dict[str, str] = {
    "atari": "gato.tasks.envs.atari:AtariEnv",
    "dmc": "gato.tasks.envs.dmc:make_dmc",
    "gym": "gato.tasks.envs.gym:GymEnv",
    "babyai": "gato.tasks.envs.babyai:BabyAIEnv",
    "metaworld": "gato.tasks.envs.metaworld:MetaWorldEnv",
}
"""Suite name -> "module:factory" of its adapter, a factory `(task, **registry env table) ->
ControlEnv`. Named, not imported, so that a suite's module loads only when one of its tasks runs.
A new suite adds its module here (and its package to `SUITE_PACKAGES`) and gets a `[suites.*]`
table."""


def make_env(task: TaskSpec, **overrides: Any) -> ControlEnv:
    """The adapter of a task's suite, built from the registry's `env` table (plus overrides)."""
    if task.suite not in SUITES:
        raise ValueError(
            f"task {task.id!r}: no adapter for suite {task.suite!r}; suites: {sorted(SUITES)}"
        )
    require_suite(task.suite)
    module, factory = SUITES[task.suite].split(":")
    return getattr(importlib.import_module(module), factory)(task, **{**task.env, **overrides})


__all__ = [
    "SUITES",
    "SUITE_PACKAGES",
    "ControlEnv",
    "MissingPackageError",
    "ObservationConverter",
    "ObservationError",
    "Step",
    "bounds_to_unit",
    "make_env",
    "missing_package",
    "require_suite",
    "to_env_action",
    "unit_to_bounds",
]

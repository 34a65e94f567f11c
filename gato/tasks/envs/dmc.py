"""The DeepMind Control suite (see `DMCEnv`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gato.tasks.envs.base import ControlEnv
from gato.tasks.envs.convert import dmc_state
from gato.tasks.registry import TaskSpec


class DMCEnv(ControlEnv):
    """A dm-control suite task: state vector, optionally rendered pixels.

    Args (the registry's `env` table):
        domain, task: the suite's names ("cartpole", "swingup").
        pixels: render an (height, width, 3) uint8 image as `image_observations` each step.
        height, width, camera: the rendering; shadows and multisampling are off, which makes
            64x64 rendering about ten times faster at no visible cost at that size.
        time_limit: seconds of simulated time; the suite's own default when None.
    """

    def __init__(
        self,
        task: TaskSpec,
        domain: str,
        task_name: str,
        pixels: bool = False,
        height: int = 64,
        width: int = 64,
        camera: int = 0,
        time_limit: float | None = None,
    ) -> None:
        super().__init__(task)
        os.environ.setdefault("MUJOCO_GL", "egl")
        from dm_control import suite

        task_kwargs: dict[str, Any] = {"random": 0}
        if time_limit is not None:
            task_kwargs["time_limit"] = time_limit
        self._env = suite.load(domain, task_name, task_kwargs=task_kwargs)
        self._keys = sorted(self._env.observation_spec())
        spec = self._env.action_spec()
        self._set_bounds(spec.minimum, spec.maximum)
        self._pixels = pixels
        self._render_args = {"height": height, "width": width, "camera_id": camera}
        if pixels:
            quality = self.physics.model.vis.quality
            quality.shadowsize = 0
            quality.offsamples = 0

    @property
    def physics(self):
        """The dm-control `Physics` (what model-based experts linearise)."""
        return self._env.physics

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return max(1, round(self._env.control_timestep() / self.physics.timestep()))

    def _observation(self, raw: Any) -> dict[str, Any]:
        """Our observation dict from the suite's observation (an ordered dict of arrays)."""
        state = dmc_state(raw, self._keys)
        out: dict[str, Any] = {"continuous_observations": state}
        if self._pixels:
            out["image_observations"] = self.physics.render(**self._render_args)
        return out

    def _reset(self, seed: int | None) -> dict[str, Any]:
        if seed is not None:
            # The task draws its initial state from this RandomState: reseed it in place.
            self._env.task.random.seed(seed)
        return self._observation(self._env.reset().observation)

    def _spread_start(self, scale: float, rng: np.random.Generator) -> dict[str, Any]:
        physics = self.physics
        model = physics.model
        # Hinge and slide joints hold one plain coordinate each; a free or ball joint's
        # quaternion cannot take additive noise.
        plain = {2, 3}  # mjJNT_SLIDE, mjJNT_HINGE
        kinds = [int(k) for k in model.jnt_type]
        if any(k not in plain for k in kinds):
            raise ValueError(
                f"task {self.task.id!r}: start_noise supports hinge and slide joints only; "
                f"this model has joint types {sorted(set(kinds))} (mjtJoint)"
            )
        qpos = physics.data.qpos.copy()
        qvel = physics.data.qvel.copy()
        for joint in range(model.njnt):
            address = int(model.jnt_qposadr[joint])
            value = qpos[address] + rng.normal(0.0, scale)
            if model.jnt_limited[joint]:
                low, high = model.jnt_range[joint]
                value = min(max(value, low), high)
            qpos[address] = value
        # reset_context zeroes the state on entry, then recomputes what follows from it on exit.
        with physics.reset_context():
            physics.data.qpos[:] = qpos
            physics.data.qvel[:] = qvel
        return self._observation(self._env.task.get_observation(physics))

    def _step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool]:
        timestep = self._env.step(action)
        last = timestep.last()
        terminated = last and timestep.discount == 0.0
        return (
            self._observation(timestep.observation),
            timestep.reward or 0.0,
            terminated,
            last and not terminated,
        )


def make_dmc(spec: TaskSpec, /, **env: Any) -> DMCEnv:
    """A `DMCEnv` from the registry's `env` table, whose `task` key names the suite's task."""
    env = dict(env)
    env["task_name"] = env.pop("task")  # "task" is the suite's word; ours names the TaskSpec
    return DMCEnv(spec, **env)

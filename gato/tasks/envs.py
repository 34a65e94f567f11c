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

Heavy libraries are imported inside the adapters, so importing this module costs nothing. A suite
whose optional package is missing raises `MissingPackageError` naming the package to install.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from gato.tasks.registry import TaskSpec


class ObservationError(ValueError):
    """An environment produced an observation that does not match its task's spec."""

    def __init__(self, task_id: str, step: int, field: str, problem: str) -> None:
        super().__init__(f"task {task_id!r}, step {step}, field {field!r}: {problem}")
        self.task_id, self.step, self.field = task_id, step, field


class MissingPackageError(ImportError):
    """A suite's environment package is not installed; the message says what to install."""


SUITE_PACKAGES: dict[str, tuple[str, str, str]] = {
    "atari": ("ale_py", "ale-py", ""),
    "dmc": ("dm_control", "dm-control", ""),
    "gym": ("gymnasium", "gymnasium", ""),
    "babyai": ("minigrid", "minigrid==3.2.0", "babyai"),
    "metaworld": ("metaworld", "metaworld==3.0.0", "metaworld"),
}
"""Suite -> (module its adapter imports, pip requirement, the project's extra that installs it;
empty for core dependencies)."""


def missing_package(suite: str) -> str | None:
    """The pip requirement a suite lacks, or None when it can run (unknown suites: None)."""
    if suite not in SUITE_PACKAGES:
        return None
    module, requirement, _ = SUITE_PACKAGES[suite]
    return None if importlib.util.find_spec(module) is not None else requirement


def require_suite(suite: str) -> None:
    """Raise `MissingPackageError` when a suite's optional package is not installed."""
    requirement = missing_package(suite)
    if requirement is None:
        return
    module, _, extra = SUITE_PACKAGES[suite]
    how = (
        f"pip install 'gato[{extra}]' (or pip install {requirement})"
        if extra
        else (f"pip install {requirement}")
    )
    raise MissingPackageError(
        f"suite {suite!r} needs the package {requirement.split('=')[0]!r} (module {module!r}), "
        f"which is not installed: {how}"
    )


class Step(NamedTuple):
    """What `ControlEnv.step` returns."""

    observation: dict[str, Any]
    reward: float
    terminated: bool
    truncated: bool


# ---------------------------------------------------------------------------------------------
# Action scaling: pure functions
# ---------------------------------------------------------------------------------------------


def unit_to_bounds(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [low, high], clipping first (decoded bins may sit a hair outside)."""
    action = np.clip(action, -1.0, 1.0)
    return low + (action + 1.0) * 0.5 * (high - low)


def bounds_to_unit(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[low, high] -> [-1, 1]: the inverse of `unit_to_bounds` on the box."""
    return np.clip(2.0 * (np.asarray(action) - low) / (high - low) - 1.0, -1.0, 1.0)


def _finite_bounds(low: Any, high: Any, task_id: str) -> tuple[np.ndarray, np.ndarray]:
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()) or (high <= low).any():
        raise ValueError(
            f"task {task_id!r}: continuous actions need finite bounds low < high to rescale to "
            f"[-1, 1], got low={low}, high={high}"
        )
    return low, high


# ---------------------------------------------------------------------------------------------
# The common interface
# ---------------------------------------------------------------------------------------------


class ControlEnv:
    """Base of the suite adapters: checks observations, counts steps, converts actions.

    Subclasses implement `_reset(seed) -> raw observation dict` and
    `_step(env_action) -> (raw observation dict, reward, terminated, truncated)`.
    """

    def __init__(self, task: TaskSpec) -> None:
        self.task = task
        self.step_count = 0
        self._checks = [
            (column, spec.shape, np.dtype(spec.dtype) if column != "text_observations" else None)
            for column, spec in task.observation.items()
        ]
        self._low = self._high = None
        self._scale: list[tuple[float, float]] = []

    # -- public API ------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Start an episode; `seed` makes it reproducible. Returns the first observation."""
        self.step_count = 0
        return self._check(self._reset(seed))

    def step(self, action: Any) -> Step:
        """Act; the action is an int (discrete) or floats in [-1, 1] (continuous)."""
        observation, reward, terminated, truncated = self._step(self.to_env_action(action))
        self.step_count += 1
        if self.step_count >= self.task.episode_limit and not terminated:
            truncated = True
        reward = float(reward)
        if not math.isfinite(reward):
            raise ObservationError(self.task.id, self.step_count, "reward", f"got {reward}")
        return Step(self._check(observation), reward, bool(terminated), bool(truncated))

    def sample_action(self, rng: np.random.Generator) -> Any:
        """A uniformly random action in the canonical space (what a random policy plays)."""
        spec = self.task.action
        if spec.kind == "discrete":
            return int(rng.integers(spec.num_values))
        return rng.uniform(-1.0, 1.0, size=spec.shape).astype(np.float32)

    @property
    def action_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of the simulator's continuous actions; None for discrete tasks."""
        return None if self._low is None else (self._low, self._high)

    def close(self) -> None:
        """Release the simulator."""

    def __enter__(self) -> ControlEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- actions ---------------------------------------------------------------------------

    def to_env_action(self, action: Any) -> Any:
        """Canonical action -> the simulator's."""
        spec = self.task.action
        if spec.kind == "discrete":
            value = int(action)
            if not 0 <= value < spec.num_values:
                raise ValueError(
                    f"task {self.task.id!r}: discrete action {value} outside [0, {spec.num_values})"
                )
            return value
        # Python floats: for the few numbers of one action this is several times faster than
        # a chain of numpy calls, and collection runs it every step.
        values = np.asarray(action, dtype=np.float64).ravel().tolist()
        if len(values) != len(self._scale):
            raise ValueError(
                f"task {self.task.id!r}: action must have shape {spec.shape}, "
                f"got {np.shape(action)}"
            )
        out = []
        for value, (low, half_range) in zip(values, self._scale, strict=True):
            if not -math.inf < value < math.inf:
                raise ValueError(f"task {self.task.id!r}: action has non-finite values {values}")
            value = -1.0 if value < -1.0 else 1.0 if value > 1.0 else value
            out.append(low + (value + 1.0) * half_range)
        return np.array(out).reshape(spec.shape)

    def _set_bounds(self, low: Any, high: Any) -> None:
        """Record the simulator's continuous action bounds (finite, low < high)."""
        self._low, self._high = _finite_bounds(low, high, self.task.id)
        self._scale = list(
            zip(self._low.ravel().tolist(), (0.5 * (self._high - self._low)).ravel().tolist(),
                strict=True)
        )  # fmt: skip

    # -- checks ----------------------------------------------------------------------------

    def _check(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Validate one observation against the spec (cheap: shape, dtype, finiteness)."""
        for column, shape, dtype in self._checks:
            if column not in observation:
                raise ObservationError(self.task.id, self.step_count, column, "missing")
            value = observation[column]
            if dtype is None:
                if not isinstance(value, str):
                    problem = f"expected str, got {type(value).__name__}"
                    raise ObservationError(self.task.id, self.step_count, column, problem)
                continue
            if not isinstance(value, np.ndarray) or value.dtype != dtype:
                got = getattr(value, "dtype", type(value).__name__)
                problem = f"expected a {dtype} array, got {got}"
                raise ObservationError(self.task.id, self.step_count, column, problem)
            if value.shape != shape:
                problem = f"expected shape {shape}, got {value.shape}"
                raise ObservationError(self.task.id, self.step_count, column, problem)
            # One reduction spots NaN and inf (a sum is non-finite iff some term is, barring
            # overflow near 3e38, which the exact check below then clears).
            if (
                dtype.kind == "f"
                and not math.isfinite(_add(value))
                and not np.isfinite(value).all()
            ):
                bad = np.flatnonzero(~np.isfinite(value))
                problem = f"non-finite values at indices {bad[:5].tolist()}"
                raise ObservationError(self.task.id, self.step_count, column, problem)
        return observation  # the adapters build a fresh dict every step

    # -- to implement --------------------------------------------------------------------

    def _reset(self, seed: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def _step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool]:
        raise NotImplementedError


_add = np.add.reduce


def _vector(value: Any, dtype: type) -> np.ndarray:
    return np.asarray(value, dtype=dtype).reshape(-1)


# ---------------------------------------------------------------------------------------------
# ALE Atari through gymnasium
# ---------------------------------------------------------------------------------------------


class AtariEnv(ControlEnv):
    """ALE v5, frame skip with max-pooling, no sticky actions, no-op resets, 84x84x4 stacks.

    Args (the registry's `env` table):
        game: ROM name as ALE spells it in ids ("Pong", "Breakout", "MontezumaRevenge").
        frame_skip: emulator frames per agent step; the last two are max-pooled.
        noop_max: up to this many no-op steps after a reset (seeded), as in DQN evaluation.
        screen_size: side of the square grayscale frame.
        stack: frames per observation, oldest first along the channel axis.
        full_action_space: the 18 ALE actions instead of the game's minimal set.
        repeat_action_probability: sticky actions; 0 for the JAT convention.
    """

    def __init__(
        self,
        task: TaskSpec,
        game: str,
        frame_skip: int = 4,
        noop_max: int = 30,
        screen_size: int = 84,
        stack: int = 4,
        full_action_space: bool = False,
        repeat_action_probability: float = 0.0,
    ) -> None:
        super().__init__(task)
        import ale_py
        import gymnasium as gym
        from gymnasium.wrappers import AtariPreprocessing

        gym.register_envs(ale_py)
        base = gym.make(
            f"ALE/{game}-v5",
            frameskip=1,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            # ALE v5's own cap (108,000 frames, no-op frames included) stays in force; a
            # longer registry limit raises it. Shorter limits are the adapter's to enforce.
            max_num_frames_per_episode=max(108_000, task.episode_limit * frame_skip + noop_max),
            disable_env_checker=True,
        )
        self._env = AtariPreprocessing(
            base,
            noop_max=noop_max,
            frame_skip=frame_skip,
            screen_size=screen_size,
            terminal_on_life_loss=False,
            grayscale_obs=True,
        )
        self._ale = base.unwrapped.ale
        self._frame_skip = frame_skip
        self._stack = stack
        self._frames: deque[np.ndarray] = deque(maxlen=stack)
        n = int(self._env.action_space.n)
        if n != task.action.num_values:
            raise ValueError(
                f"task {task.id!r}: {game} has {n} actions "
                f"({'full' if full_action_space else 'minimal'} set) but the registry says "
                f"num_values = {task.action.num_values}"
            )

    @property
    def action_meanings(self) -> list[str]:
        """ALE's names of the actions, by index."""
        return list(self._env.unwrapped.get_action_meanings())

    def ram(self) -> np.ndarray:
        """The console's 128 bytes of RAM (what the scripted Atari experts read)."""
        return self._ale.getRAM()

    @property
    def ale(self):
        """The emulator (`ale_py.ALEInterface`), for experts that plan with saved states."""
        return self._ale

    @property
    def ale_actions(self) -> list:
        """ALE action of each canonical action index (the minimal or the full set)."""
        return list(self._env.unwrapped._action_set)

    @property
    def frame_skip(self) -> int:
        return self._frame_skip

    def lives(self) -> int:
        return int(self._ale.lives())

    def _observation(self) -> dict[str, Any]:
        # np.stack on the last axis builds the (H, W, stack) image in one pass.
        return {"image_observations": np.stack(self._frames, axis=-1)}

    def _reset(self, seed: int | None) -> dict[str, Any]:
        frame, _ = self._env.reset(seed=seed)
        self._frames.clear()
        self._frames.extend([frame] * self._stack)  # the first stack repeats the first frame
        return self._observation()

    def _step(self, action: int) -> tuple[dict[str, Any], float, bool, bool]:
        frame, reward, terminated, truncated, _ = self._env.step(action)
        self._frames.append(frame)
        return self._observation(), reward, terminated, truncated

    def close(self) -> None:
        self._env.close()


# ---------------------------------------------------------------------------------------------
# DeepMind Control suite
# ---------------------------------------------------------------------------------------------


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

    def _observation(self, timestep) -> dict[str, Any]:
        obs = timestep.observation
        # axis=None flattens every entry (scalars included) in the one call that casts.
        state = np.concatenate([obs[k] for k in self._keys], axis=None, dtype=np.float32)
        out: dict[str, Any] = {"continuous_observations": state}
        if self._pixels:
            out["image_observations"] = self.physics.render(**self._render_args)
        return out

    def _reset(self, seed: int | None) -> dict[str, Any]:
        if seed is not None:
            # The task draws its initial state from this RandomState: reseed it in place.
            self._env.task.random.seed(seed)
        return self._observation(self._env.reset())

    def _step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool]:
        timestep = self._env.step(action)
        last = timestep.last()
        terminated = last and timestep.discount == 0.0
        return (
            self._observation(timestep),
            timestep.reward or 0.0,
            terminated,
            last and not terminated,
        )


# ---------------------------------------------------------------------------------------------
# gymnasium
# ---------------------------------------------------------------------------------------------


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
            column, self._convert = "discrete_observations", _discrete_observation(space.start)
        elif isinstance(space, gym.spaces.Box):
            column = "continuous_observations"
            self._convert = _box_observation(np.issubdtype(space.dtype, np.integer))
            if np.issubdtype(space.dtype, np.integer):
                column = "discrete_observations"
        else:
            raise ValueError(f"task {task.id!r}: unsupported observation space {space}")
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


def _discrete_observation(start: int) -> Callable[[Any], np.ndarray]:
    return lambda obs: np.array([int(obs) - start], dtype=np.int64)


def _box_observation(integer: bool) -> Callable[[Any], np.ndarray]:
    dtype = np.int64 if integer else np.float32
    return lambda obs: _vector(obs, dtype)


# ---------------------------------------------------------------------------------------------
# BabyAI (minigrid)
# ---------------------------------------------------------------------------------------------


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

    @staticmethod
    def _observation(obs: Mapping[str, Any]) -> dict[str, Any]:
        view = np.asarray(obs["image"], dtype=np.int64).reshape(-1)
        return {
            "text_observations": str(obs["mission"]),
            "discrete_observations": np.concatenate(([int(obs["direction"])], view)),
        }

    def _reset(self, seed: int | None) -> dict[str, Any]:
        obs, _ = self._env.reset(seed=seed)
        self.episode += 1
        return self._observation(obs)

    def _step(self, action: int) -> tuple[dict[str, Any], float, bool, bool]:
        obs, reward, terminated, truncated, _ = self._env.step(action)
        return self._observation(obs), reward, terminated, truncated

    def close(self) -> None:
        self._env.close()


# ---------------------------------------------------------------------------------------------
# Meta-World
# ---------------------------------------------------------------------------------------------

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
        return {"continuous_observations": _vector(obs, np.float32)}

    def _step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool]:
        obs, reward, terminated, truncated, info = self._env.step(action.astype(np.float32))
        self.last_info = dict(info)
        return {"continuous_observations": _vector(obs, np.float32)}, reward, terminated, truncated

    def close(self) -> None:
        self._env.close()


# ---------------------------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------------------------


def _make_dmc(spec: TaskSpec, /, **env: Any) -> ControlEnv:
    env = dict(env)
    env["task_name"] = env.pop("task")  # "task" is the suite's word; ours names the TaskSpec
    return DMCEnv(spec, **env)


SUITES: dict[str, Callable[..., ControlEnv]] = {
    "atari": AtariEnv,
    "dmc": _make_dmc,
    "gym": GymEnv,
    "babyai": BabyAIEnv,
    "metaworld": MetaWorldEnv,
}
"""Suite name -> adapter factory `(task, **registry env table) -> ControlEnv`. A new suite
registers its adapter here (and its package in `SUITE_PACKAGES`) and gets a `[suites.*]`
table."""


def make_env(task: TaskSpec, **overrides: Any) -> ControlEnv:
    """The adapter of a task's suite, built from the registry's `env` table (plus overrides)."""
    if task.suite not in SUITES:
        raise ValueError(
            f"task {task.id!r}: no adapter for suite {task.suite!r}; suites: {sorted(SUITES)}"
        )
    require_suite(task.suite)
    return SUITES[task.suite](task, **{**task.env, **overrides})

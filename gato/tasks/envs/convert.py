"""An environment's own observations -> the canonical dict; [-1, 1] actions -> its own actions.

The suite adapters (`gato.tasks.envs.*`) and anything that holds the bare simulator (a policy in
a user's gymnasium loop, `GatoPolicy.act`) share these conversions, so an observation becomes
the same tokens whichever way it arrives:

- gym: a Box observation -> its flat vector (`continuous_observations` float32, or
  `discrete_observations` int64 for an integer Box); a Discrete one -> [value - start].
- dmc: dm-control's observation dict (or its `TimeStep`) -> its entries flattened in
  lexicographic key order into `continuous_observations` float32. Rendered pixels are not part
  of what dm-control returns, so pixel tasks cannot be converted from it.
- atari: the adapter's (84, 84, 4) frame stacks as they are, or single (84, 84) grayscale frames
  of gymnasium's `AtariPreprocessing` stacked here by the task's stack depth (the first frame of
  an episode repeated, as the adapter does). Raw ALE screens (210, 160, 3) are refused: the frame
  skip's max-pooling cannot be redone from one screen.
- babyai: minigrid's dict -> the mission as `text_observations`; the direction then the 7x7x3
  view, row-major, as `discrete_observations` int64 (148,).
- metaworld: the (39,) array -> `continuous_observations` float32.

Every converted observation is checked against the task's spec (`check_observation`); errors
name the task, the field, what was given and what was expected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gato.schema import ActionSpec
from gato.tasks.envs.base import ObservationError, check_observation, observation_checks
from gato.tasks.registry import TaskSpec

__all__ = [
    "FrameStack",
    "check_action_space",
    "check_observation_space",
    "ObservationConverter",
    "babyai_observation",
    "describe",
    "dmc_state",
    "gym_observation",
    "space_bounds",
    "to_env_action",
]


# ---------------------------------------------------------------------------------------------
# Per-suite conversions: pure functions the adapters use too
# ---------------------------------------------------------------------------------------------


def gym_observation(observation: Any, column: str, start: int = 0) -> np.ndarray:
    """A gymnasium Box or Discrete observation -> the (D,) vector of `column`."""
    if column == "discrete_observations" and np.ndim(observation) == 0:
        return np.array([int(observation) - start], dtype=np.int64)
    dtype = np.int64 if column == "discrete_observations" else np.float32
    return np.asarray(observation, dtype=dtype).reshape(-1)


def dmc_state(observation: Mapping[str, Any], keys: list[str] | None = None) -> np.ndarray:
    """dm-control's observation dict -> float32 (D,): entries in `keys` order (default sorted),
    each flattened."""
    keys = sorted(observation) if keys is None else keys
    # axis=None flattens every entry (scalars included) in the one call that casts.
    return np.concatenate([observation[k] for k in keys], axis=None, dtype=np.float32)


def babyai_observation(observation: Mapping[str, Any]) -> dict[str, Any]:
    """minigrid's {"image", "direction", "mission"} -> the JAT layout (see `BabyAIEnv`)."""
    view = np.asarray(observation["image"], dtype=np.int64).reshape(-1)
    return {
        "text_observations": str(observation["mission"]),
        "discrete_observations": np.concatenate(([int(observation["direction"])], view)),
    }


class FrameStack:
    """The last `depth` frames, oldest first along the channel axis: (H, W, depth)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._frames: deque[np.ndarray] = deque(maxlen=depth)

    def reset(self, frame: np.ndarray) -> np.ndarray:
        """Start an episode: the first stack repeats its first frame."""
        self._frames.clear()
        self._frames.extend([frame] * self.depth)
        return self.stack()

    def push(self, frame: np.ndarray) -> np.ndarray:
        if not self._frames:
            return self.reset(frame)
        self._frames.append(frame)
        return self.stack()

    def stack(self) -> np.ndarray:
        # np.stack on the last axis builds the (H, W, depth) image in one pass.
        return np.stack(self._frames, axis=-1)


def describe(value: Any) -> str:
    """What was given, for error messages: type, and shape and dtype or keys."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} with keys {sorted(map(str, value))}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__} ({value!r:.40})"


def to_env_action(action: Any, spec: ActionSpec, bounds: tuple[Any, Any] | None = None) -> Any:
    """A canonical action -> the environment's: an int for discrete actions; for continuous ones
    float32 within the spec's bounds (`bounds`: others, e.g. an environment's own when the
    registry gives none)."""
    if spec.kind == "discrete":
        return int(action) if spec.shape == () else np.asarray(action, dtype=np.int64)
    if bounds is None:
        return spec.from_unit(action).astype(np.float32)
    low, high = (np.asarray(b, dtype=np.float64).reshape(spec.shape) for b in bounds)
    unit = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    return (low + (unit + 1.0) * 0.5 * (high - low)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# One converter per environment
# ---------------------------------------------------------------------------------------------


class ObservationConverter:
    """The observations of one environment of `task`, as the environment returns them -> the
    canonical dict, checked. Stateful for Atari (the frame stack): `reset()` on episode start.

    Args:
        task: the task whose environment produces the observations.
        discrete_start: gym only: the `start` of a Discrete observation space.
    """

    def __init__(self, task: TaskSpec, discrete_start: int = 0) -> None:
        self.task = task
        self.step = 0
        self._checks = observation_checks(task)
        self._stack: FrameStack | None = None
        self._convert, self.expected = self._suite_conversion(task, discrete_start)

    def reset(self) -> None:
        """A new episode starts (its next observation is the first)."""
        self.step = 0
        if self._stack is not None:
            self._stack = FrameStack(self._stack.depth)

    def __call__(self, observation: Any) -> dict[str, Any]:
        try:
            canonical = self._convert(observation)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
            if isinstance(err, ObservationError):
                raise
            raise ObservationError(
                self.task.id,
                self.step,
                "observation",
                f"expected {self.expected}, got {describe(observation)} ({err})",
            ) from None
        try:
            check_observation(self.task.id, self._checks, canonical, self.step)
        except ObservationError as err:
            raise ObservationError(
                self.task.id,
                self.step,
                err.field,
                f"{str(err).split(': ', 1)[1]}; expected {self.expected}, got "
                f"{describe(observation)}",
            ) from None
        self.step += 1
        return canonical

    def _suite_conversion(
        self, task: TaskSpec, start: int
    ) -> tuple[Callable[[Any], dict[str, Any]], str]:
        columns = task.observation_columns
        shapes = {c: task.observation[c].shape for c in columns}
        if task.suite in ("gym", "metaworld"):
            if len(columns) != 1 or columns[0] not in (
                "continuous_observations",
                "discrete_observations",
            ):
                raise ValueError(f"task {task.id!r}: no conversion for observations {columns}")
            (column,) = columns
            name = "gymnasium" if task.suite == "gym" else "Meta-World"
            expected = f"{name}'s observation: an array of shape {shapes[column]}"
            return (lambda obs: {column: gym_observation(obs, column, start)}), expected
        if task.suite == "dmc":
            if "image_observations" in columns:
                raise ValueError(
                    f"task {task.id!r} observes rendered pixels, which dm-control's observation "
                    "dict does not hold: step its adapter (gato.tasks.envs.make_env) instead"
                )
            size = shapes["continuous_observations"][0]
            expected = (
                f"dm-control's observation dict (or TimeStep) of {size} numbers in all, "
                "flattened in sorted key order"
            )
            return self._dmc, expected
        if task.suite == "babyai":
            expected = "minigrid's observation dict with 'image', 'direction' and 'mission'"
            return (lambda obs: babyai_observation(obs)), expected
        if task.suite == "atari":
            height, width, depth = shapes["image_observations"]
            self._stack = FrameStack(depth)
            expected = (
                f"a uint8 ({height}, {width}, {depth}) frame stack, or single ({height}, {width}) "
                "grayscale frames (gymnasium's AtariPreprocessing, as the task's adapter uses)"
            )
            return self._atari, expected
        raise ValueError(f"task {task.id!r}: no observation conversion for suite {task.suite!r}")

    @staticmethod
    def _dmc(observation: Any) -> dict[str, Any]:
        if not isinstance(observation, Mapping) and hasattr(observation, "observation"):
            observation = observation.observation  # a dm_env TimeStep
        if not isinstance(observation, Mapping):
            raise TypeError("not a mapping")
        return {"continuous_observations": dmc_state(observation)}

    def _atari(self, observation: Any) -> dict[str, Any]:
        frame = np.asarray(observation)
        shape = self.task.observation["image_observations"].shape
        if frame.shape == shape:
            return {"image_observations": frame}
        if frame.ndim == 3 and frame.shape[-1] == 1:
            frame = frame[..., 0]
        if frame.shape != shape[:2]:
            raise ValueError(f"a frame of shape {frame.shape} is neither a stack nor one frame")
        assert self._stack is not None
        return {"image_observations": self._stack.push(frame)}


# ---------------------------------------------------------------------------------------------
# gymnasium spaces against a task's specs
# ---------------------------------------------------------------------------------------------


def space_bounds(space: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) of a gymnasium Box; None for other spaces."""
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None:
        return None
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def check_action_space(space: Any, task: TaskSpec) -> None:
    """Raise a ValueError naming both when a gymnasium action space is not the task's."""
    import gymnasium as gym

    spec = task.action
    where = f"task {task.id!r}"
    if spec.kind == "discrete":
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(
                f"{where}: the policy plays {spec.num_values} discrete actions, but the "
                f"environment's action space is {space}"
            )
        if int(space.n) != spec.num_values or int(space.start) != 0:
            raise ValueError(
                f"{where}: the policy was trained on {spec.num_values} discrete actions "
                f"[0, {spec.num_values}); the environment's action space is {space}"
            )
        return
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(
            f"{where}: the policy plays continuous actions of shape {spec.shape}, but the "
            f"environment's action space is {space}"
        )
    if tuple(space.shape) != spec.shape:
        raise ValueError(
            f"{where}: the policy was trained on continuous actions of shape {spec.shape}; the "
            f"environment's action space is {space}"
        )
    bounds = space_bounds(space)
    if spec.low is not None and bounds is not None:
        low, high = spec.bounds()
        if not (np.allclose(bounds[0], low, rtol=1e-6) and np.allclose(bounds[1], high, rtol=1e-6)):
            raise ValueError(
                f"{where}: the policy was trained on actions within low={low.ravel().tolist()}, "
                f"high={high.ravel().tolist()}; the environment's action space is {space}"
            )


def check_observation_space(space: Any, task: TaskSpec) -> int:
    """Check a gymnasium observation space against the task's; returns a Discrete's start."""
    import gymnasium as gym

    where = f"task {task.id!r}"
    if isinstance(space, gym.spaces.Discrete):
        expected = task.observation.get("discrete_observations")
        if expected is None or expected.shape != (1,):
            raise ValueError(
                f"{where}: the policy observes {dict(task.observation)}; the environment's "
                f"observation space is {space}"
            )
        return int(space.start)
    if isinstance(space, gym.spaces.Box) and task.suite in ("gym", "metaworld"):
        (column,) = task.observation_columns
        shape = task.observation[column].shape
        if int(np.prod(space.shape)) != int(np.prod(shape)):
            raise ValueError(
                f"{where}: the policy was trained on {column} of shape {shape}; the "
                f"environment's observation space is {space}"
            )
    return 0

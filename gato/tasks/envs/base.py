"""The interface every suite adapter implements, its errors, and the suites' packages.

`ControlEnv` checks each observation against the task's spec, counts steps, truncates at the
registry's `episode_limit` and rescales canonical continuous actions ([-1, 1]) to the
simulator's bounds; a suite adapter (one module per suite in `gato.tasks.envs`) supplies only
`_reset` and `_step`.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from gato.tasks.registry import TaskSpec, is_noise_level


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
        self._checks = observation_checks(task)
        self._low = self._high = None
        self._scale: list[tuple[float, float]] = []

    # -- public API ------------------------------------------------------------------------

    def reset(self, seed: int | None = None, start_noise: float = 0.0) -> dict[str, Any]:
        """Start an episode; `seed` makes it reproducible. Returns the first observation.

        `start_noise` > 0 widens the start states beyond the task's own: every joint position
        gets Gaussian noise of that standard deviation (metres or radians), drawn from `seed`;
        for collecting data that shows the expert recovering from states its clean episodes
        never reach. Evaluation always starts from the task's own distribution.
        """
        if not is_noise_level(start_noise):
            raise ValueError(
                f"task {self.task.id!r}: start_noise must be a finite non-negative number, "
                f"got {start_noise!r}"
            )
        self.step_count = 0
        observation = self._reset(seed)
        if start_noise:
            # Its own stream: the task's start and the expert's noise keep theirs.
            rng = np.random.default_rng(None if seed is None else [seed, 0x57A27])
            observation = self._spread_start(float(start_noise), rng)
        return self._check(observation)

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

    def _spread_start(self, scale: float, rng: np.random.Generator) -> dict[str, Any]:
        """Perturb the state just reset (see `reset`); returns the new raw observation."""
        raise ValueError(
            f"task {self.task.id!r}: start_noise needs the simulator's joint state, which only "
            f"the dm-control adapter (suite 'dmc') exposes; this task's suite is "
            f"{self.task.suite!r}"
        )

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
        """Record the simulator's continuous action bounds (finite, low < high), which must be
        the registry's when it states them (`ActionSpec.low`, `high`): raw-scale datasets are
        tokenized and policies act by those."""
        self._low, self._high = _finite_bounds(low, high, self.task.id)
        self._scale = list(
            zip(self._low.ravel().tolist(), (0.5 * (self._high - self._low)).ravel().tolist(),
                strict=True)
        )  # fmt: skip
        spec = self.task.action
        if spec.kind == "continuous" and spec.low is None:
            # Without bounds the adapter still rescales to the environment's (as it always
            # did), but raw-scale data and policies in raw loops take [-1, 1]: say so.
            if not ((self._low == -1.0).all() and (self._high == 1.0).all()):
                warnings.warn(
                    f"task {self.task.id!r}: the registry gives no action bounds but the "
                    f"environment's are low={self._low.tolist()}, high={self._high.tolist()}; "
                    "set action.low and action.high in the registry",
                    stacklevel=3,
                )
            return
        if spec.kind == "continuous" and self._low.size == spec.num_tokens:
            expected = spec.bounds()
            got = (self._low.reshape(spec.shape), self._high.reshape(spec.shape))
            # float32 spaces store 0.4 as 0.4000000059604645
            pairs = zip(got, expected, strict=True)
            if not all(np.allclose(g, e, rtol=1e-6, atol=0) for g, e in pairs):
                raise ValueError(
                    f"task {self.task.id!r}: the environment's action bounds are low="
                    f"{self._low.tolist()}, high={self._high.tolist()} but the registry says "
                    f"low={expected[0].ravel().tolist()}, high={expected[1].ravel().tolist()}; "
                    "set action.low and action.high in the registry to the environment's"
                )

    # -- checks ----------------------------------------------------------------------------

    def _check(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Validate one observation against the spec (cheap: shape, dtype, finiteness)."""
        return check_observation(self.task.id, self._checks, observation, self.step_count)

    # -- to implement --------------------------------------------------------------------

    def _reset(self, seed: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def _step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool]:
        raise NotImplementedError


_add = np.add.reduce


def observation_checks(task: TaskSpec) -> list[tuple[str, tuple[int, ...], np.dtype | None]]:
    """(column, shape, dtype; None for text) of each observation column of a task."""
    return [
        (column, spec.shape, np.dtype(spec.dtype) if column != "text_observations" else None)
        for column, spec in task.observation.items()
    ]


def check_observation(
    task_id: str,
    checks: list[tuple[str, tuple[int, ...], np.dtype | None]],
    observation: dict[str, Any],
    step: int,
) -> dict[str, Any]:
    """Validate one canonical observation against `observation_checks(task)` (cheap: shape,
    dtype, finiteness); `ObservationError` names the task, the step and the field."""
    for column, shape, dtype in checks:
        if column not in observation:
            raise ObservationError(task_id, step, column, "missing")
        value = observation[column]
        if dtype is None:
            if not isinstance(value, str):
                problem = f"expected str, got {type(value).__name__}"
                raise ObservationError(task_id, step, column, problem)
            continue
        if not isinstance(value, np.ndarray) or value.dtype != dtype:
            got = getattr(value, "dtype", type(value).__name__)
            problem = f"expected a {dtype} array, got {got}"
            raise ObservationError(task_id, step, column, problem)
        if value.shape != shape:
            problem = f"expected shape {shape}, got {value.shape}"
            raise ObservationError(task_id, step, column, problem)
        # One reduction spots NaN and inf (a sum is non-finite iff some term is, barring
        # overflow near 3e38, which the exact check below then clears).
        if dtype.kind == "f" and not math.isfinite(_add(value)) and not np.isfinite(value).all():
            bad = np.flatnonzero(~np.isfinite(value))
            problem = f"non-finite values at indices {bad[:5].tolist()}"
            raise ObservationError(task_id, step, column, problem)
    return observation  # the adapters build a fresh dict every step


def vector(value: Any, dtype: type) -> np.ndarray:
    """A flat (D,) array of `dtype`: how adapters lay out a vector observation."""
    return np.asarray(value, dtype=dtype).reshape(-1)

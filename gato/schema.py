"""The episode schema, defined once: the JAT columns and the action spec.

An episode is one row with a sequence over its T steps in each column (see `gato.data.episodes`
for the `datasets` features). A task fills some observation columns, exactly one action column
and the reward column. The registry (`gato.tasks`), the episode reader and writer
(`gato.data.episodes`) and the tokenizer (`gato.tokens`) all take the columns from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gato.vocab import CONTINUOUS_OFFSET, DISCRETE_OFFSET, NUM_CONTINUOUS_BINS, NUM_DISCRETE_VALUES

OBSERVATION_COLUMNS: dict[str, str] = {
    "text_observations": "text",
    "image_observations": "image",
    "discrete_observations": "discrete",
    "continuous_observations": "continuous",
}
"""Observation column -> its modality, in the order their tokens appear within a timestep."""
MODALITIES: tuple[str, ...] = tuple(OBSERVATION_COLUMNS.values())
"""Observation modalities, in token order."""
ACTION_COLUMNS: dict[str, str] = {
    "discrete_actions": "discrete",
    "continuous_actions": "continuous",
}
"""Action column -> the action kind it holds."""
ACTION_KINDS: tuple[str, ...] = tuple(ACTION_COLUMNS.values())
REWARD_COLUMN = "rewards"
"""The reward that followed each step's action (float32 per step; never a token)."""
EPISODE_COLUMNS: tuple[str, ...] = (*OBSERVATION_COLUMNS, *ACTION_COLUMNS, REWARD_COLUMN)
"""Every per-step column of a control episode, in schema order."""
TERMINATED_COLUMN = "terminated"
"""Per episode (one bool, not a sequence): the episode reached a terminal state of the task (a
goal, a crash, a game over). Optional: JAT's data does not record it."""
TRUNCATED_COLUMN = "truncated"
"""Per episode (one bool): the episode was cut before a terminal state, by the time limit or by
whoever recorded it. Optional, like `terminated`; at most one of the two is true."""
END_COLUMNS: tuple[str, ...] = (TERMINATED_COLUMN, TRUNCATED_COLUMN)
"""The optional per-episode columns saying how an episode ended (gymnasium's two flags)."""

_COLUMN_OF_KIND = {kind: column for column, kind in ACTION_COLUMNS.items()}


@dataclass(frozen=True)
class ActionSpec:
    """A task's action: what it looks like in tokens, and how tokens decode back into it.

    Attributes:
        kind: "discrete" (an index in [0, num_values)) or "continuous" (floats in [-1, 1] in
            tokens: `to_unit` brings the environment's values there, `from_unit` back).
        shape: shape of one action; () for a single discrete index.
        num_values: discrete only: valid values are [0, num_values), at most 1024.
        mu_law: continuous only: mu-law encode before binning. Off by default: continuous actions
            are already in [-1, 1] ("mu-law encoded if not already there", Gato).
        low, high: continuous only: the environment's action bounds, one number for every element
            or one per element (row-major); None: the environment's actions lie in [-1, 1]
            already. Every action reaches the tokens on one scale, [-1, 1] mapped linearly
            onto [low, high], whatever scale a dataset stores (`ACTION_SCALES`).
    """

    kind: Literal["discrete", "continuous"]
    shape: tuple[int, ...] = ()
    num_values: int = NUM_DISCRETE_VALUES
    mu_law: bool = False
    # Not compared: two specs are equal when their actions are the same tokens (a checkpoint
    # that plays one plays the other, zero-shot); the bounds only scale those to an environment.
    low: tuple[float, ...] | None = field(default=None, compare=False)
    high: tuple[float, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(
                f"ActionSpec.kind must be 'discrete' or 'continuous', got {self.kind!r}"
            )
        if not 1 <= self.num_values <= NUM_DISCRETE_VALUES:
            raise ValueError(
                f"ActionSpec.num_values must be in [1, {NUM_DISCRETE_VALUES}], "
                f"got {self.num_values}"
            )
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.low is None and self.high is None:
            return
        if self.kind != "continuous" or self.low is None or self.high is None:
            raise ValueError(
                f"ActionSpec: low and high go together, for continuous actions only; got "
                f"kind={self.kind!r}, low={self.low}, high={self.high}"
            )
        bounds = []
        for name, value in (("low", self.low), ("high", self.high)):
            array = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
            if array.size not in (1, self.num_tokens) or not np.isfinite(array).all():
                raise ValueError(
                    f"ActionSpec.{name} must hold 1 or {self.num_tokens} finite numbers (one "
                    f"per element of shape {self.shape}), got {value!r}"
                )
            bounds.append(np.broadcast_to(array, (self.num_tokens,)))
            object.__setattr__(self, name, tuple(float(v) for v in array))
        if (bounds[1] <= bounds[0]).any():
            raise ValueError(f"ActionSpec: low must be below high, got {self.low} and {self.high}")

    @property
    def column(self) -> str:
        """The JAT column holding this action."""
        return _COLUMN_OF_KIND[self.kind]

    @property
    def num_tokens(self) -> int:
        """Tokens per action."""
        return int(np.prod(self.shape, dtype=np.int64))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of a continuous action, each float64 of `shape`; [-1, 1] when unset."""
        if self.kind != "continuous":
            raise ValueError("a discrete action has no bounds")

        def shaped(value: tuple[float, ...] | None, default: float) -> np.ndarray:
            flat = np.asarray(default if value is None else value, dtype=np.float64).ravel()
            return np.broadcast_to(flat, (self.num_tokens,)).reshape(self.shape).copy()

        return shaped(self.low, -1.0), shaped(self.high, 1.0)

    def to_unit(self, values: Any) -> tuple[np.ndarray, int]:
        """Environment actions (..., *shape) -> [-1, 1], and how many elements lay outside the
        bounds (clipped to them, as the environments clip what they are given)."""
        low, high = self.bounds()
        array = _check_action_values(values, self.shape, "actions")
        unit = 2.0 * (array - low) / (high - low) - 1.0
        outside = int(np.count_nonzero((unit < -1.0) | (unit > 1.0)))
        return np.clip(unit, -1.0, 1.0), outside

    def from_unit(self, values: Any) -> np.ndarray:
        """[-1, 1] (..., *shape) -> environment actions in [low, high] (clipped first: decoded
        bins may sit a hair outside [-1, 1]); float64."""
        low, high = self.bounds()
        array = np.clip(_check_action_values(values, self.shape, "actions"), -1.0, 1.0)
        return low + (array + 1.0) * 0.5 * (high - low)

    def token_range(self) -> tuple[int, int]:
        """[lo, hi) of the ids an action token may take: the policy masks logits to it."""
        if self.kind == "discrete":
            return DISCRETE_OFFSET, DISCRETE_OFFSET + self.num_values
        return CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS


ACTION_SCALES: tuple[str, ...] = ("unit", "raw")
"""How a dataset stores continuous actions: "unit", in [-1, 1] (what this project's adapters
take and its collection records); "raw", the environment's own values (JAT's datasets, Minari's).
The tokenizer maps "raw" actions into [-1, 1] by the task's `ActionSpec.bounds`."""


def check_action_scale(scale: str) -> str:
    """`scale` if it is one of `ACTION_SCALES`, else a ValueError naming them."""
    if scale not in ACTION_SCALES:
        raise ValueError(f"action scale must be one of {ACTION_SCALES}, got {scale!r}")
    return scale


def _check_action_values(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < len(shape) or array.shape[array.ndim - len(shape) :] != shape:
        raise ValueError(f"{name}: expected trailing shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: continuous actions must be finite, got {array.ravel()[:8]}")
    return array

"""The episode schema, defined once: the JAT columns and the action spec.

An episode is one row with a sequence over its T steps in each column (see `gato.data.episodes`
for the `datasets` features). A task fills some observation columns, exactly one action column
and the reward column. The registry (`gato.tasks`), the episode reader and writer
(`gato.data.episodes`) and the tokenizer (`gato.tokens`) all take the columns from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
        kind: "discrete" (an index in [0, num_values)) or "continuous" (floats in [-1, 1]; the
            environment adapter rescales them to the environment's bounds).
        shape: shape of one action; () for a single discrete index.
        num_values: discrete only: valid values are [0, num_values), at most 1024.
        mu_law: continuous only: mu-law encode before binning. Off by default: continuous actions
            are already in [-1, 1] ("mu-law encoded if not already there", Gato).
    """

    kind: Literal["discrete", "continuous"]
    shape: tuple[int, ...] = ()
    num_values: int = NUM_DISCRETE_VALUES
    mu_law: bool = False

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

    @property
    def column(self) -> str:
        """The JAT column holding this action."""
        return _COLUMN_OF_KIND[self.kind]

    @property
    def num_tokens(self) -> int:
        """Tokens per action."""
        return int(np.prod(self.shape, dtype=np.int64))

    def token_range(self) -> tuple[int, int]:
        """[lo, hi) of the ids an action token may take: the policy masks logits to it."""
        if self.kind == "discrete":
            return DISCRETE_OFFSET, DISCRETE_OFFSET + self.num_values
        return CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS

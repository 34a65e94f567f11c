"""Per-dimension statistics of a task's continuous observations, for standardised value tokens.

Gato mu-law encodes every continuous observation as it comes, so a dimension's typical values
may fill a sliver of the 1,024 bins (every |x| <= 1 takes the codes within +-0.46). A tokenizer
given a task's `ObservationStatistics` (`GatoTokenizer.standardising`) tokenizes
z = (x - mean) / std instead: every dimension on the same scale, the reading the MLP specialist
is given (docs/control_learning.md). The statistics are of the training episodes and travel with the
checkpoint (`GatoConfig.observation_statistics`, keyed by task), since acting must tokenize
observations as training did.

The continuous part of a timestep is read as one flat vector, its leaves in the tokenizer's
order (lexicographic keys, each row-major), so the statistics do not depend on how a source
names its columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MIN_STD", "ObservationStatistics"]

MIN_STD = 1e-6
"""A dimension whose deviation is below this is constant in the data: it is only shifted (its
deviation taken as 1), since dividing by ~0 would throw every unseen value to the end bins."""

_COLUMN = "continuous_observations"


@dataclass(frozen=True)
class ObservationStatistics:
    """mean, std: (n,) float64 per continuous observation value of a timestep (std >= MIN_STD
    after construction: near-constant dimensions read std 1)."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        if mean.ndim != 1 or std.shape != mean.shape or mean.size == 0:
            raise ValueError(
                "observation statistics need mean and std of the same shape (n,), n >= 1; got "
                f"{mean.shape} and {std.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std < 0).any():
            raise ValueError("observation statistics must be finite with std >= 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", np.where(std < MIN_STD, 1.0, std))

    @property
    def size(self) -> int:
        return int(self.mean.size)

    @classmethod
    def of_values(cls, values: np.ndarray) -> ObservationStatistics:
        """(N, n) observation vectors -> their per-dimension mean and (population) deviation."""
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] == 0:
            raise ValueError(f"expected (N, n) observations with N >= 1, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("observations hold a non-finite value; statistics would be NaN")
        return cls(array.mean(axis=0), array.std(axis=0))

    @classmethod
    def of_episodes(cls, episodes: Iterable[Mapping[str, Any]]) -> ObservationStatistics:
        """Episode rows in the JAT schema -> the statistics of their `continuous_observations`."""
        parts = []
        for i, row in enumerate(episodes):
            observations = row.get(_COLUMN)
            if observations is None:
                raise ValueError(f"episode {i} has no {_COLUMN!r} to take statistics of")
            array = np.asarray(observations, dtype=np.float64)
            if array.size == 0:
                continue  # an episode with no steps (JAT's datasets hold a few)
            parts.append(array.reshape(array.shape[0], -1))
        if not parts:
            raise ValueError("no episodes with steps to take observation statistics of")
        widths = {p.shape[1] for p in parts}
        if len(widths) != 1:
            raise ValueError(f"episodes disagree on the observation size: {sorted(widths)}")
        return cls.of_values(np.concatenate(parts))

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """(T, n) -> (T, n) float64 (x - mean) / std."""
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != self.size:
            raise ValueError(
                f"observation statistics are of {self.size} continuous values a timestep, got "
                f"observations of shape {array.shape[1:] if array.ndim == 2 else array.shape}"
            )
        return (array - self.mean) / self.std

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready {"mean": [...], "std": [...]} (what a config records)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ObservationStatistics:
        if not isinstance(record, Mapping) or set(record) != {"mean", "std"}:
            raise ValueError(
                f"observation statistics record must be {{'mean': [...], 'std': [...]}}, got "
                f"{record!r:.80}"
            )
        return cls(np.asarray(record["mean"]), np.asarray(record["std"]))

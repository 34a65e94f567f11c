"""Score formulas of Gato: expert score, random score, the training filter, normalised scores.

Pure functions of episode returns (numpy in, floats out); they import nothing from the project.

- Expert score: the best average return over a window of consecutive expert episodes, the
  window being min(1000, 10% of the episodes) ("best windowed average", Gato appendix).
- Random score: the mean return of random-policy episodes (100 of them in the registry).
- Training filter: Gato keeps episodes whose return is at least 80% of the expert score. That
  reads as `return >= 0.8 * expert` when the expert score is positive; where it is zero or
  negative (Pendulum, MountainCar: every return is a cost) 80% of it would demand *more* than the
  expert, so the threshold becomes 80% of the way from the random score to the expert's,
  `random + 0.8 * (expert - random)`, the same fraction measured on the normalised scale.
- Normalised score: (return - random) / (expert - random): 0 for the random policy, 1 for the
  expert.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_WINDOW = 1000
WINDOW_FRACTION = 0.1
FILTER_FRACTION = 0.8


def window_size(num_episodes: int) -> int:
    """min(1000, 10% of the episodes), at least 1."""
    if num_episodes < 1:
        raise ValueError("window_size needs at least one episode")
    return max(1, min(MAX_WINDOW, int(WINDOW_FRACTION * num_episodes)))


def expert_score(returns: Sequence[float] | np.ndarray, window: int | None = None) -> float:
    """The best mean return over `window` consecutive episodes (default `window_size(N)`).

    Episodes are taken in the order given (collection order).
    """
    values = np.asarray(returns, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("expert_score needs at least one episode return")
    if not np.isfinite(values).all():
        raise ValueError("expert_score: returns must be finite")
    window = window_size(values.size) if window is None else int(window)
    if not 1 <= window <= values.size:
        raise ValueError(f"window must be in [1, {values.size}], got {window}")
    sums = np.convolve(values, np.ones(window), mode="valid")  # sums[i] = sum(values[i:i+w])
    return float(sums.max() / window)


def random_score(returns: Sequence[float] | np.ndarray) -> float:
    """The mean return of the random-policy episodes."""
    values = np.asarray(returns, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("random_score needs at least one episode return")
    return float(values.mean())


def filter_threshold(expert: float, random: float, fraction: float = FILTER_FRACTION) -> float:
    """The lowest return a training episode may have (see the module docstring)."""
    if expert > 0:
        return fraction * expert
    return random + fraction * (expert - random)


def keep_mask(
    returns: Sequence[float] | np.ndarray,
    expert: float,
    random: float,
    fraction: float = FILTER_FRACTION,
) -> np.ndarray:
    """Boolean mask of the episodes kept for training: return >= `filter_threshold`."""
    values = np.asarray(returns, dtype=np.float64)
    return values >= filter_threshold(expert, random, fraction)


def normalized_score(
    returns: float | Sequence[float] | np.ndarray, expert: float, random: float
) -> float | np.ndarray:
    """(return - random) / (expert - random): 0 random, 1 expert."""
    if expert == random:
        raise ValueError("normalized_score: the expert and random scores are equal")
    values = (np.asarray(returns, dtype=np.float64) - random) / (expert - random)
    return float(values) if values.ndim == 0 else values

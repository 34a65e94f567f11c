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

Seeds: episode start states come from reset seeds, and three uses keep three disjoint ranges of
`SEED_SPAN` seeds each, so that no score is measured on a start state a model trained on:
collection (training data) `[0, SCORE_SEED)`, the expert and random reference episodes
`[SCORE_SEED, EVALUATION_SEED)`, and evaluation `[EVALUATION_SEED, EVALUATION_SEED + SEED_SPAN)`.
Collection refuses the evaluation range (`check_not_evaluation_seeds`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_WINDOW = 1000
WINDOW_FRACTION = 0.1
FILTER_FRACTION = 0.8

SEED_SPAN = 1_000_000
"""Seeds per range (collection, reference scores, evaluation)."""
SCORE_SEED = 1_000_000
"""First seed of the expert and random reference episodes (`gato.data.collect.measure_scores`)."""
EVALUATION_SEED = 2_000_000
"""First seed of evaluation episodes: episode k of an evaluation starts from seed
`EVALUATION_SEED + k`, a start state no collected episode used."""


def overlaps_evaluation_seeds(first: int, count: int) -> bool:
    """Whether the seeds [first, first + count) meet the evaluation range."""
    return first < EVALUATION_SEED + SEED_SPAN and EVALUATION_SEED < first + count


def check_not_evaluation_seeds(first: int, count: int, what: str = "collection") -> None:
    """Raise `ValueError` when [first, first + count) uses an evaluation seed: an episode
    recorded there would let evaluation score a start state the model trained on."""
    if overlaps_evaluation_seeds(first, count):
        raise ValueError(
            f"{what} seeds [{first}, {first + count}) overlap the evaluation seeds "
            f"[{EVALUATION_SEED}, {EVALUATION_SEED + SEED_SPAN}), which are kept for held-out "
            "evaluation; choose seeds below that range"
        )


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

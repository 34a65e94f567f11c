"""Aggregate scores with their uncertainty, as Agarwal et al. (2021) recommend, through `rliable`.

A handful of tasks and a few episodes each make a mean normalised score noisy; a point estimate
alone says nothing of how noisy. Following "Deep RL at the Edge of the Statistical Precipice"
(Agarwal et al., NeurIPS 2021) every aggregate here comes with a stratified bootstrap 95%
confidence interval, and the statistics are rliable's own (`rliable.metrics`), not re-derived:

- interquartile mean (IQM): the mean of the middle 50% of all (episode, task) scores, robust to
  the outlier tasks that move a mean and efficient where a median throws most scores away;
- mean and median of the per-task mean scores.

The score matrix is (episodes, tasks): one evaluation episode of a checkpoint plays the role of
one "run" of the paper, the random quantity resampled; stratified bootstrap resamples episodes
within each task (with `task_bootstrap`, tasks too). Tasks with unequal episode counts are cut
to the smallest count (recorded as `episodes`).

The bootstrap is rliable's `StratifiedBootstrap` scheme, percentile method, drawn here: every
(episode, task) cell of a replicate takes the score of an episode drawn with replacement from the
same task (rliable `library.py`, `update_indices`). `rliable.library` itself cannot run in this
environment: it needs `arch<8`, whose import fails under pandas 3 (`deprecate_kwarg`), and arch 8
no longer takes the `random_state` keyword rliable passes. Drawing the indices with a seeded
generator also makes the intervals reproducible (rliable draws from numpy's global state).

Per task: the mean, the standard deviation and a percentile bootstrap 95% interval of the mean
over its episodes (`episode_interval`).

Domains are the task suites (`DOMAINS`): each gets its own aggregate next to the overall one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CONFIDENCE",
    "DOMAINS",
    "aggregate",
    "episode_interval",
    "interval_estimates",
    "plot_performance_profile",
    "score_matrix",
    "stratified_bootstrap",
]

DOMAINS = ("atari", "dmc", "gym", "babyai", "metaworld")
"""The suites aggregated one by one (Atari, DeepMind Control, gymnasium, BabyAI, Meta-World)."""
CONFIDENCE = 0.95
"""Coverage of every interval."""
_STATISTICS = ("iqm", "mean", "median")


def _check_reps(reps: int) -> None:
    if int(reps) < 10:
        raise ValueError(f"bootstrap reps must be at least 10, got {reps}")


def stratified_bootstrap(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    reps: int = 2000,
    seed: int = 0,
    task_bootstrap: bool = False,
) -> np.ndarray:
    """Replicates of `statistic` on stratified resamples of a score matrix.

    Args:
        scores: (N, M) scores, N episodes of each of M tasks.
        statistic: (N, M) -> (K,) statistics.
        reps: replications.
        seed: the generator's seed.
        task_bootstrap: also resample the tasks (rliable's `task_bootstrap`).

    Returns:
        (reps, K) the statistics of each replicate.
    """
    _check_reps(reps)
    rng = np.random.default_rng(seed)
    n, m = scores.shape
    out = []
    for _ in range(int(reps)):
        rows = rng.integers(0, n, size=(n, m))  # episode of each cell, drawn within its task
        columns = rng.integers(0, m, size=m) if task_bootstrap else np.arange(m)
        out.append(np.atleast_1d(statistic(scores[rows, columns[None, :]])))
    return np.stack(out)


def _percentile_interval(replicates: np.ndarray) -> np.ndarray:
    """(reps, K) -> (2, K): the percentile interval of coverage `CONFIDENCE`."""
    tail = 100 * (1 - CONFIDENCE) / 2
    return np.percentile(replicates, [tail, 100 - tail], axis=0)


def _statistics(x: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array(
        [metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x)]
    )


def _check_matrix(scores: Any) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ValueError(f"scores must be an (episodes, tasks) matrix, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores


def interval_estimates(
    scores: np.ndarray, reps: int = 2000, seed: int = 0, task_bootstrap: bool = False
) -> dict[str, Any]:
    """IQM, mean and median of a score matrix with stratified bootstrap 95% intervals.

    Args:
        scores: (N, M) normalised scores, N episodes of each of M tasks; finite.
        reps: bootstrap replications.
        seed: the bootstrap's seed (the intervals are reproducible).
        task_bootstrap: resample tasks as well as episodes.

    Returns:
        {"iqm" | "mean" | "median": {"value", "low", "high"}}.
    """
    scores = _check_matrix(scores)
    point = _statistics(scores)
    interval = _percentile_interval(
        stratified_bootstrap(scores, _statistics, reps, seed, task_bootstrap)
    )  # (2, 3)
    return {
        name: {
            "value": float(point[k]),
            "low": float(interval[0, k]),
            "high": float(interval[1, k]),
        }
        for k, name in enumerate(_STATISTICS)
    }


def episode_interval(values: Sequence[float], reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean, standard deviation and a bootstrap 95% interval of the mean of one task's episodes.

    `values`: (N,) per-episode scores (returns or normalised scores)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("episode_interval needs at least one episode")
    if not np.isfinite(values).all():
        raise ValueError("episode_interval: values must be finite")
    replicates = stratified_bootstrap(values[:, None], lambda x: np.array([x.mean()]), reps, seed)
    low, high = _percentile_interval(replicates)[:, 0]
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "low": float(low),
        "high": float(high),
        "episodes": int(values.size),
    }


def score_matrix(task_scores: Mapping[str, Sequence[float]]) -> tuple[np.ndarray, list[str]]:
    """{task: per-episode scores} -> ((N, M) matrix, task order); N the smallest count."""
    if not task_scores:
        raise ValueError("score_matrix: no task scores")
    names = list(task_scores)
    columns = [np.asarray(task_scores[n], dtype=np.float64).ravel() for n in names]
    empty = [n for n, c in zip(names, columns, strict=True) if c.size == 0]
    if empty:
        raise ValueError(f"score_matrix: tasks without episodes: {empty}")
    n = min(c.size for c in columns)
    return np.stack([c[:n] for c in columns], axis=1), names


def aggregate(
    task_scores: Mapping[str, Sequence[float]],
    domains: Mapping[str, str] | None = None,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Aggregates over all tasks and per domain.

    Args:
        task_scores: task id -> (N,) per-episode normalised scores.
        domains: task id -> its suite ("atari", "dmc", ...); tasks of a suite outside `DOMAINS`
            count in "all" only.
        reps, seed: the bootstrap's replications and random state.

    Returns:
        {"method", "reps", "confidence", "all": {...}, "by_domain": {domain: {...}}}, each
        block {"tasks", "episodes", "iqm", "mean", "median"} (see `interval_estimates`); None
        for "all" when no task has scores.
    """
    domains = domains or {}
    unknown = sorted(set(domains) - set(task_scores))
    if unknown:
        raise ValueError(f"aggregate: domains given for tasks without scores: {unknown}")
    out: dict[str, Any] = {
        "method": "stratified bootstrap (rliable scheme, percentile) over episodes within tasks",
        "reps": int(reps),
        "confidence": CONFIDENCE,
        "all": _block(task_scores, reps, seed) if task_scores else None,
        "by_domain": {},
    }
    for domain in DOMAINS:
        chosen = {t: s for t, s in task_scores.items() if domains.get(t) == domain}
        if chosen:
            out["by_domain"][domain] = _block(chosen, reps, seed)
    return out


def _block(task_scores: Mapping[str, Sequence[float]], reps: int, seed: int) -> dict[str, Any]:
    matrix, names = score_matrix(task_scores)
    return {"tasks": names, "episodes": int(matrix.shape[0])} | interval_estimates(
        matrix, reps, seed
    )


def plot_performance_profile(
    task_scores: Mapping[str, Sequence[float]],
    path: str | Path,
    label: str = "checkpoint",
    reps: int = 2000,
) -> Path:
    """The score distribution (fraction of episodes with normalised score above tau, with its
    95% band, rliable's performance profile) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    matrix, _ = score_matrix(task_scores)
    high = max(1.2, float(np.max(matrix)) + 0.05)
    low = min(0.0, float(np.min(matrix)))
    taus = np.linspace(low, high, 101)

    def profile(x: np.ndarray) -> np.ndarray:  # rliable's score distribution
        return np.array([np.mean(x > tau) for tau in taus])

    replicates = stratified_bootstrap(matrix, profile, reps)
    profiles, cis = {label: profile(matrix)}, {label: _percentile_interval(replicates)}
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_utils.plot_performance_profiles(
        profiles,
        taus,
        performance_profile_cis=cis,
        colors={label: "tab:blue"},
        xlabel=r"expert-normalised score ($\tau$)",
        ylabel=r"fraction of episodes with score > $\tau$",
        ax=ax,
    )
    ax.axvline(1.0, color="tab:red", linestyle="--", linewidth=1)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

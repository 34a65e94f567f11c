"""A run's learning curve and summary, from its `episodes.jsonl` (one line per episode)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def read_episodes(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps [E], returns [E]) of a run's finished episodes, in the order they were learnt."""
    path = Path(run_dir) / "episodes.jsonl"
    if not path.exists():
        return np.zeros(0, np.int64), np.zeros(0)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = np.array([r["step"] for r in rows], dtype=np.int64)
    returns = np.array([r["return"] for r in rows], dtype=np.float64)
    return steps, returns


def moving_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each index (fewer at the start). [E] -> [E]."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    sums = np.cumsum(np.concatenate([[0.0], values]))
    index = np.arange(1, len(values) + 1)
    lo = np.maximum(0, index - window)
    return (sums[index] - sums[lo]) / (index - lo)


def steps_to_threshold(
    steps: np.ndarray, returns: np.ndarray, threshold: float, window: int
) -> int | None:
    """First step at which the mean of the last `window` episodes (a full window) reaches it."""
    if len(returns) < window:
        return None
    mean = moving_mean(returns, window)
    hit = np.flatnonzero(mean[window - 1 :] >= threshold)
    return int(steps[window - 1 + hit[0]]) if hit.size else None


def write_summary(
    run_dir: str | Path, config: Any, updates: int, seconds: float, steps_this_call: int
) -> dict[str, Any]:
    """`summary.json`: returns, steps to the threshold, speed; returns the dict."""
    steps, returns = read_episodes(run_dir)
    window = config.return_window
    mean = moving_mean(returns, window) if len(returns) else np.zeros(0)
    summary = {
        "task": config.task,
        "steps": int(steps[-1]) if len(steps) else 0,
        "updates": updates,
        "episodes": len(returns),
        "final_mean_return": float(mean[-1]) if len(mean) else None,
        "best_mean_return": float(mean[window - 1 :].max()) if len(mean) >= window else None,
        "return_window": window,
        "threshold": config.stop_at_return,
        "steps_to_threshold": (
            steps_to_threshold(steps, returns, config.stop_at_return, window)
            if config.stop_at_return is not None
            else None
        ),
        "seconds_this_call": seconds,
        "steps_per_second_this_call": steps_this_call / max(seconds, 1e-9),
    }
    (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def plot_learning_curve(
    run_dir: str | Path, threshold: float | None = None, window: int = 100
) -> Path:
    """`learning_curve.png`: every episode's return and the moving mean, against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    steps, returns = read_episodes(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(returns):
        # A few thousand dots show the spread; millions would only hide the mean.
        shown = np.random.default_rng(0).permutation(len(returns))[:4000]
        ax.scatter(steps[shown], returns[shown], s=2, alpha=0.25, color="tab:blue",
                   label="episode return")  # fmt: skip
        ax.plot(steps, moving_mean(returns, window), color="tab:orange", linewidth=2,
                label=f"mean of last {window}")  # fmt: skip
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:g}")
    config = json.loads(sorted(run_dir.glob("run-*.json"))[0].read_text())["config"]
    ax.set_title(f"IMPALA on {config['task']}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = run_dir / "learning_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = [
    "moving_mean",
    "plot_learning_curve",
    "read_episodes",
    "steps_to_threshold",
    "write_summary",
]

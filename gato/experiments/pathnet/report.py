"""Statistics, tables and plots shared by the PathNet experiments (pure functions, matplotlib
imported inside the plotting functions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Spread",
    "markdown_table",
    "plot_speedups",
    "speedup",
    "spread",
]


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation, median, quartiles and count of a sample."""

    mean: float
    std: float
    median: float
    q25: float
    q75: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f}"


def spread(values: Sequence[float]) -> Spread:
    """Summary of `values` (std with ddof=1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("spread of an empty sample")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    q25, median, q75 = (float(v) for v in np.percentile(array, [25, 50, 75]))
    return Spread(float(array.mean()), std, median, q25, q75, int(array.size))


def speedup(
    baseline: Sequence[float],
    transfer: Sequence[float],
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """How much faster `transfer` is than `baseline`: mean(baseline) / mean(transfer).

    Both are per-seed costs (generations or steps) of the same seeds, paired; the 95% interval is
    a bootstrap over seeds (resampled pairs). Returns ratio, low, high, and the median of the
    per-seed ratios.
    """
    base = np.asarray(baseline, dtype=np.float64)
    trans = np.asarray(transfer, dtype=np.float64)
    if base.shape != trans.shape or base.ndim != 1 or base.size == 0:
        raise ValueError(
            f"speedup needs two equal-length 1-d samples, got {base.shape} and {trans.shape}"
        )
    if (trans <= 0).any() or (base <= 0).any():
        raise ValueError("speedup needs positive costs")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, base.size, size=(resamples, base.size))
    ratios = base[picks].mean(axis=1) / trans[picks].mean(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return {
        "ratio": float(base.mean() / trans.mean()),
        "low": float(low),
        "high": float(high),
        "median_of_ratios": float(np.median(base / trans)),
    }


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_speedups(
    groups: dict[str, dict[str, Sequence[float]]],
    path: str | Path,
    ylabel: str,
    title: str,
) -> Path:
    """One panel per group (a task pair): a box plot of each condition's per-seed cost.

    Args:
        groups: {group name: {condition: per-seed costs}}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    per_panel = max(3.2, 1.2 * max(len(groups[name]) for name in names))  # room for the labels
    width = max(5.0, per_panel * columns)  # one panel still needs room for its title
    fig, axes = plt.subplots(rows, columns, figsize=(width, 3.4 * rows + 0.2), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        conditions = list(groups[name])
        data = [np.asarray(groups[name][c], dtype=float) for c in conditions]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(conditions) + 1), conditions)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, values.size), values, s=8, alpha=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(ylabel)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Evaluate: held-out curves of AD, ED, the source algorithm and random; `results.json` and the
figure `curves.png`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.experiments.algorithm_distillation.config import ADConfig
from gato.experiments.algorithm_distillation.dark_room import goal_split, optimal_return
from gato.experiments.algorithm_distillation.experiment import _model_dir, load_model
from gato.experiments.algorithm_distillation.histories import q_learning_histories, random_histories
from gato.experiments.algorithm_distillation.in_context import in_context_returns
from gato.files import atomic_write_json

__all__ = ["episodes_to_reach", "evaluate", "plot_curves"]


def episodes_to_reach(curve: np.ndarray, threshold: float, window: int) -> int | None:
    """Episodes a learner needed: the first e (1-based, counting episode e) such that the mean
    of episodes [e - 1, e - 1 + window) reaches `threshold`; None if no full window does.

    Args:
        curve: (H,) return per episode (a mean over goals and runs).
    """
    curve = np.asarray(curve, dtype=float)
    if curve.ndim != 1 or window < 1:
        raise ValueError(f"curve must be (H,) and window >= 1, got {curve.shape}, {window}")
    if len(curve) < window:
        return None
    means = np.convolve(curve, np.ones(window) / window, mode="valid")  # (H - window + 1,)
    hits = np.flatnonzero(means >= threshold - 1e-9)
    return int(hits[0]) + 1 if hits.size else None


def _curve_stats(per_seed: np.ndarray) -> dict[str, list[float]]:
    """(S, H) per-seed curves -> mean and standard deviation over seeds, per episode."""
    return {"mean": per_seed.mean(0).tolist(), "std": per_seed.std(0).tolist()}


def evaluate(config: ADConfig) -> dict[str, Any]:
    """Held-out curves of AD, ED, the source algorithm and random; `results.json`, a figure."""
    torch.set_num_threads(config.threads)
    _, held_out = goal_split(config.size, config.num_held_out)
    start = time.perf_counter()
    h = config.history_episodes
    env = dict(size=config.size, episode_length=config.episode_length)
    source = np.stack(
        [
            q_learning_histories(
                held_out, h, config.q_learning, seed=config.seed + 7919 * (s + 1), **env
            ).returns.mean(0)
            for s in range(config.source_seeds)
        ]
    )  # (S, H)
    rand = np.stack(
        [
            random_histories(
                held_out, config.eval_episodes, seed=config.seed + s, **env
            ).returns.mean(0)
            for s in range(config.source_seeds)
        ]
    )
    curves = {"source": source, "random": rand}
    goals = np.repeat(held_out, config.eval_repeats, axis=0)  # (M * R, 2)
    per_goal = {}
    for kind in config.models:
        per_model = []
        for seed in config.train_seeds:
            model = load_model(_model_dir(config, kind, seed))
            returns = in_context_returns(
                model, goals, config.eval_episodes, config.context_episodes,
                seed=config.seed + seed, **env,
            )  # fmt: skip
            runs = returns.reshape(len(held_out), config.eval_repeats, -1)  # (M, R, E)
            per_model.append(runs.mean(0))  # (R, E): one curve per in-context run
            per_goal[f"{kind}-seed{seed}"] = runs.mean(1)[:, -10:].mean(1).tolist()
        curves[kind] = np.concatenate(per_model)  # (seeds * R, eval_episodes)

    tail = max(1, h // 10)
    target = float(source.mean(0)[-tail:].mean())
    source_needs = episodes_to_reach(source.mean(0), target, config.smooth)
    results: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "held_out_goals": held_out.tolist(),
        "optimal_return": float(
            optimal_return(held_out, config.size, config.episode_length).mean()
        ),
        "source_final_return": target,
        "source_final_window": tail,
        "episodes_to_source_final": {"source": source_needs},
        "final_return": {},
        "per_goal_final_return": per_goal,
        "curves": {name: _curve_stats(c) for name, c in curves.items()},
    }
    for name, c in curves.items():
        if name == "source":
            continue
        results["episodes_to_source_final"][name] = episodes_to_reach(
            c.mean(0), target, config.smooth
        )
        per_seed = [episodes_to_reach(row, target, config.smooth) for row in c]
        results["episodes_to_source_final"][f"{name}_per_seed"] = per_seed
    for name, c in curves.items():
        results["final_return"][name] = {
            "first10": float(c[:, :10].mean()),
            "last10": float(c[:, -10:].mean()),
            "last10_seed_std": float(c[:, -10:].mean(1).std()),
        }
    results["seconds"] = time.perf_counter() - start
    out = Path(config.output_dir)
    atomic_write_json(out / "results.json", results)
    plot_curves(results, out / "curves.png")
    return results


def plot_curves(results: dict[str, Any], path: str | Path) -> Path:
    """Return per episode on held-out goals, mean and spread (one std) over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {
        "source": "source: Q-learning",
        "ad": "Algorithm Distillation",
        "ed": "expert distillation",
        "random": "random",
    }
    colours = {"source": "tab:gray", "ad": "tab:blue", "ed": "tab:orange", "random": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, stats in results["curves"].items():
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, label=names.get(name, name), color=colours.get(name))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=colours.get(name))
    ax.axhline(results["source_final_return"], ls="--", lw=1, color="k", label="source final")
    ax.axhline(results["optimal_return"], ls=":", lw=1, color="k", label="optimal")
    ax.set_xscale("log")
    ax.set_xlabel("episode (log scale)")
    ax.set_ylabel("return (mean over held-out goals)")
    ax.set_title(f"Dark Room, {len(results['held_out_goals'])} held-out goals")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path

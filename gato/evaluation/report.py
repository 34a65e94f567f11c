"""Reports of evaluations: a text table, JSON, a Markdown table, a bar chart, episode videos."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gato.evaluation.video import write_episodes_video, write_video
from gato.files import atomic_write_json
from gato.tasks.scores import EVALUATION_SEED, SEED_SPAN

__all__ = [
    "control_markdown",
    "control_table",
    "plot_normalized_scores",
    "write_control_report",
    "write_episodes_video",
    "write_json",
    "write_video",
]


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _interval(block: dict[str, Any] | None, digits: int = 1, percent: bool = False) -> str:
    """ "[low, high]" of an interval block, "-" without one."""
    if not block:
        return "-"
    if percent:
        return f"[{_percent(block['low'])}, {_percent(block['high'])}]"
    return f"[{_number(block['low'], digits)}, {_number(block['high'], digits)}]"


def _rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in report["tasks"]:
        normalised = _percent(t["normalized_score"]) + ("*" if t.get("cut_at") else "")
        if t.get("normalized_interval"):
            normalised += " " + _interval(t["normalized_interval"], percent=True)
        rows.append(
            [
                t["task"],
                str(t["episodes"]),
                f"{_number(t['mean_return'])} +- {_number(t['std_return'])}",
                _interval(t.get("return_interval")),
                _number(t["random_score"]),
                _number(t["expert_score"]),
                normalised,
                _percent(t.get("specialist_score")),
                _percent(t.get("human_normalized_score")),
                _number(t["steps_per_second"], 0),
            ]
        )
    return rows


_HEADER = [
    "task",
    "episodes",
    "return (mean +- std)",
    "return 95% CI",
    "random",
    "expert",
    "normalised [95% CI]",
    "specialist",
    "human-norm.",
    "steps/s",
]


def _aggregate_lines(summary: dict[str, Any]) -> list[str]:
    """IQM, mean and median with their intervals, overall and per domain."""
    lines = []
    for key, scale in (("aggregates", "expert"), ("human_aggregates", "human")):
        block = summary.get(key)
        if not block or not block.get("all"):
            continue
        groups = [("all tasks", block["all"])] + list(block["by_domain"].items())
        if scale == "human":
            groups = groups[:1]
        for name, g in groups:
            stats = ", ".join(
                f"{stat} {_percent(g[stat]['value'])} {_interval(g[stat], percent=True)}"
                for stat in ("iqm", "mean", "median")
            )
            lines.append(
                f"{scale}-normalised, {name} ({len(g['tasks'])} tasks x {g['episodes']} "
                f"episodes): {stats}"
            )
    if lines:
        lines.append(
            "intervals: 95% stratified bootstrap over episodes within tasks "
            f"({summary['aggregates']['reps'] if summary.get('aggregates') else '-'} reps)"
        )
    return lines


def _protocol_lines(report: dict[str, Any]) -> list[str]:
    atari = report.get("config", {}).get("atari")
    return (
        [f"Atari protocol {report['config'].get('atari_protocol')}: {atari['description']}"]
        if (atari)
        else []
    )


def _summary_lines(report: dict[str, Any]) -> list[str]:
    s = report["summary"]
    lines = [
        f"tasks at or above 50% of expert: {s['above_50']} / {s['scored_tasks']}",
        f"tasks at or above 100% of expert: {s['above_100']} / {s['scored_tasks']}",
    ]
    if s["mean_normalized"] is not None:
        lines.append(
            f"mean normalised score: {_percent(s['mean_normalized'])} "
            f"(median {_percent(s['median_normalized'])})"
        )
    if s.get("cut_tasks"):
        lines.append(
            f"* {s['cut_tasks']} task(s) with episodes cut short (--max-steps): their normalised "
            "scores are not comparable to the expert and random scores"
        )
    unscored = s["tasks"] - s["scored_tasks"]
    if unscored:
        lines.append(f"{unscored} task(s) have no expert/random scores in the registry")
    return lines + _aggregate_lines(s) + _protocol_lines(report) + _seed_lines(report)


def _seed_lines(report: dict[str, Any]) -> list[str]:
    """Where the start states came from: each distinct seed range, and the prompts' seeds."""
    ranges: dict[str, list[str]] = {}
    for t in report["tasks"]:
        seeds = t.get("seeds") or []
        if not seeds:
            continue
        held_out = all(EVALUATION_SEED <= s < EVALUATION_SEED + SEED_SPAN for s in seeds)
        text = f"{min(seeds)}-{max(seeds)}" + ("" if held_out else " (not the held-out range)")
        prompt = t.get("prompt_seed")
        ranges.setdefault(text, []).append(t["task"] + ("" if prompt is None else f" {prompt}"))
    return [
        f"start-state seeds {text}; prompt episode seeds: {', '.join(tasks)}"
        for text, tasks in ranges.items()
    ]


def control_table(report: dict[str, Any]) -> str:
    """The control report as an aligned text table, followed by the summary counts."""
    rows = [_HEADER, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = []
    for k, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {t['task']}: {t['note']}" for t in report["tasks"] if t.get("note")]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join([*lines, "", *_summary_lines(report)])


def control_markdown(report: dict[str, Any]) -> str:
    """The control report as a Markdown table with the summary."""
    lines = [
        "| " + " | ".join(_HEADER) + " |",
        "| " + " | ".join("---" for _ in _HEADER) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report)]
    lines += ["", *[f"- {line}" for line in _summary_lines(report)]]
    notes = [f"- {t['task']}: {t['note']}" for t in report["tasks"] if t.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    if report.get("checkpoint"):
        lines = [f"Checkpoint: `{report['checkpoint']}`", "", *lines]
    return "\n".join(lines) + "\n"


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write a report as indented JSON (NaN and infinity become null)."""
    return atomic_write_json(path, _finite(report))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def plot_normalized_scores(report: dict[str, Any], path: str | Path) -> Path | None:
    """A horizontal bar chart of each task's expert-normalised score (PNG, Agg backend), with
    the 50% and 100% lines; None when no task has reference scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in report["tasks"] if t["normalized_score"] is not None]
    if not tasks:
        return None
    names = [t["task"] for t in tasks]
    scores = np.array([100 * t["normalized_score"] for t in tasks])
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(tasks) + 1.5))
    colors = ["tab:green" if s >= 100 else "tab:blue" if s >= 50 else "tab:gray" for s in scores]
    ax.barh(names, scores, color=colors)
    ax.axvline(50, color="tab:orange", linestyle="--", linewidth=1, label="50% of expert")
    ax.axvline(100, color="tab:red", linestyle="--", linewidth=1, label="expert")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("expert-normalised score (%)")
    s = report["summary"]
    ax.set_title(f"{s['above_50']}/{s['scored_tasks']} tasks at or above 50% of expert")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_control_report(report: dict[str, Any], path: str | Path) -> dict[str, Path | None]:
    """JSON at `path`, Markdown and the bar chart next to it (same stem, .md and .png), and the
    performance profile (`<stem>_profile.png`) when a task has normalised scores."""
    path = Path(path)
    out = {"json": write_json(report, path)}
    markdown = path.with_suffix(".md")
    markdown.write_text(control_markdown(report))
    out["markdown"] = markdown
    out["chart"] = plot_normalized_scores(report, path.with_suffix(".png"))
    out["profile"] = None
    scores = {
        t["task"]: t["normalized_scores"] for t in report["tasks"] if t.get("normalized_scores")
    }
    if scores:
        from gato.evaluation.aggregate import plot_performance_profile

        reps = report.get("config", {}).get("bootstrap_reps", 2000)
        profile = path.with_name(path.stem + "_profile.png")
        out["profile"] = plot_performance_profile(scores, profile, reps=reps)
    return out

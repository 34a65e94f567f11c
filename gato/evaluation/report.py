"""Reports of evaluations: a text table, JSON, a Markdown table, a bar chart, episode videos."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gato.files import atomic_write_json
from gato.tasks.scores import EVALUATION_SEED, SEED_SPAN

__all__ = [
    "control_markdown",
    "control_table",
    "plot_normalized_scores",
    "write_control_report",
    "write_json",
    "write_video",
]


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in report["tasks"]:
        rows.append(
            [
                t["task"],
                str(t["episodes"]),
                f"{_number(t['mean_return'])} +- {_number(t['std_return'])}",
                _number(t["random_score"]),
                _number(t["expert_score"]),
                _percent(t["normalized_score"]) + ("*" if t.get("cut_at") else ""),
                _number(t["steps_per_second"], 0),
            ]
        )
    return rows


_HEADER = ["task", "episodes", "return (mean +- std)", "random", "expert", "normalised", "steps/s"]


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
    return lines + _seed_lines(report)


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
    """JSON at `path`, Markdown and the bar chart next to it (same stem, .md and .png)."""
    path = Path(path)
    out = {"json": write_json(report, path)}
    markdown = path.with_suffix(".md")
    markdown.write_text(control_markdown(report))
    out["markdown"] = markdown
    out["chart"] = plot_normalized_scores(report, path.with_suffix(".png"))
    return out


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 20) -> Path:
    """Frames (H, W, 3) uint8 -> an animated GIF (Pillow; no video codec needed).

    Long episodes keep every k-th frame so that the file stays under ~600 frames."""
    from PIL import Image

    if not frames:
        raise ValueError("write_video: no frames")
    stride = max(1, math.ceil(len(frames) / 600))
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames[::stride]]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = max(20, int(1000 * stride / fps))
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=duration, loop=0, optimize=False
    )
    return path

"""Scores against training tokens: every kept checkpoint of a run, evaluated and plotted.

A run that misses a target should say how far it is and what budget would reach it. This scores
each checkpoint of a run folder (`checkpoints/step-N`, kept with `--keep_checkpoints`) on the
control tasks of its mixture and on the caption and VQA splits, and puts the scores beside the
number of training tokens seen (the real, unpadded tokens of `metrics.jsonl`). The plot
(`progress.png`) has one line per task: the slope between the last checkpoints is what an
estimate of the budget to a target rests on.

    python eval.py progress --run runs/gato --episodes 4 --caption-limit 100
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gato import checkpoints

__all__ = ["checkpoint_steps", "evaluate_progress", "plot_progress", "tokens_by_step"]


def checkpoint_steps(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, model folder) of every complete checkpoint of a run, oldest first."""
    root = Path(run_dir) / checkpoints.CHECKPOINTS
    if not root.is_dir():
        raise FileNotFoundError(f"{run_dir}: no checkpoints/ folder (is it a training run?)")
    found = [
        (step, path / "model")
        for step, path in checkpoints.checkpoint_steps(root, complete=True)
        if (path / "model").is_dir()
    ]
    if not found:
        raise FileNotFoundError(f"{run_dir}: no complete checkpoint under {root}")
    return sorted(found)


def tokens_by_step(run_dir: str | Path) -> dict[int, int]:
    """Cumulative real (unpadded) training tokens after each logged step, from metrics.jsonl.
    A resumed run logs some steps twice; the later line wins."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl")
    per_step: dict[int, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            per_step[int(record["step"])] = int(record["tokens"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: not a metrics line ({err})") from None
    total, cumulative = 0, {}
    for step in sorted(per_step):
        total += per_step[step]
        cumulative[step] = total
    return cumulative


def evaluate_progress(
    run_dir: str | Path,
    *,
    mixture: str | None = None,
    episodes: int = 4,
    max_steps: int | None = None,
    caption_limit: int = 100,
    splits: Sequence[str] = ("validation", "heldout"),
    steps: Sequence[int] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every checkpoint (or those at `steps`) of a run.

    Returns {"run", "mixture", "baselines": {"captions/split": the language baseline},
    "checkpoints": [{"step", "tokens", "control": {task: normalised score}, "intervals": {task:
    bootstrap interval of its normalised score over episodes}, "returns": {task: mean return},
    "aggregates": IQM/mean/median with CIs over tasks and per domain (`aggregate.aggregate`),
    "captions": {split: exact}, "vqa": {split: exact}, "bleu": {"captions/split": BLEU}}]}.
    """
    from gato.data.mixture import resolve_recipe
    from gato.evaluation.control import evaluate_control, mixture_control_specs
    from gato.evaluation.language import evaluate_captions
    from gato.evaluation.loading import load_model

    run_dir = Path(run_dir)
    found = checkpoint_steps(run_dir)
    if steps is not None:
        wanted = set(steps)
        missing = wanted - {s for s, _ in found}
        if missing:
            raise ValueError(f"{run_dir}: no checkpoint at steps {sorted(missing)}")
        found = [(s, p) for s, p in found if s in wanted]
    tokens = tokens_by_step(run_dir)
    if mixture is None:
        mixture = checkpoints.read_manifest(found[-1][1].parent)["config"]["mixture"]
    # Where the recipe points a source at its own dataset, score that one.
    recipe = resolve_recipe(mixture)
    sources = {entry.task: entry.path or entry.task for entry in recipe.recipe.sources}
    # A run of captions or text alone has no control task: its rows hold only those scores.
    control_tasks = mixture_control_specs(recipe)
    if not control_tasks and not {"captions", "vqa"} & set(sources):
        raise ValueError(
            f"{run_dir}: mixture {mixture!r} has no control task, captions or VQA to score"
        )
    rows: list[dict[str, Any]] = []
    baselines: dict[str, Any] = {}
    for step, folder in found:
        loaded = load_model(folder)[:2]
        control: dict[str, Any] = {"tasks": [], "summary": {}}
        if control_tasks:
            control = evaluate_control(
                folder, control_tasks, episodes=episodes, max_steps=max_steps, progress=progress
            )
        row: dict[str, Any] = {
            "step": step,
            "tokens": tokens.get(step),
            "control": {t["task"]: t["normalized_score"] for t in control["tasks"]},
            "intervals": {t["task"]: t.get("normalized_interval") for t in control["tasks"]},
            "returns": {t["task"]: t["mean_return"] for t in control["tasks"]},
            "aggregates": control["summary"].get("aggregates"),
            "bleu": {},
        }
        for source in ("captions", "vqa"):
            if source not in sources:
                continue
            row[source] = {}
            for split in splits:
                # The baseline needs no model: once per split, with the first checkpoint.
                scores = evaluate_captions(
                    loaded,
                    sources[source],
                    split,
                    caption_limit,
                    progress=progress,
                    examples=0,
                    baseline_limit=None if not rows else 0,
                )
                if not rows:
                    baselines[f"{source}/{split}"] = scores["baseline"]
                row[source][split] = scores["exact_match"]
                row["bleu"][f"{source}/{split}"] = scores["bleu"]
        rows.append(row)
    return {"run": str(run_dir), "mixture": mixture, "baselines": baselines, "checkpoints": rows}


def plot_progress(report: dict[str, Any], path: str | Path) -> Path:
    """Normalised control scores and caption/VQA exact match against training tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["checkpoints"]
    if not rows:
        raise ValueError("plot_progress: the report has no checkpoint")
    x = [(r["tokens"] or 0) / 1e6 for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for task in rows[-1]["control"]:
        y = [_nan(r["control"].get(task)) * 100 for r in rows]
        left.plot(x, y, marker="o", label=task)
    left.axhline(50, color="grey", linestyle="--", linewidth=1)
    left.set(xlabel="training tokens (M)", ylabel="% of expert", title="control")
    for source in ("captions", "vqa"):
        for split in rows[-1].get(source, {}):
            y = [_nan(r.get(source, {}).get(split)) * 100 for r in rows]
            right.plot(x, y, marker="o", label=f"{source} / {split}")
    right.axhline(90, color="grey", linestyle="--", linewidth=1)
    right.set(xlabel="training tokens (M)", ylabel="exact match (%)", title="captions and VQA")
    for ax in (left, right):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def progress_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one row per checkpoint."""
    rows = report["checkpoints"]
    tasks = list(rows[-1]["control"]) if rows else []
    language = [
        (source, split) for source in ("captions", "vqa") for split in rows[-1].get(source, {})
    ]
    head = ["step", "tokens (M)", *tasks, "IQM [95% CI]", *(f"{s} {p}" for s, p in language)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [str(r["step"]), f"{(r['tokens'] or 0) / 1e6:.1f}"]
        cells += [
            _with_interval(r["control"].get(t), (r.get("intervals") or {}).get(t)) for t in tasks
        ]
        whole = (r.get("aggregates") or {}).get("all")
        cells.append(_with_interval(whole["iqm"]["value"], whole["iqm"]) if whole else "-")
        cells += [_pct(r.get(s, {}).get(p)) for s, p in language]
        lines.append("| " + " | ".join(cells) + " |")
    baselines = [(k, b) for k, b in (report.get("baselines") or {}).items() if b]
    if baselines:
        lines.append("")
        lines += [
            f"- baseline {k} ({b['name']}): exact match {_pct(b['exact_match'])}, "
            f"BLEU {b['bleu']:.1f}"
            for k, b in baselines
        ]
    return "\n".join(lines) + "\n"


def _with_interval(value: float | None, interval: dict[str, Any] | None) -> str:
    if value is None or not interval:
        return _pct(value)
    return f"{_pct(value)} [{_pct(interval['low'])}, {_pct(interval['high'])}]"


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"

"""Evaluation reports as named scalars for a tracker (`gato.tracking`, `eval.py --report_to`).

One naming for every command, so that `eval.py control` on a checkpoint and `eval.py progress`
over its run draw on the same charts, and beside training's `train/...` curves:

    eval/<task>/normalized_score, eval/<task>/mean_return
    eval/aggregate/<all | domain>/<iqm | mean | median>[_low | _high]   (expert-normalised)
    eval/human_aggregate/all/<iqm | mean | median>[_low | _high]         (Atari, human-normalised)
    eval/<captions | vqa>/<split>/<exact_match | bleu>
    eval/tokens                                                          (progress only)

A score the report does not have (a task without an expert score) is left out rather than
logged as zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "caption_scalars",
    "checkpoint_step",
    "control_rows",
    "control_scalars",
    "progress_scalars",
]

_STATISTICS = ("iqm", "mean", "median")


def control_scalars(report: Mapping[str, Any]) -> dict[str, float]:
    """Per-task normalised score and mean return, and the aggregates with their intervals, of an
    `evaluate_control` report."""
    tasks = report["tasks"]
    summary = report.get("summary") or {}
    return _control(
        {t["task"]: t["normalized_score"] for t in tasks},
        {t["task"]: t["mean_return"] for t in tasks},
        summary.get("aggregates"),
        summary.get("human_aggregates"),
    )


def control_rows(report: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows): one row per task of an `evaluate_control` report, for a tracker's table."""
    columns = ["task", "episodes", "mean_return", "normalized_score", "low", "high"]
    rows = []
    for t in report["tasks"]:
        interval = t.get("normalized_interval") or {}
        rows.append(
            [
                t["task"],
                t["episodes"],
                t["mean_return"],
                t["normalized_score"],
                interval.get("low"),
                interval.get("high"),
            ]
        )
    return columns, rows


def caption_scalars(report: Mapping[str, Any]) -> dict[str, float]:
    """Exact match and BLEU of an `evaluate_captions` report, under the source's name (a dataset
    folder's last part)."""
    prefix = f"eval/{Path(str(report['source'])).name}/{report['split']}"
    return _finite(
        {f"{prefix}/exact_match": report["exact_match"], f"{prefix}/bleu": report["bleu"]}
    )


def progress_scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """One checkpoint's row of an `evaluate_progress` report: its control scores (as
    `control_scalars` names them), caption and VQA scores, and the training tokens seen."""
    out = _control(row["control"], row.get("returns") or {}, row.get("aggregates"), None)
    for source in ("captions", "vqa"):
        for split, exact in (row.get(source) or {}).items():
            out[f"eval/{source}/{split}/exact_match"] = exact
            bleu = (row.get("bleu") or {}).get(f"{source}/{split}")
            out[f"eval/{source}/{split}/bleu"] = bleu
    out["eval/tokens"] = row.get("tokens")
    return _finite(out)


def checkpoint_step(checkpoint: str | Path) -> int:
    """The training step a checkpoint was saved at (its manifest's `step`), so an evaluation logs
    at the step training logged; 0 for a bare model folder or one without a step."""
    from gato.checkpoints import has_manifest, read_manifest
    from gato.policy import CheckpointError, resolve_model_dir

    try:
        step_folder = resolve_model_dir(checkpoint).parent
        if not has_manifest(step_folder):
            return 0
        return int(read_manifest(step_folder).get("step") or 0)
    except (CheckpointError, OSError, ValueError, TypeError):
        return 0


def _control(
    scores: Mapping[str, float | None],
    returns: Mapping[str, float | None],
    aggregates: Mapping[str, Any] | None,
    human: Mapping[str, Any] | None,
) -> dict[str, float]:
    out: dict[str, float | None] = {}
    for task, score in scores.items():
        out[f"eval/{task}/normalized_score"] = score
    for task, mean_return in returns.items():
        out[f"eval/{task}/mean_return"] = mean_return
    for name, block in (("aggregate", aggregates), ("human_aggregate", human)):
        if not block or not block.get("all"):
            continue
        groups = {"all": block["all"], **(block.get("by_domain") or {})}
        for group, stats in groups.items():
            for stat in _STATISTICS:
                prefix = f"eval/{name}/{group}/{stat}"
                out[prefix] = stats[stat]["value"]
                out[f"{prefix}_low"] = stats[stat]["low"]
                out[f"{prefix}_high"] = stats[stat]["high"]
    return _finite(out)


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    """The values that are numbers, as floats: a missing score is not a zero on a chart."""
    out = {}
    for key, value in values.items():
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out

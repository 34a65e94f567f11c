"""The model card (README.md) of every saved model folder, and the task family a source is in.

The card is what the Hugging Face hub shows for a pushed checkpoint. Its YAML front matter holds
the hub's metadata: `library_name`, tags, licence, and, once the model has been evaluated, a
`model-index` of its results (built with `huggingface_hub.ModelCardData` / `EvalResult`, so the
hub's leaderboards and `huggingface_hub.ModelCard(text).data.eval_results` read them back):

- per control task: the expert-normalised score, the mean return (`mean_reward`);
- the control aggregates: mean and median normalised score, tasks at 50% of expert or more;
- captions and VQA on held-out scenes: exact match and BLEU.

The body says how the model was made (the command, the configuration), on what (the mixture
recipe and the tokens trained on) and how it does (a results table, links to replay videos).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gato.training.config import TrainConfig

__all__ = ["eval_results", "model_card", "task_family", "tokens_trained"]

CONTROL_TASK = ("reinforcement-learning", "Control")
CAPTION_TASK = ("image-to-text", "Image captioning")
VQA_TASK = ("visual-question-answering", "Visual question answering")


def task_family(source: str) -> str:
    """'atari-pong' -> 'atari', 'dmc-cartpole-swingup' -> 'dmc', 'captions' -> 'captions'."""
    return source.split("-", 1)[0]


def tokens_trained(run_dir: str | Path, step: int | None = None) -> int | None:
    """Tokens of the global batches up to `step` (all steps when None), from the run's
    `metrics.jsonl`; a resumed run's repeated steps count once. None without the file."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    per_step: dict[int, int] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            per_step[int(record["step"])] = int(record["tokens"])
    return sum(t for s, t in per_step.items() if step is None or s <= step)


def eval_results(report: Mapping[str, Any], source: str | None = None) -> list[Any]:
    """The hub's `EvalResult`s of an evaluation report.

    `report` is a run's `report.json` (keys `control`, `captions`, `vqa`, each optional) or a
    control report alone (`eval.py control --json`: `kind == "control"`). `source` names the
    report (a URL or file) in every result. Raises `ValueError` when it holds no result.
    """
    from huggingface_hub import EvalResult

    if not isinstance(report, Mapping):
        raise ValueError(f"an evaluation report is a JSON object, got {type(report).__name__}")
    control = report if report.get("kind") == "control" else report.get("control")
    out = []
    extra = {"source_name": source} if source else {}

    def add(task: tuple[str, str], dataset: str, split: str | None, metric: str, value, name):
        out.append(
            EvalResult(
                task_type=task[0],
                task_name=task[1],
                dataset_type=dataset,
                dataset_name=dataset,
                dataset_split=split,
                metric_type=metric,
                metric_value=round(float(value), 6),
                metric_name=name,
                **extra,
            )
        )

    if control:
        for task in control.get("tasks", []):
            if task.get("normalized_score") is not None:
                add(CONTROL_TASK, task["task"], None, "expert_normalized_score",
                    task["normalized_score"], "expert-normalised score")  # fmt: skip
            add(CONTROL_TASK, task["task"], None, "mean_reward", task["mean_return"], "mean return")
        summary = control.get("summary") or {}
        for key, name in (
            ("mean_normalized", "mean expert-normalised score"),
            ("median_normalized", "median expert-normalised score"),
            ("above_50", "tasks at or above 50% of expert"),
        ):
            if summary.get(key) is not None:
                add(CONTROL_TASK, "control-tasks", None, key, summary[key], name)
    for key, task in (("captions", CAPTION_TASK), ("vqa", VQA_TASK)):
        result = report.get(key)
        if result:
            split = result.get("split", "heldout")
            add(task, key, split, "exact_match", result["exact_match"], "exact match")
            add(task, key, split, "bleu", result["bleu"], "BLEU")
    if not out:
        raise ValueError("the evaluation report holds no control, caption or VQA result")
    return out


def _front_matter(config: TrainConfig, results: Sequence[Any]) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        library_name="gato",
        license="apache-2.0",
        tags=["gato", "generalist-agent", "multimodal", "reinforcement-learning"],
        model_name=f"gato-{config.preset}",
        eval_results=list(results) or None,
    )
    return f"---\n{data.to_yaml()}\n---"


def _results_table(results: Sequence[Any]) -> list[str]:
    lines = ["| task | dataset | metric | value |", "| --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r.task_name} | {r.dataset_name} | {r.metric_name} | {r.metric_value} |")
    return lines


def model_card(
    config: TrainConfig,
    command: str,
    step: int,
    scores: Mapping[str, Any] | None = None,
    *,
    tokens: int | None = None,
    videos: Mapping[str, str] | None = None,
) -> str:
    """The README.md written into every saved model folder.

    `scores`: the evaluation report (see `eval_results`), None before evaluation; `tokens`: the
    tokens trained on; `videos`: task -> link (relative to the card) of a replay video.
    """
    results = eval_results(scores) if scores else []
    lines = [
        _front_matter(config, results),
        f"# gato `{config.preset}` — step {step}",
        "",
        "A Gato-style generalist agent: one decoder-only transformer over text, image patches, "
        "discrete and continuous tokens, trained with this toolkit.",
        "",
        "```python",
        "from gato import GatoModel",
        "model = GatoModel.from_pretrained(REPO_ID_OR_FOLDER)   # or GatoPolicy.from_pretrained",
        "```",
        "",
        "## Run",
        "```",
        command,
        "```",
        "",
        "## Data mixture",
        f"`{config.mixture}`"
        + (f", {tokens:,d} tokens trained on ({step} steps)" if tokens is not None else ""),
        "",
    ]
    if config.init_from:
        lines += [f"Fine-tuned from `{config.init_from}`.", ""]
    mixture = Path(config.mixture)
    if mixture.exists():
        lines += ["```toml", mixture.read_text().strip(), "```", ""]
    lines += ["## Results", ""]
    if results:
        lines += _results_table(results)
    else:
        lines += ["Not evaluated yet (`python eval.py control --checkpoint <this folder> ...`)."]
    if videos:
        lines += ["", "## Replays", ""]
        lines += [f"- [{task}]({link})" for task, link in sorted(videos.items())]
    lines += [
        "",
        "## Configuration",
        "```json",
        json.dumps(config.to_dict(), indent=2),
        "```",
    ]
    return "\n".join(lines) + "\n"

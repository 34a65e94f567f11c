"""The model card (README.md) of every saved model folder, and the task family a source is in."""

from __future__ import annotations

import json
from pathlib import Path

from gato.training.config import TrainConfig

__all__ = ["model_card", "task_family"]


def task_family(source: str) -> str:
    """'atari-pong' -> 'atari', 'dmc-cartpole-swingup' -> 'dmc', 'captions' -> 'captions'."""
    return source.split("-", 1)[0]


def model_card(config: TrainConfig, command: str, step: int, scores: dict | None = None) -> str:
    """The README.md written into every saved model folder."""
    lines = [
        "---",
        "library_name: gato",
        "tags: [gato, generalist-agent, multimodal]",
        "---",
        f"# gato `{config.preset}` — step {step}",
        "",
        "A Gato-style generalist agent: one decoder-only transformer over text, image patches, "
        "discrete and continuous tokens, trained with this toolkit.",
        "",
        "## Run",
        "```",
        command,
        "```",
        "",
        "## Configuration",
        "```json",
        json.dumps(config.to_dict(), indent=2),
        "```",
        "",
        "## Data mixture",
        f"`{config.mixture}`",
        "",
    ]
    mixture = Path(config.mixture)
    if mixture.exists():
        lines += ["```toml", mixture.read_text().strip(), "```", ""]
    lines += ["## Scores", ""]
    if scores:
        lines += ["```json", json.dumps(scores, indent=2), "```"]
    else:
        lines += ["Not evaluated yet (`python eval.py control --checkpoint <this folder> ...`)."]
    return "\n".join(lines) + "\n"

"""Reference points that sit beside a score: the specialist, the human, and language baselines.

A normalised score needs something to be compared with beyond the registry's random and expert:

- **specialist**: `benchmarks/control_learning.py`'s `mlp` learner, a small network behaviour-
  cloned on the task's own data, scored closed loop on held-out start states. The benchmark
  writes its final expert-normalised score per task into a small JSON cache (`SPECIALIST_CACHE`,
  `--specialist-cache`); evaluation reads it and shows it next to the model's score.
- **human** (Atari): (return - random) / (human - random) with the registry's published human
  and random returns (`TaskSpec.reference`), beside the expert-normalised score.
- **VQA blind baseline**: the most common training answer for the question's type, no image.
- **caption nearest neighbour**: the caption of the training image nearest in pixels.

Text metrics are defined once here: exact match after trimming whitespace, and sacrebleu's
corpus BLEU.

The specialist cache (`SPECIALIST_CACHE_FORMAT` 1):

    {"format": 1,
     "tasks": {"gym-pendulum": {"normalized_score": 0.91, "learner": "mlp", "steps": 3000,
                                "episodes": 10, "seeds": 1, "written": "2026-12-04T10:00:00"}}}

`normalized_score` is the specialist's expert-normalised score at its last scored step, averaged
over the benchmark's seeds; the other fields say how it was measured.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gato.files import atomic_write_json, cache_dir

__all__ = [
    "SPECIALIST_CACHE",
    "SPECIALIST_CACHE_FORMAT",
    "bleu",
    "blind_vqa_answers",
    "exact_match",
    "human_normalized_score",
    "language_baseline",
    "nearest_captions",
    "question_type",
    "read_specialists",
    "specialist_cache",
    "specialist_score",
    "write_specialist",
]

SPECIALIST_CACHE = "specialists.json"
"""The cache's file name in `gato.files.cache_dir()` (under the home, like all generated data),
where `benchmarks/control_learning.py --specialist-cache` writes and evaluation reads."""


def specialist_cache() -> Path:
    """The default specialist cache: `<home>/data/cache/specialists.json`, read at each call."""
    return cache_dir() / SPECIALIST_CACHE


SPECIALIST_CACHE_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# Control references
# ---------------------------------------------------------------------------------------------


def human_normalized_score(mean_return: float, task: Any) -> float | None:
    """(return - random) / (human - random) with the task's published references; None when the
    registry has none (every non-Atari task)."""
    reference = getattr(task, "reference", None)
    if reference is None or reference.human == reference.random:
        return None
    return float((mean_return - reference.random) / (reference.human - reference.random))


def read_specialists(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Task id -> its cached specialist entry; {} when the cache does not exist.

    A file that is not a cache of this format is a `ValueError` naming it."""
    path = Path(path) if path is not None else specialist_cache()
    if not path.exists():
        return {}
    try:
        cache = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a specialist cache (invalid JSON: {err})") from None
    if not isinstance(cache, dict) or cache.get("format") != SPECIALIST_CACHE_FORMAT:
        raise ValueError(
            f"{path}: not a specialist cache of format {SPECIALIST_CACHE_FORMAT} "
            f"(got format {cache.get('format') if isinstance(cache, dict) else None!r})"
        )
    tasks = cache.get("tasks")
    if not isinstance(tasks, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("normalized_score"), int | float)
        for e in tasks.values()
    ):
        raise ValueError(f"{path}: `tasks` must map task ids to entries with a normalized_score")
    return tasks


def specialist_score(task_id: str, path: str | Path | None = None) -> float | None:
    """The cached specialist's expert-normalised score of a task, None when not cached."""
    entry = read_specialists(path).get(task_id)
    return None if entry is None else float(entry["normalized_score"])


def write_specialist(
    task_id: str,
    normalized_score: float,
    path: str | Path | None = None,
    **details: Any,
) -> Path:
    """Record (or replace) one task's specialist score in the cache, atomically; `details`
    (learner, steps, episodes, seeds, ...) are stored beside it."""
    if not isinstance(task_id, str) or not task_id:
        raise ValueError(f"write_specialist: task id must be a non-empty string, got {task_id!r}")
    if not np.isfinite(normalized_score):
        raise ValueError(f"write_specialist: score must be finite, got {normalized_score}")
    path = Path(path) if path is not None else specialist_cache()
    tasks = read_specialists(path)
    tasks[task_id] = {
        "normalized_score": float(normalized_score),
        **details,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return atomic_write_json(path, {"format": SPECIALIST_CACHE_FORMAT, "tasks": tasks})


# ---------------------------------------------------------------------------------------------
# Text metrics and language baselines
# ---------------------------------------------------------------------------------------------


def exact_match(outputs: Sequence[str], targets: Sequence[str]) -> float:
    """Fraction of outputs equal to their target after trimming whitespace."""
    if len(outputs) != len(targets):
        raise ValueError(f"exact_match: {len(outputs)} outputs for {len(targets)} targets")
    if not targets:
        raise ValueError("exact_match: no examples")
    return float(np.mean([o.strip() == t.strip() for o, t in zip(outputs, targets, strict=True)]))


def bleu(outputs: Sequence[str], targets: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu's defaults: 13a tokenisation, exponential smoothing), 0-100."""
    import sacrebleu

    if len(outputs) != len(targets):
        raise ValueError(f"bleu: {len(outputs)} outputs for {len(targets)} targets")
    if not targets:
        raise ValueError("bleu: no examples")
    return float(sacrebleu.corpus_bleu(list(outputs), [list(targets)]).score)


def question_type(question: str, words: int = 3) -> str:
    """A question's type: its first `words` words, lower-cased (VQA v2 types are such prefixes:
    "what colour is", "how many objects", "is there a")."""
    if not isinstance(question, str):
        raise ValueError(f"question_type: question must be a string, got {type(question).__name__}")
    return " ".join(question.lower().replace("?", " ").split()[:words])


def blind_vqa_answers(
    train: Iterable[tuple[str, str]], questions: Sequence[str], words: int = 3
) -> list[str]:
    """The blind baseline: each question answered with the most common training answer of its
    type (ties: the answer seen first); a type never seen in training gets the most common
    answer overall.

    Args:
        train: (question, answer) pairs of the training split.
        questions: the questions to answer.
    """
    by_type: dict[str, Counter] = {}
    overall: Counter = Counter()
    for question, answer in train:
        answer = answer.strip()
        by_type.setdefault(question_type(question, words), Counter())[answer] += 1
        overall[answer] += 1
    if not overall:
        raise ValueError("blind_vqa_answers: the training split has no (question, answer) pair")
    fallback = overall.most_common(1)[0][0]
    answers = []
    for question in questions:
        counts = by_type.get(question_type(question, words))
        answers.append(fallback if counts is None else counts.most_common(1)[0][0])
    return answers


def _thumbnail(image: np.ndarray, side: int) -> np.ndarray:
    """(H, W, C) uint8 -> (side * side * 3,) float32 by block averaging (nearest resize first
    when H or W is not a multiple of `side`)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[..., :3].astype(np.float32)
    h, w = image.shape[:2]
    rows = (np.arange(side * 4) * h) // (side * 4)
    cols = (np.arange(side * 4) * w) // (side * 4)
    image = image[rows][:, cols]  # (4 side, 4 side, 3)
    return image.reshape(side, 4, side, 4, 3).mean(axis=(1, 3)).ravel()


def nearest_captions(
    train_images: Sequence[np.ndarray],
    train_texts: Sequence[str],
    images: Sequence[np.ndarray],
    side: int = 16,
) -> list[str]:
    """The nearest-neighbour baseline: each image captioned with the text of the training image
    nearest in pixels (L2 between `side` x `side` block-averaged thumbnails)."""
    if len(train_images) != len(train_texts):
        raise ValueError(
            f"nearest_captions: {len(train_images)} training images for {len(train_texts)} texts"
        )
    if not train_images:
        raise ValueError("nearest_captions: no training image")
    bank = np.stack([_thumbnail(i, side) for i in train_images])  # (T, D)
    out = []
    for image in images:
        distances = ((bank - _thumbnail(image, side)) ** 2).sum(axis=1)
        out.append(train_texts[int(np.argmin(distances))].strip())
    return out


def by_question_type(
    questions: Sequence[str],
    outputs: Sequence[str],
    targets: Sequence[str],
    baseline: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Exact match per question type (`question_type`), beside the baseline's on the same
    questions: {type: {"count", "exact_match", "baseline_exact_match" (None without one)}},
    types in order of first appearance. Says which kinds of question a model answers from the
    image and which it answers as the blind baseline does."""
    sizes = {len(questions), len(outputs), len(targets)}
    if baseline is not None:
        sizes.add(len(baseline))
    if len(sizes) != 1:
        raise ValueError(
            f"by_question_type: {len(questions)} questions, {len(outputs)} outputs, "
            f"{len(targets)} targets" + ("" if baseline is None else f", {len(baseline)} baseline")
        )
    rows: dict[str, list[int]] = {}
    for i, question in enumerate(questions):
        rows.setdefault(question_type(question), []).append(i)
    out = {}
    for kind, index in rows.items():
        pick = [targets[i] for i in index]
        out[kind] = {
            "count": len(index),
            "exact_match": exact_match([outputs[i] for i in index], pick),
            "baseline_exact_match": None
            if baseline is None
            else exact_match([baseline[i] for i in index], pick),
        }
    return out


def language_baseline(
    train: Sequence[Any], examples: Sequence[Any], targets: Sequence[str]
) -> dict[str, Any]:
    """The baseline of a split: blind answers when the examples carry questions (VQA), else
    nearest training captions; scored like the model. `train`, `examples`: `CaptionExample`s.
    "outputs" holds the baseline's text for each example."""
    if not train:
        raise ValueError("language_baseline: no training example")
    if all(e.question is not None for e in examples):
        outputs = blind_vqa_answers(
            [(e.question, e.text) for e in train if e.question], [e.question for e in examples]
        )
        name = "blind: most common training answer of the question's type"
    else:
        outputs = nearest_captions(
            [e.image for e in train], [e.text for e in train], [e.image for e in examples]
        )
        name = "nearest training caption (pixel L2)"
    return {
        "name": name,
        "train_examples": len(train),
        "exact_match": exact_match(outputs, targets),
        "bleu": bleu(outputs, targets),
        "outputs": outputs,
    }

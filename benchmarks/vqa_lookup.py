"""Does a VQA model look up the object a question names? Exact match per question type beside
two references that need no model.

    python benchmarks/vqa_lookup.py [RUN_OR_CHECKPOINT ...] [--split heldout validation]
        [--limit 400]

"What colour is the circle?" is answered right by reading the circle's colour, but also, often,
by reading the colour of any object in the scene: most scenes hold one or two objects. For the
attribute questions (colour, shape, size, where) this prints, beside the blind baseline (the most
common training answer of the question's type, `eval.py caption`'s), what an answerer scores
that reads the asked attribute off an object of the scene drawn at random, never looking the
named one up (`any object`: the mean over the scene's objects of whether that object's attribute
is the answer). A model at or below `any object` reads the image but not the object the question
names; one at the blind baseline does not read that attribute from the image at all.

The scenes are regenerated from the procedural generator (`generate_scenes`), so the dataset
must be the one `python -m gato.data.corpora.vision_language` builds (seed 0); a dataset whose
questions differ from the regenerated ones is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ATTRIBUTES = {
    "what colour is": "colour",
    "what shape is": "shape",
    "what size is": "size",
    "where is the": "position",
}
"""Question types (`question_type`) whose answer is one attribute of the named object."""


def any_object_scores(split: str, limit: int, questions: list[str]) -> dict[str, float]:
    """{question type: exact match (%) of answering with a random object's attribute} over the
    first `limit` VQA rows of `split`; `questions` are the dataset's own, checked against the
    regenerated ones."""
    from gato.data.corpora.vision_language import generate_scenes
    from gato.evaluation.baselines import question_type

    right: dict[str, list[float]] = {}
    rows = generate_scenes("vqa", split, limit)
    for index, (scene, _, question, answer) in enumerate(rows):
        if question != questions[index]:
            raise ValueError(
                f"vqa/{split} row {index}: the dataset asks {questions[index]!r}, the generator "
                f"{question!r}: not the procedural dataset of seed 0 (rebuild it with "
                "`python -m gato.data.corpora.vision_language`)"
            )
        kind = question_type(question)
        if kind in ATTRIBUTES:
            values = [getattr(o, ATTRIBUTES[kind]) for o in scene.objects]
            right.setdefault(kind, []).append(float(np.mean([v == answer for v in values])))
    return {kind: 100.0 * float(np.mean(scores)) for kind, scores in right.items()}


def dataset_questions(split: str, limit: int) -> list[str]:
    from gato.data.corpora.vision_language import VQA_PATH, load_captions

    dataset = load_captions(VQA_PATH, split)
    return list(dataset.select(range(min(limit, len(dataset))))["question"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", help="runs or checkpoints to score")
    parser.add_argument("--split", nargs="+", default=["heldout", "validation"])
    parser.add_argument("--limit", type=int, default=400, help="questions scored per split")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    from gato.evaluation import evaluate_captions
    from gato.evaluation.baselines import question_type

    header = ["split", "question type", "count", "blind", "any object"]
    header += [Path(c).name for c in args.checkpoints]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for split in args.split:
        questions = dataset_questions(split, args.limit)
        reference = any_object_scores(split, len(questions), questions)
        reports: list[dict[str, Any]] = [
            evaluate_captions(c, source="vqa", split=split, limit=args.limit, progress=False)
            for c in args.checkpoints
        ]
        counts = {q: sum(1 for x in questions if question_type(x) == q) for q in reference}
        blind: dict[str, Any] = {}
        if reports:
            blind = {k: v["baseline_exact_match"] for k, v in reports[0]["by_type"].items()}
        for kind in ATTRIBUTES:
            if kind not in reference:
                continue
            cells = [split, kind, str(counts[kind])]
            cells.append(f"{100 * blind[kind]:.1f}%" if blind.get(kind) is not None else "")
            cells.append(f"{reference[kind]:.1f}%")
            cells += [f"{100 * r['by_type'][kind]['exact_match']:.1f}%" for r in reports]
            lines.append("| " + " | ".join(cells) + " |")
        cells = [split, "all", str(len(questions)), "", ""]
        lines.append(
            "| " + " | ".join(cells + [f"{100 * r['exact_match']:.1f}%" for r in reports]) + " |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()

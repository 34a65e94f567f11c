"""Where captions of unseen colour-shape pairs go wrong: each attribute word, teacher-forced.

    python benchmarks/captions_composition.py RUN_OR_CHECKPOINT [...] [--limit 300]

Exact match of a whole caption says little about composition: one wrong word anywhere fails it.
This scores the words themselves. Every caption of the procedural scenes names each object as
"<size> <colour> <shape> at the <cell>"; given the image and the true caption up to a word (teacher
forcing), is the model's most likely next text token that word's first token? Objects are counted
apart by whether their colour-shape pair occurs in training (`seen`) or is one of the held-out
pairs (`unseen`, only in the `heldout` split). A model that composes names an unseen pair's shape
as well as a seen one's; a model that leans on the colour word before it ("no triangle after
red") names it worse. Prints one row per (checkpoint, split, pair kind): the size, colour, shape
and position words' accuracy, with the object counts. `--source` scores another captions dataset
in the same grammar (the one-object scenes, `captions-single`).

A caption then relates each object to the next ("the circle is above and left of the square"): a
relation is a function of the two cells the caption has just named. A second table scores each
relation phrase whole, teacher-forced: every token of the phrase and the token after it (the one
that ends it: "above" alone against "above and ...") must be the most likely. One column per
phrase; a model that reads only the first object's cell names "above" for no pair in one column.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OBJECT = re.compile(
    r"\b(small|large) (\w+) (\w+) at the (top left|top right|bottom left|bottom right|top|bottom"
    r"|left|right|centre)\b"
)
ATTRIBUTES = (("size", 1), ("colour", 2), ("shape", 3), ("position", 4))
RELATION = re.compile(
    r"\bthe \w+ is ((?:above|below)(?: and (?:left|right) of)?|left of|right of) the \w+"
)
RELATIONS = (
    "left of",
    "right of",
    "above",
    "below",
    "above and left of",
    "above and right of",
    "below and left of",
    "below and right of",
)


def word_positions(tokenizer: Any, text: str, start: int) -> int | None:
    """Index (among the text's tokens) of the first token of the word at character `start`, or
    None when the prefix does not tokenize as the start of the whole text."""
    whole = tokenizer.encode_text(text).tolist()
    prefix = tokenizer.encode_text(text[:start].rstrip()).tolist()
    if whole[: len(prefix)] != prefix or len(prefix) >= len(whole):
        return None
    return len(prefix)


def phrase_span(tokenizer: Any, text: str, start: int, end: int) -> tuple[int, int] | None:
    """[first, last) token indices (among the text's tokens) of the words in text[start:end], or
    None when a prefix does not tokenize as the start of the whole text."""
    first = word_positions(tokenizer, text, start)
    whole = tokenizer.encode_text(text).tolist()
    through = tokenizer.encode_text(text[:end]).tolist()
    if first is None or whole[: len(through)] != through or len(through) >= len(whole):
        return None
    return first, len(through)


@torch.no_grad()
def attribute_accuracy(
    model: Any, tokenizer: Any, split: str, limit: int, source: str | Path | None = None
) -> dict[str, Any]:
    """{"counts": {kind: {"colour": [right, total], "shape": [right, total]}} for kind in seen,
    unseen; "relations": {phrase: [right, total]} for each relation phrase that occurs;
    "skipped": words whose prefix tokenizes otherwise}. `source`: a captions dataset folder
    (None: the procedural one)."""
    from gato.data.corpora.vision_language import (
        CAPTIONS_PATH,
        HELD_OUT_PAIRS,
        iter_captions,
        load_captions,
    )
    from gato.tokens.batch import collate
    from gato.vocab import BOS_ID, TEXT_VOCAB_SIZE

    held_out = set(HELD_OUT_PAIRS)
    dataset = load_captions(CAPTIONS_PATH if source is None else source, split)
    dataset = dataset.select(range(min(limit, len(dataset))))
    counts = {k: {name: [0, 0] for name, _ in ATTRIBUTES} for k in ("seen", "unseen")}
    relations: dict[str, list[int]] = {}
    skipped = 0
    for example in iter_captions(dataset, "captions"):
        sequence = tokenizer.encode_caption(example.image, example.text)
        batch = collate([sequence])
        logits = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            local_positions=batch.local_positions,
            patches=batch.patches,
            patch_positions=batch.patch_positions,
            return_logits=True,
        ).logits[0, :, :TEXT_VOCAB_SIZE]  # (L, text ids)
        # The caption's text tokens follow the patches and BOS.
        text_start = int(np.flatnonzero(sequence.ids == BOS_ID)[0]) + 1
        ids = sequence.ids
        for match in OBJECT.finditer(example.text):
            colour, shape = match.group(2), match.group(3)
            kind = "unseen" if (colour, shape) in held_out else "seen"
            for attribute, group in ATTRIBUTES:
                index = word_positions(tokenizer, example.text, match.start(group))
                if index is None:
                    skipped += 1
                    continue
                position = text_start + index
                right = int(logits[position - 1].argmax()) == int(ids[position])
                counts[kind][attribute][0] += right
                counts[kind][attribute][1] += 1
        predicted = logits.argmax(-1).numpy()
        for match in RELATION.finditer(example.text):
            span = phrase_span(tokenizer, example.text, match.start(1), match.end(1))
            if span is None:
                skipped += 1
                continue
            # The phrase's tokens and the one after it, each predicted from the one before.
            targets = range(text_start + span[0], text_start + span[1] + 1)
            right = all(int(predicted[t - 1]) == int(ids[t]) for t in targets)
            cell = relations.setdefault(match.group(1), [0, 0])
            cell[0] += right
            cell[1] += 1
    return {"counts": counts, "relations": relations, "skipped": skipped}


def share(cell: list[int]) -> str:
    """'right/total' as a percentage with the total: '87.5% (8)'."""
    return f"{100 * cell[0] / max(cell[1], 1):.1f}% ({cell[1]})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="run, checkpoint or model folders")
    parser.add_argument("--limit", type=int, default=300, help="captions scored per split")
    parser.add_argument("--splits", nargs="+", default=["validation", "heldout"])
    parser.add_argument(
        "--source", default=None, help="a captions dataset folder (default: the procedural one)"
    )
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    from gato.evaluation.loading import load_model

    names = [name for name, _ in ATTRIBUTES]
    print("| checkpoint | split | objects | " + " | ".join(f"{n} word" for n in names) + " |")
    print("| --- | --- | --- |" + " --- |" * len(names))
    relation_rows = []
    for checkpoint in args.checkpoints:
        model, tokenizer, _ = load_model(checkpoint)
        for split in args.splits:
            result = attribute_accuracy(model, tokenizer, split, args.limit, args.source)
            for kind, cells in result["counts"].items():
                if cells["shape"][1] == 0:
                    continue

                words = " | ".join(share(cells[n]) for n in names)
                print(f"| {checkpoint} | {split} | {kind} | {words} |", flush=True)
            if result["skipped"]:
                print(f"  ({result['skipped']} words skipped: their prefix tokenizes otherwise)")
            relation_rows.append((checkpoint, split, result["relations"]))
    kinds = [k for k in RELATIONS if any(k in row[2] for row in relation_rows)]
    if kinds:
        print("\nRelation phrases, whole (teacher-forced):\n")
        print("| checkpoint | split | all | " + " | ".join(kinds) + " |")
        print("| --- | --- | --- |" + " --- |" * len(kinds))
        for checkpoint, split, cells in relation_rows:
            total = [sum(c[0] for c in cells.values()), sum(c[1] for c in cells.values())]
            row = " | ".join(share(cells.get(k, [0, 0])) for k in kinds)
            print(f"| {checkpoint} | {split} | {share(total)} | {row} |")


if __name__ == "__main__":
    main()

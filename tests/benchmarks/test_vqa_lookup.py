"""benchmarks/vqa_lookup.py: the any-object reference against its closed form, and the check that
the dataset is the generator's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gato.data.corpora.vision_language import generate_rows, generate_scenes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import vqa_lookup  # noqa: E402


def test_any_object_is_one_over_the_objects_for_unique_attributes():
    """Within a scene colours, shapes and cells are distinct, so exactly one object has the
    answer's colour, shape or position: reading a random one is right 1 / n of the time. Sizes
    repeat, so that type scores at least as much."""
    limit = 120
    rows = list(generate_scenes("vqa", "heldout", limit))
    questions = [q for _, _, q, _ in rows]
    got = vqa_lookup.any_object_scores("heldout", limit, questions)
    expected: dict[str, list[float]] = {}
    for scene, _, question, _ in rows:
        kind = " ".join(question.split()[:3])
        expected.setdefault(kind, []).append(1.0 / len(scene.objects))
    for kind in ("what colour is", "what shape is", "where is the"):
        assert got[kind] == pytest.approx(100.0 * np.mean(expected[kind]))
    assert got["what size is"] >= 100.0 * np.mean(expected["what size is"])
    assert set(got) == set(vqa_lookup.ATTRIBUTES)


def test_generate_rows_are_generate_scenes_rows():
    for (_, image, question, text), row in zip(
        generate_scenes("vqa", "validation", 5), generate_rows("vqa", "validation", 5), strict=True
    ):
        assert np.array_equal(image, row["images"])
        assert (question, text) == (row["question"], row["text"])


def test_a_dataset_of_other_questions_is_refused():
    questions = [q for _, _, q, _ in generate_scenes("vqa", "heldout", 3)]
    questions[2] = "what colour is the moon?"
    with pytest.raises(ValueError, match="row 2: the dataset asks 'what colour is the moon"):
        vqa_lookup.any_object_scores("heldout", 3, questions)

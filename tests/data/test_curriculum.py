"""Curricula: sources drawn at some steps only (`from_step`, `until_step`), and the one-object
captions that are a curriculum's first lesson."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gato.data.corpora import vision_language as vl
from gato.data.mixture import Mixture, MixtureConfig, Recipe, SourceEntry, parse_recipe
from gato.data.mixture.recipe import resolve_entry
from gato.data.sources import PairsSource

OBJECT = re.compile(r"\ba (small|large) (\w+) (\w+) at the ")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("curriculum")
    sizes = vl.BuildSizes(train=30, validation=5, heldout=5)
    vl.build_dataset("captions-single", root / "single", sizes)
    vl.build_dataset("captions", root / "captions", sizes)
    return root


def staged(pairs, until: int = 3) -> Recipe:
    return Recipe(
        "staged",
        (
            SourceEntry("captions-single", 2.0, path=str(pairs / "single"), until_step=until),
            SourceEntry("captions", 1.0, path=str(pairs / "captions"), from_step=until),
            SourceEntry("vqa-like", 1.0, path=str(pairs / "captions"), kind="captions"),
        ),
    )


def test_probabilities_follow_the_steps(pairs):
    recipe = staged(pairs, until=3)
    assert recipe.scheduled
    for step in (0, 2):
        np.testing.assert_allclose(recipe.probabilities_at(step), [2 / 3, 0, 1 / 3])
    for step in (3, 10_000):
        np.testing.assert_allclose(recipe.probabilities_at(step), [0, 1 / 2, 1 / 2])
    # The weights as written are still what `probabilities` reports.
    np.testing.assert_allclose(recipe.probabilities, [0.5, 0.25, 0.25])
    assert recipe.settled_step == 3
    plain = Recipe("plain", (SourceEntry("captions", 1.0, path=str(pairs / "captions")),))
    assert not plain.scheduled and plain.settled_step == 0


def test_the_mixture_draws_each_source_only_in_its_steps(pairs, tmp_path):
    config = MixtureConfig(
        context_length=128, batch_size=16, cache_root=str(tmp_path / "tokens"), seed=1
    )
    mixture = Mixture(staged(pairs, until=3), config, progress=False)
    early = {s.source for step in range(3) for s in mixture.samples(step)}
    late = {s.source for step in range(3, 9) for s in mixture.samples(step)}
    assert early == {0, 2} and late == {1, 2}
    # A batch is still a pure function of (seed, step), and the schedule is in the fingerprint.
    again = Mixture(staged(pairs, until=3), config, progress=False)
    for step in (0, 5):
        a, b = mixture.batch(step).batch, again.batch(step).batch
        assert np.array_equal(a.input_ids.numpy(), b.input_ids.numpy())
    lines = mixture.describe().splitlines()
    assert "p=0.667 steps [0, 3)" in lines[0] and "p=0.500 steps [3, )" in lines[1]
    assert "p=0.333 steps [0, )" in lines[2]  # its share at its first step
    moved = Mixture(staged(pairs, until=4), config, progress=False)
    assert moved.fingerprint() != mixture.fingerprint()
    plain = Recipe(
        "staged",
        tuple(
            SourceEntry(e.task, e.weight, path=e.path, kind=e.kind) for e in staged(pairs).sources
        ),
    )
    assert Mixture(plain, config, progress=False).fingerprint() != mixture.fingerprint()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (dict(from_step=-1), "from_step must be an integer >= 0, got -1"),
        (dict(until_step=2.5), "until_step must be an integer >= 0, got 2.5"),
        (dict(from_step=True), "from_step must be an integer >= 0, got True"),
        (dict(from_step=5, until_step=5), "until_step=5 must be after from_step=5"),
    ],
)
def test_bad_steps_are_named(entry, message):
    with pytest.raises(ValueError, match=re.escape(f"source 'captions': {message}")):
        SourceEntry("captions", 1.0, **entry)


def test_a_step_without_a_source_is_an_error():
    with pytest.raises(ValueError, match="no source is drawn at step 0"):
        Recipe("late", (SourceEntry("captions", 1.0, from_step=10),))
    with pytest.raises(ValueError, match="no source is drawn at step 100"):
        Recipe(
            "gap",
            (
                SourceEntry("captions-single", 1.0, until_step=100),
                SourceEntry("captions", 1.0, from_step=200),
            ),
        )
    # Back to back is no gap.
    Recipe(
        "ok",
        (
            SourceEntry("captions-single", 1.0, until_step=100),
            SourceEntry("captions", 1.0, from_step=100),
        ),
    )


def test_a_toml_recipe_takes_the_steps():
    recipe = parse_recipe(
        {
            "name": "r",
            "sources": [
                {"task": "captions-single", "weight": 4.0, "until_step": 600},
                {"task": "captions", "weight": 2.0, "from_step": 600},
            ],
        }
    )
    assert [(e.from_step, e.until_step) for e in recipe.sources] == [(0, 600), (600, None)]
    with pytest.raises(ValueError, match=r"unknown keys \['until'\]"):
        parse_recipe({"sources": [{"task": "captions", "weight": 1.0, "until": 3}]})


def test_streaming_refuses_a_schedule(pairs):
    from gato.data.mixture.streaming import StreamingMixture

    with pytest.raises(ValueError, match="from_step / until_step need the token-cache mixture"):
        StreamingMixture.from_recipe(staged(pairs), MixtureConfig(context_length=64))


def test_single_object_captions(pairs):
    rows = list(vl.generate_rows("captions-single", "train", 200))
    pairs_seen = set()
    for row in rows:
        objects = OBJECT.findall(row["text"])
        assert len(objects) == 1, row["text"]
        assert row["text"].endswith(".") and ";" not in row["text"]
        pairs_seen.add(objects[0][1:])
        assert objects[0][1:] not in set(vl.HELD_OUT_PAIRS)
    assert len(pairs_seen) == len(vl.COLOURS) * len(vl.SHAPES) - len(vl.HELD_OUT_PAIRS)
    # Each held-out scene is one held-out object.
    for row in vl.generate_rows("captions-single", "heldout", 20):
        assert tuple(OBJECT.findall(row["text"])[0][1:]) in set(vl.HELD_OUT_PAIRS)
    # Its own stream of scenes: not the images of the captions or VQA datasets; and the older
    # datasets' scenes did not move when it was added.
    single = next(vl.generate_rows("captions-single", "train", 1))["images"]
    for task in ("captions", "vqa"):
        other = next(vl.generate_rows(task, "train", 1))["images"]
        assert not np.array_equal(single, other)
    scene, *_ = next(vl.generate_scenes("captions", "train", 1))
    assert len(scene.objects) == 3 and scene.objects[0].name == "yellow cross"


def test_single_object_captions_are_a_built_in_source(pairs):
    source = resolve_entry(SourceEntry("captions-single", 1.0))
    assert isinstance(source, PairsSource)
    assert source.path == str(vl.CAPTIONS_SINGLE_PATH) and source.buildable
    dataset = PairsSource("captions-single", str(pairs / "single")).load()
    assert len(dataset) == 30 and set(dataset.column_names) == {"images", "text"}
    with pytest.raises(ValueError, match="task must be one of"):
        next(vl.generate_rows("captions-double", "train", 1))


def test_control_from_step_is_where_the_first_control_source_starts(pairs):
    from gato.data.mixture import resolve_recipe

    control = dict(path=str(pairs / "captions"), kind="control")
    lesson = SourceEntry("captions-single", 1.0, path=str(pairs / "single"), until_step=5)
    late = Recipe(
        "late",
        (
            lesson,
            SourceEntry("toy-a", 1.0, from_step=9, **control),
            SourceEntry("toy-b", 1.0, from_step=5, **control),
        ),
    )
    assert resolve_recipe(late).control_from_step == 5
    assert resolve_recipe(staged(pairs)).control_from_step is None  # captions alone
    plain = Recipe("plain", (SourceEntry("toy", 1.0, **control),))
    assert resolve_recipe(plain).control_from_step == 0

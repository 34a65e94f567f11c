"""Procedural scenes, the caption grammar, the held-out split, VQA, and caption loading."""

from __future__ import annotations

import re
import time

import datasets
import numpy as np
import pytest

from gato.data.corpora import vision_language as vl
from gato.data.corpora.vision_language import (
    COLOURS,
    HELD_OUT_PAIRS,
    SHAPES,
    BuildSizes,
    Scene,
    SceneConfig,
    SceneObject,
)

HELD_OUT_PHRASES = [f"{c} {s}" for c, s in HELD_OUT_PAIRS]
OBJECT = re.compile(
    r"a (small|large) (\w+) (\w+) at the (top left|top right|bottom left|bottom right|top|bottom"
    r"|left|right|centre)"
)


def mentions_held_out(text: str) -> bool:
    return any(re.search(rf"\b{p}\b", text) for p in HELD_OUT_PHRASES)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("vl")
    sizes = BuildSizes(train=60, validation=20, heldout=20)
    vl.build_dataset("captions", root / "captions", sizes)
    vl.build_dataset("vqa", root / "vqa", sizes)
    return root


def test_rows_are_deterministic_and_extend():
    a = list(vl.generate_rows("captions", "train", 20, seed=3))
    b = list(vl.generate_rows("captions", "train", 30, seed=3))[:20]
    for x, y in zip(a, b, strict=True):
        assert x["text"] == y["text"]
        np.testing.assert_array_equal(x["images"], y["images"])
    c = list(vl.generate_rows("captions", "train", 20, seed=4))
    assert [r["text"] for r in a] != [r["text"] for r in c]


def test_image_format():
    row = next(vl.generate_rows("captions", "validation", 1))
    assert row["images"].shape == (48, 48, 3) and row["images"].dtype == np.uint8


def test_caption_grammar_is_canonical():
    scene = Scene(
        (
            SceneObject("square", "blue", "small", 2, 2),
            SceneObject("circle", "red", "large", 0, 0),
            SceneObject("cross", "white", "small", 0, 2),
        )
    )
    # Objects listed in raster order whatever order they were given in.
    assert vl.caption(scene) == (
        "a large red circle at the top left, a small white cross at the top right and a small "
        "blue square at the bottom right; the circle is left of the cross and the cross is above "
        "the square."
    )
    single = Scene((SceneObject("diamond", "green", "large", 1, 1),))
    assert vl.caption(single) == "a large green diamond at the centre."
    assert vl.relation(SceneObject("circle", "red", "large", 0, 2), scene.objects[2]) == "above"
    assert vl.relation(scene.objects[0], scene.objects[2]) == "above and left of"


def test_captions_describe_their_scenes():
    config = SceneConfig()
    for index in range(200):
        rng = vl.scene_rng(0, "train", index)
        scene = vl.sample_scene(rng, "train", config)
        text = vl.caption(scene)
        found = OBJECT.findall(text)
        assert len(found) == len(scene.objects)
        for (size, colour, shape, where), obj in zip(found, scene.objects, strict=True):
            assert (size, colour, shape, where) == (obj.size, obj.colour, obj.shape, obj.position)
        cells = [(o.row, o.col) for o in scene.objects]
        assert cells == sorted(cells) and len(set(cells)) == len(cells)
        assert len({o.shape for o in scene.objects}) == len(scene.objects)
        assert len({o.colour for o in scene.objects}) == len(scene.objects)


def test_held_out_split_only_holds_unseen_combinations():
    held = set(HELD_OUT_PAIRS)
    for split in ("train", "validation"):
        for task in ("captions", "vqa"):
            for row in vl.generate_rows(task, split, 300):
                text = row["text"] + " " + row.get("question", "")
                assert not mentions_held_out(text), (split, task, text)
    for row in vl.generate_rows("captions", "heldout", 300):
        assert mentions_held_out(row["text"]), row["text"]
    for index in range(300):
        rng = vl.scene_rng(0, "heldout", index)
        assert {(o.colour, o.shape) for o in vl.sample_scene(rng, "heldout").objects} & held
    # Every attribute is still seen in training, on its own.
    training = set(vl.allowed_pairs("train", SceneConfig()))
    assert {c for c, _ in training} == set(COLOURS) and {s for _, s in training} == set(SHAPES)


def test_heldout_questions_are_about_held_out_objects():
    held = set(HELD_OUT_PAIRS)
    for index in range(200):
        rng = vl.scene_rng(0, "heldout", index)
        scene = vl.sample_scene(rng, "heldout")
        question, answer = vl.sample_question(scene, rng, "heldout")
        assert not question.startswith("how many")
        held_objects = [o for o in scene.objects if (o.colour, o.shape) in held]
        words = set(re.findall(r"\w+", question))
        if question.startswith("what colour"):
            words.add(answer)
        if question.startswith("what shape"):
            words.add(answer)
        if question.startswith("is there") and answer == "no":
            assert mentions_held_out(question)  # an absent pair, held out as well
            continue
        # The object the question is about is a held-out one: its shape (and colour if named).
        assert any(o.shape in words for o in held_objects), (question, answer)


def test_vqa_answers():
    scene = Scene(
        (
            SceneObject("circle", "red", "large", 0, 0),
            SceneObject("square", "blue", "small", 1, 2),
        )
    )
    seen = {}
    for seed in range(400):
        question, answer = vl.sample_question(scene, np.random.default_rng(seed), "train")
        seen[question] = answer
    assert seen["how many objects are there?"] == "two"
    assert seen["what colour is the circle?"] == "red"
    assert seen["what shape is the blue object?"] == "square"
    assert seen["what size is the blue square?"] == "small"
    assert seen["where is the blue square?"] == "right"
    assert seen["is there a red circle?"] == "yes"
    assert seen["what is left of the square?"] == "the red circle"
    assert seen["what is left of the circle?"] == "nothing"
    assert seen["what is below the circle?"] == "the blue square"
    negatives = [q for q, a in seen.items() if a == "no"]
    assert negatives and all(q.startswith("is there a") for q in negatives)


def test_rendering_draws_each_object_in_its_cell():
    config = SceneConfig(colour_jitter=0, noise=0, background=(0, 0))
    scene = Scene(
        (
            SceneObject("square", "red", "large", 0, 0),
            SceneObject("triangle", "white", "small", 2, 1),
        )
    )
    image = vl.render_scene(scene, np.random.default_rng(0), config)
    red = np.all(image == COLOURS["red"], axis=-1)
    white = np.all(image == COLOURS["white"], axis=-1)
    assert red[:16, :16].sum() >= 11 * 11 and red.sum() == red[:16, :16].sum()
    assert (
        7 * 7 / 2 * 0.6 < white[32:, 16:32].sum() < 9 * 9 and white.sum() == white[32:, 16:32].sum()
    )


def test_shape_masks_differ():
    for side in (7, 8, 9, 11, 14):
        masks = [vl.shape_mask(s, side) for s in SHAPES]
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                assert (masks[i] != masks[j]).sum() >= 4, (side, SHAPES[i], SHAPES[j])


def test_generation_is_fast():
    start = time.perf_counter()
    rows = list(vl.generate_rows("captions", "train", 1000))
    assert len(rows) == 1000
    assert time.perf_counter() - start < 3.0


def test_build_and_load_from_folder(built):
    captions = vl.load_captions(built / "captions", "heldout")
    assert len(captions) == 20 and captions.column_names == ["images", "text"]
    examples = list(vl.iter_captions(captions))
    assert examples[0].image.shape == (48, 48, 3) and examples[0].question is None
    expected = list(vl.generate_rows("captions", "heldout", 20))
    assert [e.text for e in examples] == [r["text"] for r in expected]
    np.testing.assert_array_equal(examples[3].image, expected[3]["images"])  # PNG is lossless
    vqa = list(vl.iter_captions(vl.load_captions(built / "vqa", "train")))
    assert all(e.question and e.question.endswith("?") for e in vqa)


def test_load_from_parquet_and_resize(tmp_path, built):
    dataset = vl.load_captions(built / "captions", "validation")
    (tmp_path / "validation").mkdir()
    dataset.to_parquet(str(tmp_path / "validation" / "part-0.parquet"))
    loaded = vl.load_captions(tmp_path, "validation")
    examples = list(vl.iter_captions(loaded, image_size=32))
    assert len(examples) == 20 and examples[0].image.shape == (32, 32, 3)


def test_missing_columns_and_broken_images(tmp_path):
    no_text = datasets.Dataset.from_dict({"images": [b"x"], "caption": ["a"]})
    no_text.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match=r"missing required columns \['text'\]"):
        vl.load_captions(tmp_path / "bad", "train")
    good = vl._encode_png(np.zeros((8, 8, 3), np.uint8))
    broken = datasets.Dataset.from_dict(
        {"images": [good, {"bytes": b"not an image", "path": None}], "text": ["ok", "broken"]},
        features=datasets.Features({"images": datasets.Image(), "text": datasets.Value("string")}),
    )
    broken.save_to_disk(str(tmp_path / "broken"))
    rows = vl.iter_captions(vl.load_captions(tmp_path / "broken", "train"), source="fixture")
    assert next(rows).text == "ok"
    with pytest.raises(ValueError, match="fixture row 1: the image cannot be decoded"):
        next(rows)


def test_decode_image_accepts_arrays_and_modes():
    from PIL import Image

    grey = vl.decode_image(np.full((4, 5), 7, np.uint8), "x")
    assert grey.shape == (4, 5, 3)
    rgba = vl.decode_image(Image.new("RGBA", (3, 2)), "x")
    assert rgba.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="x: the image cannot be decoded"):
        vl.decode_image(np.full((2, 2, 3), 300), "x")


def test_config_checks():
    with pytest.raises(ValueError, match="multiple of grid"):
        SceneConfig(image_size=50)
    with pytest.raises(ValueError, match="unknown attribute"):
        SceneConfig(held_out_pairs=(("pink", "circle"),))


def _one_column_share(task: str, split: str, count: int, config: SceneConfig) -> float:
    scenes = [s for s, *_ in vl.generate_scenes(task, split, count, config=config)]
    several = [s for s in scenes if len(s.objects) > 1]
    return sum(vl.has_column_pair(s) for s in several) / len(several)


def test_column_pairs_redrawn_in_the_captions_train_split_only():
    natural = SceneConfig(column_pair_redraw=0.0)
    always = SceneConfig(column_pair_redraw=1.0)
    # Natural draws relate about a third of multi-object scenes by "above" alone.
    assert 0.2 < _one_column_share("captions", "train", 600, natural) < 0.45
    assert _one_column_share("captions", "train", 300, always) == 1.0
    half = _one_column_share("captions", "train", 600, SceneConfig(column_pair_redraw=0.5))
    assert 0.55 < half < 0.8
    assert _one_column_share("captions", "train", 600, SceneConfig()) == pytest.approx(
        _one_column_share("captions", "train", 600, natural)
    )
    for split in ("validation", "heldout"):  # what the scores measure keeps the natural draw
        a = list(vl.generate_rows("captions", split, 40, config=natural))
        b = list(vl.generate_rows("captions", split, 40, config=always))
        assert [r["text"] for r in a] == [r["text"] for r in b]
    for task in ("vqa", "captions-single"):
        a = list(vl.generate_rows(task, "train", 40, config=natural))
        b = list(vl.generate_rows(task, "train", 40, config=always))
        assert [r["text"] for r in a] == [r["text"] for r in b]
    # Redrawn rows still follow the grammar and the split's pairs.
    for row in vl.generate_rows("captions", "train", 100, config=always):
        assert not mentions_held_out(row["text"])
        assert OBJECT.match(row["text"])


def test_draw_scene_without_redraw_is_sample_scene():
    for index in range(30):
        a = vl.draw_scene(vl.scene_rng(5, "train", index), "train")
        b = vl.sample_scene(vl.scene_rng(5, "train", index), "train")
        assert a == b
    one_column = Scene(
        (SceneObject("circle", "red", "small", 0, 1), SceneObject("square", "blue", "large", 2, 1))
    )
    assert vl.has_column_pair(one_column) and vl.caption(one_column).endswith(
        "the circle is above the square."
    )


def test_a_built_dataset_records_its_scene_settings(tmp_path):
    config = SceneConfig(column_pair_redraw=0.25)
    vl.build_dataset("captions", tmp_path / "c", BuildSizes(4, 2, 2), seed=7, config=config)
    for split in ("train", "validation", "heldout"):
        assert vl.recorded_build(tmp_path / "c", split) == vl.build_record("captions", 7, config)
    assert vl.recorded_build(tmp_path / "c")["config"]["column_pair_redraw"] == 0.25
    assert vl.recorded_build(tmp_path / "nothing") is None
    plain = datasets.Dataset.from_dict({"text": ["a"]})
    datasets.DatasetDict({"train": plain}).save_to_disk(str(tmp_path / "plain"))
    assert vl.recorded_build(tmp_path / "plain") is None


def test_stale_scenes_are_rebuilt_and_other_data_left_alone(tmp_path, monkeypatch):
    from gato.data.sources import BuildPlan, PairsSource

    default = tmp_path / "default"
    monkeypatch.setattr(vl, "CAPTIONS_PATH", default)
    old = SceneConfig(column_pair_redraw=0.5)
    vl.build_dataset("captions", default, BuildSizes(6, 2, 2), config=old)
    source = PairsSource("captions", str(default), buildable=True)
    assert "column_pair_redraw" in source.stale() and source.is_missing()
    with pytest.warns(UserWarning, match="other scene settings .*rebuild it with"):
        source.load()
    source.build(BuildPlan(scene_rows=6))
    assert source.stale() is None and not source.is_missing()
    assert vl.recorded_build(default) == vl.build_record("captions", 0, SceneConfig())
    # Elsewhere, scenes built with other settings are the user's: read as they are.
    elsewhere = tmp_path / "elsewhere"
    vl.build_dataset("captions", elsewhere, BuildSizes(6, 2, 2), config=old)
    assert PairsSource("captions", str(elsewhere), buildable=True).stale() is None
    # A folder without a record: stale at the default location, the user's data elsewhere.
    plain = datasets.Dataset.from_dict({"images": [vl._encode_png(np.zeros((4, 4, 3), np.uint8))]})
    plain = plain.add_column("text", ["x"])
    datasets.DatasetDict({"train": plain}).save_to_disk(str(tmp_path / "mine"))
    assert PairsSource("captions", str(tmp_path / "mine"), buildable=True).stale() is None
    monkeypatch.setattr(vl, "CAPTIONS_PATH", tmp_path / "mine")
    assert (
        "records no scene settings"
        in PairsSource("captions", str(tmp_path / "mine"), buildable=True).stale()
    )
    assert PairsSource("captions", str(tmp_path / "mine")).stale() is None  # not buildable


def test_column_pair_redraw_must_be_a_probability():
    with pytest.raises(ValueError, match=r"column_pair_redraw must be in \[0, 1\], got 1.5"):
        SceneConfig(column_pair_redraw=1.5)

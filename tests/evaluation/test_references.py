"""Aggregates with intervals, reference baselines, text metrics, Atari protocols and videos."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gato.evaluation.aggregate import (
    aggregate,
    episode_interval,
    interval_estimates,
    plot_performance_profile,
    stratified_bootstrap,
)
from gato.evaluation.baselines import (
    bleu,
    blind_vqa_answers,
    by_question_type,
    exact_match,
    human_normalized_score,
    nearest_captions,
    question_type,
    read_specialists,
    specialist_score,
    write_specialist,
)
from gato.evaluation.video import grid_frames, write_episodes_video, write_video

# ---------------------------------------------------------------------------------------------
# Aggregates


def test_point_estimates_are_rliables_and_known_by_hand():
    from rliable import metrics

    scores = np.arange(8.0).reshape(4, 2)  # 4 episodes x 2 tasks
    got = interval_estimates(scores, reps=200)
    # IQM: the 25% trimmed mean of 0..7, the mean of 2, 3, 4, 5.
    assert got["iqm"]["value"] == pytest.approx(3.5) == metrics.aggregate_iqm(scores)
    # Task means 3 and 4: their mean and median are 3.5.
    assert got["mean"]["value"] == pytest.approx(3.5) == metrics.aggregate_mean(scores)
    assert got["median"]["value"] == pytest.approx(3.5) == metrics.aggregate_median(scores)
    skewed = np.array([[0.0, 0.0, 0.0, 10.0]] * 4)  # one outlier task
    est = interval_estimates(skewed, reps=200)
    assert est["mean"]["value"] == pytest.approx(2.5)
    assert est["median"]["value"] == pytest.approx(0.0)
    assert est["iqm"]["value"] == pytest.approx(0.0)  # the outlier is trimmed


def test_intervals_bracket_the_estimate_are_reproducible_and_shrink_with_episodes():
    rng = np.random.default_rng(0)
    few = rng.normal(0.5, 0.2, size=(5, 3))
    many = rng.normal(0.5, 0.2, size=(200, 3))
    a, b = interval_estimates(few, reps=500, seed=1), interval_estimates(few, reps=500, seed=1)
    assert a == b
    for stat in ("iqm", "mean", "median"):
        assert a[stat]["low"] <= a[stat]["value"] <= a[stat]["high"]
    wide = a["mean"]["high"] - a["mean"]["low"]
    narrow = interval_estimates(many, reps=500)["mean"]
    assert narrow["high"] - narrow["low"] < wide / 3
    # Constant scores leave nothing to resample: a zero-width interval.
    flat = interval_estimates(np.full((6, 2), 0.7), reps=50)["iqm"]
    assert flat["low"] == pytest.approx(0.7) and flat["high"] == pytest.approx(0.7)


def test_stratified_bootstrap_resamples_within_each_task():
    # Task 0 scores only 0s and 1s, task 1 only 10s and 11s: a replicate that mixed tasks
    # would put a 10 or 11 in column 0.
    scores = np.array([[0.0, 10.0], [1.0, 11.0], [0.0, 10.0]])
    replicates = stratified_bootstrap(scores, lambda x: np.array([x[:, 0].max()]), reps=100)
    assert replicates.shape == (100, 1) and set(replicates[:, 0]) <= {0.0, 1.0}


def test_episode_interval_and_percentile_bounds():
    values = [1.0, 2.0, 3.0, 4.0]
    got = episode_interval(values, reps=2000)
    assert got["mean"] == 2.5 and got["std"] == pytest.approx(np.std(values))
    # The bootstrap mean of 4 values lies in [1, 4] and its 95% interval is inside it.
    assert 1.0 <= got["low"] < 2.5 < got["high"] <= 4.0
    with pytest.raises(ValueError, match="at least one episode"):
        episode_interval([])
    with pytest.raises(ValueError, match="finite"):
        episode_interval([1.0, math.nan])


def test_aggregate_over_tasks_and_per_domain():
    scores = {"a": [0.1, 0.2], "b": [1.0, 1.2, 0.8], "c": [0.5, 0.5]}
    got = aggregate(scores, {"a": "gym", "b": "atari", "c": "atari"}, reps=100)
    assert got["all"]["tasks"] == ["a", "b", "c"] and got["all"]["episodes"] == 2
    assert set(got["by_domain"]) == {"gym", "atari"}
    assert got["by_domain"]["atari"]["mean"]["value"] == pytest.approx((1.1 + 0.5) / 2)
    with pytest.raises(ValueError, match="without scores"):
        aggregate(scores, {"z": "gym"})
    with pytest.raises(ValueError, match=r"\(episodes, tasks\) matrix"):
        interval_estimates(np.zeros(3))
    with pytest.raises(ValueError, match="reps"):
        interval_estimates(np.zeros((2, 2)), reps=1)


def test_performance_profile_plot(tmp_path):
    path = plot_performance_profile({"a": [0.1, 0.9], "b": [1.0, 1.1]}, tmp_path / "p.png", reps=50)
    assert path.stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# References and baselines


def test_specialist_cache_round_trip_and_bad_files(tmp_path):
    cache = tmp_path / "specialists.json"
    assert read_specialists(cache) == {} and specialist_score("gym-pendulum", cache) is None
    write_specialist("gym-pendulum", 0.9, cache, learner="mlp", steps=3000)
    write_specialist("gym-cartpole", 1.0, cache)
    write_specialist("gym-pendulum", 0.95, cache)  # replaces
    assert specialist_score("gym-pendulum", cache) == 0.95
    assert json.loads(cache.read_text())["format"] == 1
    cache.write_text('{"format": 7, "tasks": {}}')
    with pytest.raises(ValueError, match="format 1"):
        read_specialists(cache)
    cache.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        read_specialists(cache)
    with pytest.raises(ValueError, match="finite"):
        write_specialist("x", math.nan, tmp_path / "other.json")


def test_the_default_specialist_cache_lives_under_the_home(tmp_path, monkeypatch):
    # Generated data goes under $GATO_HOME; the specialist cache is generated data too.
    monkeypatch.setenv("GATO_HOME", str(tmp_path))
    written = write_specialist("gym-pendulum", 0.8)
    assert written == tmp_path / "data" / "cache" / "specialists.json"
    assert specialist_score("gym-pendulum") == 0.8


def test_human_normalised_score_uses_the_published_references():
    from gato.tasks.registry import get_task

    pong = get_task("atari-pong")  # random -20.7, human 14.6
    assert human_normalized_score(14.6, pong) == pytest.approx(1.0)
    assert human_normalized_score(-20.7, pong) == pytest.approx(0.0)
    assert human_normalized_score(0.0, get_task("gym-pendulum")) is None


def test_exact_match_and_bleu_on_known_cases():
    assert exact_match(["red ", "two", "blue"], ["red", "three", " blue"]) == pytest.approx(2 / 3)
    assert bleu(["the dog bit the man ."], ["the dog bit the man ."]) == pytest.approx(100.0)
    # By hand: n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (no brevity penalty):
    # BLEU = 100 * (5/6 * 3/5 * 1/2 * 1/3) ** (1/4) = 100 * (1/12) ** (1/4).
    assert bleu(["a b c d e f"], ["a b c d x f"]) == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-3)
    with pytest.raises(ValueError, match="2 outputs for 1 targets"):
        exact_match(["a", "b"], ["a"])


def test_blind_vqa_baseline_on_a_hand_made_split():
    train = [
        ("what colour is the circle?", "red"),
        ("what colour is the square?", "red"),
        ("what colour is the star?", "blue"),
        ("how many objects are there?", "two"),
        ("how many objects are there?", "three"),
        ("how many objects are there?", "three"),
        ("is there a red circle?", "yes"),
    ]
    questions = ["What colour is the triangle?", "how many objects are there?", "where is it?"]
    # Per type: "red" (2 of 3), "three" (2 of 3); an unseen type: the most common overall.
    assert blind_vqa_answers(train, questions) == ["red", "three", "red"]
    assert question_type("What colour is the circle?") == "what colour is"
    with pytest.raises(ValueError, match="no \\(question, answer\\)"):
        blind_vqa_answers([], questions)


def test_by_question_type_scores_each_type_beside_the_baseline():
    questions = [
        "What colour is the star?",
        "what colour is the circle?",
        "is there a red circle?",
        "what colour is the cross?",
    ]
    targets = ["blue", "red", "yes", "red"]
    outputs = ["blue", "green", "yes", "red"]
    baseline = ["red", "red", "yes", "red"]
    table = by_question_type(questions, outputs, targets, baseline)
    assert list(table) == ["what colour is", "is there a"]  # first appearance
    assert table["what colour is"] == {
        "count": 3, "exact_match": 2 / 3, "baseline_exact_match": 2 / 3,
    }  # fmt: skip
    assert table["is there a"] == {"count": 1, "exact_match": 1.0, "baseline_exact_match": 1.0}
    assert (
        by_question_type(questions, outputs, targets)["is there a"]["baseline_exact_match"] is None
    )
    with pytest.raises(ValueError, match="4 questions, 3 outputs"):
        by_question_type(questions, outputs[:3], targets)


def test_nearest_caption_baseline_picks_the_closest_training_image():
    dark, bright = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 250, np.uint8)
    texts = ["a dark scene", "a bright scene"]
    query = [np.full((24, 40, 3), 200, np.uint8), np.full((32, 32, 3), 10, np.uint8)]
    assert nearest_captions([dark, bright], texts, query) == ["a bright scene", "a dark scene"]


# ---------------------------------------------------------------------------------------------
# Videos


def test_mp4_grid_opens_with_the_right_frame_count_and_size(tmp_path):
    import imageio.v2 as imageio

    episodes = [[np.full((40, 48, 3), 10 * t, np.uint8) for t in range(n)] for n in (5, 9, 3)]
    path = write_episodes_video(episodes, tmp_path / "grid.mp4", ["return 1.0", "2", "3"])
    reader = imageio.get_reader(path)
    assert reader.count_frames() == 9  # the longest episode
    # 3 episodes: a 2 x 2 grid of 40 x 48 tiles, padded to multiples of 16 (80 -> 80, 96).
    assert reader.get_data(0).shape == (80, 96, 3)
    assert not list(tmp_path.glob(".grid.mp4*"))  # no temporary file left


def test_gif_stays_an_option_and_labels_are_drawn(tmp_path):
    from PIL import Image

    frames = [np.zeros((30, 30, 3), np.uint8) for _ in range(4)]
    labelled = grid_frames([frames], ["return 5"])
    assert labelled[0].max() > 200  # white (antialiased) text on the dark frame
    with Image.open(write_video(labelled, tmp_path / "e.gif")) as gif:
        assert gif.size == (30, 30)
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        write_video(frames, tmp_path / "e.avi")
    with pytest.raises(ValueError, match="at least one frame"):
        grid_frames([frames, []])

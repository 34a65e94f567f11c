"""Evaluation: the lockstep loop on fake environments, scores, reports, videos, captions, chat."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_config

from gato.evaluation import (
    ControlEvalConfig,
    TaskResult,
    caption_context,
    check_task_supported,
    control_markdown,
    control_table,
    evaluate_captions,
    evaluate_control,
    generate_text,
    render_frame,
    run_episodes,
    summarize,
    text_context,
    write_control_report,
    write_video,
)
from gato.modeling.model import GatoModel
from gato.policy import GatoPolicy
from gato.schema import ActionSpec
from gato.tasks.envs import Step
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import EOS_ID, TEXT_VOCAB_SIZE


@pytest.fixture(scope="module")
def model() -> GatoModel:
    torch.manual_seed(0)
    return GatoModel(make_config()).eval()


@pytest.fixture(scope="module")
def tokenizer() -> GatoTokenizer:
    return GatoTokenizer()


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


class FakeEnv:
    """Episodes of 2 + seed % 5 steps, reward = the action + 1 each step; logs every reset."""

    resets: list[int] = []

    def __init__(self) -> None:
        self.t = self.length = 0

    def reset(self, seed: int | None = None) -> dict:
        FakeEnv.resets.append(seed)
        self.t, self.length = 0, 2 + seed % 5
        return {"continuous_observations": np.full(3, float(seed), np.float32)}

    def step(self, action) -> Step:
        self.t += 1
        obs = {"continuous_observations": np.full(3, float(self.t), np.float32)}
        return Step(obs, float(action) + 1.0, self.t >= self.length, False)

    def close(self) -> None:
        pass


class FakePolicy:
    """Counts what the loop asks of a policy; always plays action 1."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs, self.calls, self.resets = num_envs, 0, []

    def reset(self) -> None:
        self.resets.append("all")

    def reset_env(self, index: int) -> None:
        self.resets.append(index)

    def act_batch(self, observations):
        assert len(observations) == self.num_envs
        self.calls += 1
        return [1] * self.num_envs

    def remove_envs(self, keep) -> None:
        self.num_envs = len(keep)


@pytest.mark.parametrize("num_envs", [1, 3, 10])
def test_loop_plays_exactly_n_episodes_and_counts_steps(num_envs):
    FakeEnv.resets = []
    episodes = 7
    envs = [FakeEnv() for _ in range(num_envs)]
    policy = FakePolicy(min(num_envs, episodes))
    stats = run_episodes(policy, envs, episodes, seed=100)
    expected_lengths = np.array([2 + (100 + k) % 5 for k in range(episodes)])
    np.testing.assert_array_equal(stats.lengths, expected_lengths)
    np.testing.assert_array_equal(stats.returns, 2.0 * expected_lengths)  # reward 2 per step
    assert stats.steps == expected_lengths.sum()
    assert sorted(FakeEnv.resets) == list(range(100, 100 + episodes))  # each seed once
    assert policy.num_envs >= 1  # rows retire as environments run out of episodes
    assert policy.resets.count("all") == 1
    assert len(policy.resets) - 1 == episodes - min(num_envs, episodes)  # one per new episode


def test_max_steps_truncates_episodes():
    envs = [FakeEnv() for _ in range(2)]
    stats = run_episodes(FakePolicy(2), envs, 4, seed=4, max_steps=3)
    assert stats.lengths.max() <= 3


def test_loop_with_a_real_policy_and_a_video(model, tokenizer):
    spec = ActionSpec("discrete", (), num_values=3)
    policy = GatoPolicy(model, tokenizer, spec, None, num_envs=2)
    envs = [FakeEnv() for _ in range(2)]

    def render(env, obs):
        return np.full((8, 8, 3), env.t, np.uint8)

    stats = run_episodes(policy, envs, 5, seed=0, render=render)
    np.testing.assert_array_equal(stats.lengths, [2 + k % 5 for k in range(5)])
    assert len(stats.frames) == stats.lengths[0] + 1  # the reset frame and one per step
    assert np.all((stats.returns >= stats.lengths) & (stats.returns <= 3 * stats.lengths))


def test_render_frame_falls_back_to_the_newest_observed_frame():
    stack = np.zeros((84, 84, 4), np.uint8)
    stack[..., 3] = 200
    frame = render_frame(object(), {"image_observations": stack})
    assert frame.shape == (84, 84, 3) and frame.min() == 200
    assert render_frame(object(), {"continuous_observations": np.zeros(3)}) is None


# ---------------------------------------------------------------------------------------------
# Scores and reports
# ---------------------------------------------------------------------------------------------


def result(task: str, normalized: float | None) -> TaskResult:
    return TaskResult(
        task=task,
        episodes=2,
        mean_return=5.0,
        std_return=1.0,
        random_score=0.0 if normalized is not None else None,
        expert_score=10.0 if normalized is not None else None,
        normalized_score=normalized,
        returns=[4.0, 6.0],
        lengths=[3, 3],
        steps=6,
        steps_per_second=100.0,
        prompt_tokens=0,
    )


def test_summary_counts_tasks_above_50_and_100_percent():
    s = summarize([result("a", 0.2), result("b", 0.5), result("c", 1.3), result("d", None)])
    assert (s["tasks"], s["scored_tasks"], s["above_50"], s["above_100"]) == (4, 3, 2, 1)
    assert s["mean_normalized"] == pytest.approx(2.0 / 3)


def test_reports_table_markdown_json_and_chart(tmp_path):
    from dataclasses import asdict

    results = [result("atari-pong", 0.75), result("gym-x", None)]
    report = {"kind": "control", "checkpoint": "ckpt", "tasks": [asdict(r) for r in results]}
    report["summary"] = summarize(results)
    table = control_table(report)
    assert "atari-pong" in table and "75.0%" in table and "5.0 +- 1.0" in table
    assert "at or above 50% of expert: 1 / 1" in table
    assert "| atari-pong |" in control_markdown(report)
    written = write_control_report(report, tmp_path / "out" / "report.json")
    assert json.loads(written["json"].read_text())["summary"]["above_50"] == 1
    assert written["markdown"].read_text().startswith("Checkpoint:")
    assert written["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_video_makes_an_animated_gif(tmp_path):
    from PIL import Image

    frames = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(5)]
    path = write_video(frames, tmp_path / "episode.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 5


def test_task_support_follows_the_training_tasks():
    from gato.tasks.registry import get_task

    pendulum = get_task("gym-pendulum")
    assert check_task_supported(pendulum, ["gym-pendulum"]) == ""
    assert "zero-shot" in check_task_supported(pendulum, ["dmc-cartpole-swingup"])
    assert "unknown" in check_task_supported(pendulum, None)
    with pytest.raises(ValueError, match="action space the checkpoint was not trained for"):
        check_task_supported(pendulum, ["atari-pong"])


@pytest.mark.filterwarnings("ignore:task .* has no episodes")
def test_evaluate_control_on_a_registry_task(model, tokenizer):
    report = evaluate_control(
        (model, tokenizer),
        ["gym-pendulum"],
        episodes=3,
        num_envs=2,
        max_steps=4,
        progress=False,
    )
    (task,) = report["tasks"]
    assert task["task"] == "gym-pendulum" and task["lengths"] == [4, 4, 4]
    assert task["steps"] == 12 and len(task["returns"]) == 3
    expected = (task["mean_return"] - task["random_score"]) / (
        task["expert_score"] - task["random_score"]
    )
    assert task["normalized_score"] == pytest.approx(expected)
    assert report["summary"]["scored_tasks"] == 1
    # Episodes cut below the task's limit: the score is flagged as not comparable.
    assert task["cut_at"] == 4 and report["summary"]["cut_tasks"] == 1
    assert "%*" in control_table(report) and "cut short" in control_table(report)


@pytest.mark.filterwarnings("ignore:task .* has no episodes")
def test_atari_rollout_with_a_video_of_the_screen(tmp_path, model, tokenizer):
    report = evaluate_control(
        (model, tokenizer),
        ["atari-pong"],
        episodes=2,
        num_envs=2,
        max_steps=3,
        video_dir=str(tmp_path),
        progress=False,
    )
    (task,) = report["tasks"]
    assert task["lengths"] == [3, 3]
    import imageio.v2 as imageio

    # An MP4 of both episodes side by side (2 x 160 wide; 210 high padded to 224 for H.264):
    # the ALE screen at the reset and after each of the 3 steps.
    assert task["video"].endswith("atari-pong.mp4")
    reader = imageio.get_reader(task["video"])
    assert reader.count_frames() == 4
    assert reader.get_data(0).shape == (224, 320, 3)
    assert task["protocol"]["noop_max"] == 30 and task["protocol"]["sticky_actions"] == 0.0
    assert report["config"]["atari"]["description"].startswith("sticky actions 0,")
    # The Atari-57 references give a human-normalised score beside the expert-normalised one.
    assert task["human_normalized_score"] == pytest.approx(
        (task["mean_return"] - task["human_random"]) / (task["human_score"] - task["human_random"])
    )
    assert report["summary"]["human_aggregates"]["all"]["tasks"] == ["atari-pong"]


# ---------------------------------------------------------------------------------------------
# Text generation, captions
# ---------------------------------------------------------------------------------------------


def test_batched_generation_matches_one_row_at_a_time(model, tokenizer):
    rng = np.random.default_rng(0)
    contexts = [
        caption_context(tokenizer, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
        text_context(tokenizer, "A longer prompt than the other one, by a few words."),
        text_context(tokenizer, "Short"),
    ]
    batched = generate_text(model, tokenizer, contexts, max_new_tokens=6)
    alone = [generate_text(model, tokenizer, [c], max_new_tokens=6)[0] for c in contexts]
    assert batched == alone


def test_generation_emits_only_text_and_stops_at_eos(tokenizer):
    torch.manual_seed(0)
    model = GatoModel(make_config()).eval()
    with torch.no_grad():
        direction = torch.randn(model.config.hidden_size)
        model.norm.weight.zero_()
        model.norm.bias.copy_(direction)
        model.lm_head.weight.copy_(10 * direction)  # action and special ids score high ...
        model.lm_head.weight[:TEXT_VOCAB_SIZE] = -direction
        model.lm_head.weight[EOS_ID] = direction  # ... EOS beats every text id
    out = generate_text(model, tokenizer, [text_context(tokenizer, "hello")], max_new_tokens=5)
    assert out == [""]
    with torch.no_grad():
        model.lm_head.weight[EOS_ID] = -2 * direction
        model.lm_head.weight[42] = 0.5 * direction  # now a text id wins, every step
    (text,) = generate_text(model, tokenizer, [text_context(tokenizer, "hi")], max_new_tokens=4)
    assert text == tokenizer.decode_text([42] * 4)


def test_evaluate_captions_scores_a_split(tmp_path, model, tokenizer):
    from gato.data.corpora import vision_language as vl

    vl.build_dataset("captions", tmp_path / "captions", vl.BuildSizes(2, 2, 3))
    report = evaluate_captions(
        (model, tokenizer), tmp_path / "captions", split="heldout", max_new_tokens=4, progress=False
    )
    assert report["count"] == 3 and 0.0 <= report["exact_match"] <= 1.0
    assert report["bleu"] >= 0.0 and len(report["examples"]) == 3
    assert report["by_type"] is None  # captions carry no question


def test_evaluate_vqa_breaks_the_score_down_by_question_type(tmp_path, model, tokenizer):
    from gato.data.corpora import vision_language as vl
    from gato.evaluation.baselines import question_type
    from gato.evaluation.language import question_type_table

    vl.build_dataset("vqa", tmp_path / "vqa", vl.BuildSizes(6, 2, 5))
    report = evaluate_captions(
        (model, tokenizer), tmp_path / "vqa", split="heldout", max_new_tokens=3, progress=False
    )
    rows = report["by_type"]
    questions = [
        e.question for e in vl.iter_captions(vl.load_captions(tmp_path / "vqa", "heldout"), "vqa")
    ]
    assert set(rows) == {question_type(q) for q in questions}
    assert sum(r["count"] for r in rows.values()) == report["count"] == 5
    # the per-type scores add up to the overall ones, the model's and the baseline's
    total = sum(r["count"] * r["exact_match"] for r in rows.values())
    assert total == pytest.approx(5 * report["exact_match"])
    base = sum(r["count"] * r["baseline_exact_match"] for r in rows.values())
    assert base == pytest.approx(5 * report["baseline"]["exact_match"])
    assert "outputs" not in report["baseline"]
    assert question_type_table(report).count("\n") == len(rows) + 1


def test_eval_config_rejects_bad_values():
    with pytest.raises(ValueError, match="episodes"):
        ControlEvalConfig(episodes=0)
    with pytest.raises(ValueError, match="max_steps"):
        ControlEvalConfig(max_steps=0)


def test_unknown_task_names_the_known_ones(model, tokenizer):
    from gato.tasks.registry import UnknownTaskError

    with pytest.raises(UnknownTaskError, match="gym-pendulum"):
        evaluate_control((model, tokenizer), ["gym-pendullum"], progress=False)

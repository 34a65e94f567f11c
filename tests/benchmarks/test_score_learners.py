"""benchmarks/score_learners.py: saved learners played on held-out seeds, under a protocol."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gato.tasks.envs import make_env
from gato.tasks.experts.learner import load_learner, save_learner
from gato.tasks.registry import get_task
from gato.tasks.scores import EVALUATION_SEED, normalized_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import score_learners  # noqa: E402


def _cartpole_learner(path: Path) -> Path:
    """A fixed linear policy of cartpole's 4 observations: pushes towards the pole's lean."""
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.0, 0.0, -1.0, -1.0], [0.0, 0.0, 1.0, 1.0]]))
        net.bias.zero_()
    return save_learner(
        net, torch.zeros(1, 4), path, get_task("gym-cartpole"), "continuous_observations"
    )


def _reference(path: Path, episodes: int) -> tuple[list[float], list[int]]:
    """Each game played alone, one step at a time, from its seed."""
    task = get_task("gym-cartpole")
    learner = load_learner(path, task)
    returns, lengths = [], []
    for k in range(episodes):
        env = make_env(task)
        observation, total, steps, done = env.reset(EVALUATION_SEED + k), 0.0, 0, False
        while not done:
            step = env.step(learner(observation))
            observation, total, steps = step[0], total + step[1], steps + 1
            done = step[2] or step[3]
        env.close()
        returns.append(total)
        lengths.append(steps)
    return returns, lengths


def test_a_learner_scores_what_it_plays_game_by_game(tmp_path):
    path = _cartpole_learner(tmp_path / "lin.pt2")
    task = get_task("gym-cartpole")
    result = score_learners.score_learner(path, task, 3)
    returns, lengths = _reference(path, 3)
    assert result.returns == returns and result.lengths == lengths
    assert result.seeds == [EVALUATION_SEED + k for k in range(3)]
    expected = normalized_score(np.mean(returns), task.scores.expert, task.scores.random)
    assert result.normalized == pytest.approx(expected)


def test_main_prints_the_table_and_writes_json(tmp_path, capsys):
    path = _cartpole_learner(tmp_path / "lin.pt2")
    out = tmp_path / "scores.json"
    results = score_learners.main(
        ["--task", "gym-cartpole", "--episodes", "2", "--json", str(out), str(path)]
    )
    text = capsys.readouterr().out
    assert "lin.pt2" in text and "% expert" in text and "(return, length) per game" in text
    written = json.loads(out.read_text())
    assert written["task"] == "gym-cartpole"
    assert written["scores"][0]["returns"] == results[0].returns
    assert written["scores"][0]["protocol"] is None


def test_bad_learners_and_counts_are_refused(tmp_path):
    task = get_task("gym-cartpole")
    with pytest.raises(FileNotFoundError, match="no such file"):
        score_learners.score_learner(tmp_path / "absent.pt2", task, 2)
    path = _cartpole_learner(tmp_path / "lin.pt2")
    with pytest.raises(ValueError, match="episodes must be at least 1"):
        score_learners.score_learner(path, task, 0)
    with pytest.raises(ValueError, match="trained on task 'gym-cartpole', not 'gym-pendulum'"):
        score_learners.score_learner(path, get_task("gym-pendulum"), 1)

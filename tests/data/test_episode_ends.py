"""Episode ends: recorded by collection, read by the loaders, used by the filter and the score."""

from __future__ import annotations

from dataclasses import replace

import datasets
import numpy as np
import pytest

from gato.data import EpisodeSchemaError, load_episodes
from gato.data.collect import CollectConfig, collect
from gato.data.episodes import (
    complete_episodes,
    episode_ends,
    episode_features,
    episode_lengths,
    expert_score_of,
    training_mask,
)
from gato.tasks import scores as score_math
from gato.tasks.registry import Scores, get_task


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def test_collection_records_how_each_episode_ended(tmp_path):
    cartpole = get_task("gym-cartpole")
    # The random policy drops the pole within a few dozen steps: a terminal state.
    out = tmp_path / "cartpole"
    collect(CollectConfig(cartpole.id, 3, str(out), policy="random", progress=False))
    episodes = load_episodes(out, task=cartpole)
    terminated, truncated = episode_ends(episodes)
    assert terminated.tolist() == [True] * 3 and truncated.tolist() == [False] * 3
    assert (episode_lengths(episodes) < cartpole.episode_limit).all()
    # Pendulum has no terminal state: every episode runs into the step limit.
    pendulum = get_task("gym-pendulum")
    out = tmp_path / "pendulum"
    collect(CollectConfig(pendulum.id, 1, str(out), policy="random", progress=False))
    episodes = load_episodes(out, task=pendulum)
    terminated, truncated = episode_ends(episodes)
    assert terminated.tolist() == [False] and truncated.tolist() == [True]
    lengths = episode_lengths(episodes)
    assert lengths.tolist() == [pendulum.episode_limit]
    assert complete_episodes(lengths, terminated, truncated, pendulum.episode_limit).all()


def test_the_filter_drops_episodes_cut_short_and_keeps_time_limit_ends():
    task = replace(get_task("gym-cartpole"), scores=Scores(expert=100.0, random=20.0))
    returns = np.array([500.0, 500.0, 90.0, 50.0])
    lengths = np.array([500, 120, 90, 50])
    terminated = np.array([False, False, True, True])
    truncated = ~terminated
    keep, threshold = training_mask(returns, task, lengths, (terminated, truncated))
    assert threshold == pytest.approx(80.0)
    # 0: ran to the limit (500 steps) - kept; 1: cut at 120 steps by its recorder - dropped
    # although its return is high; 2: a terminal state above the threshold - kept; 3: below.
    assert keep.tolist() == [True, False, True, False]
    without, _ = training_mask(returns, task)  # JAT's data: no ends, returns alone
    assert without.tolist() == score_math.keep_mask(returns, 100.0, 20.0).tolist()
    assert without.tolist() == [True, True, True, False]


def test_the_expert_score_counts_complete_episodes_only():
    # 20 episodes (window 2); every other one was cut at 30 of its 100 steps.
    returns = [10.0, 1.0] * 10
    lengths = [100, 30] * 10
    terminated = np.array([True, False] * 10)
    ends = (terminated, ~terminated)
    assert expert_score_of(returns, lengths, ends, 100) == pytest.approx(10.0)
    assert expert_score_of(returns) == score_math.expert_score(returns) == pytest.approx(5.5)


def _rows(**ends):
    rows = {
        "continuous_observations": [[[0.0]] * 2, [[0.0]] * 3],
        "continuous_actions": [[[0.5]] * 2, [[0.5]] * 3],
        "rewards": [[1.0] * 2, [1.0] * 3],
    }
    return {**rows, **ends}


def test_loaders_read_ends_and_reject_bad_ones(tmp_path):
    rows = _rows(terminated=[True, False], truncated=[False, True])
    features = episode_features(rows)
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "a"))
    loaded = load_episodes(tmp_path / "a")
    terminated, truncated = episode_ends(loaded)
    assert terminated.tolist() == [True, False] and truncated.tolist() == [False, True]
    assert episode_ends(load_episodes(_save(tmp_path / "none", _rows()))) is None

    both = _rows(terminated=[True, True], truncated=[False, True])
    with pytest.raises(EpisodeSchemaError, match="episode 1: both 'terminated' and 'truncated'"):
        load_episodes(_save(tmp_path / "both", both, episode_features(both)))
    wrong = _rows(terminated=[1, 0])
    with pytest.raises(EpisodeSchemaError, match=r"'terminated' has the wrong type .*int64.*"
                       r"expected one Value\('bool'\) per episode"):  # fmt: skip
        load_episodes(_save(tmp_path / "wrong", wrong))


def _save(path, rows, features=None):
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(path))
    return path

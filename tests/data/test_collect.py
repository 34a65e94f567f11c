"""Collection: collect -> load gives the same steps and rewards; failures leave no half dataset."""

from __future__ import annotations

import shutil

import datasets
import numpy as np
import pytest

from gato.data import load_episodes
from gato.data.__main__ import main
from gato.data.collect import CollectConfig, collect, measure_scores
from gato.tasks.envs import make_env
from gato.tasks.experts import make_expert
from gato.tasks.registry import DEFAULT_REGISTRY_PATH, get_task, load_registry


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _replay(task, seed, policy=None):
    """The episode played again, step by step, straight through the adapter."""
    observations, actions, rewards = [], [], []
    with make_env(task) as env:
        expert = make_expert(task, seed, policy)
        obs = env.reset(seed=seed)
        while True:
            action = expert.act(obs, env)
            observations.append(obs)
            actions.append(action)
            step = env.step(action)
            rewards.append(step.reward)
            obs = step.observation
            if step.terminated or step.truncated:
                return observations, actions, rewards


def _registry_with(tmp_path, extra: str) -> str:
    """The shipped registry (root file and its includes) plus extra task tables."""
    path = tmp_path / "tasks.toml"
    path.write_text(DEFAULT_REGISTRY_PATH.read_text() + "\n" + extra)
    shutil.copytree(DEFAULT_REGISTRY_PATH.parent / "tasks", tmp_path / "tasks")
    return str(path)


def test_collect_then_load_gives_the_same_episodes(tmp_path):
    task = get_task("dmc-point_mass-easy")
    out = tmp_path / "point_mass"
    result = collect(CollectConfig(task.id, episodes=2, output=str(out), seed=7, progress=False))
    assert result.path == out.resolve() and result.num_kept == 2 and result.steps == 2000
    episodes = load_episodes(out, task=task)
    assert len(episodes) == 2
    for index, seed in enumerate((7, 8)):
        observations, actions, rewards = _replay(task, seed)
        row = episodes[index]
        np.testing.assert_array_equal(
            row["continuous_observations"], [o["continuous_observations"] for o in observations]
        )
        np.testing.assert_array_equal(row["continuous_actions"], np.stack(actions))
        np.testing.assert_array_equal(row["rewards"], np.asarray(rewards, np.float32))
        assert row["continuous_actions"].min() >= -1 and row["continuous_actions"].max() <= 1
    info = episodes.info.description
    assert '"task": "dmc-point_mass-easy"' in info and '"episodes_kept": 2' in info


def test_atari_round_trip_keeps_exact_frame_stacks(tmp_path):
    registry = _registry_with(
        tmp_path,
        '[tasks.test-breakout]\nsuite = "atari"\nenv = { game = "Breakout" }\n'
        'action = { num_values = 4 }\nexpert = "breakout-ram"\nepisode_limit = 40\n',
    )
    task = load_registry(registry)["test-breakout"]
    out = tmp_path / "breakout"
    collect(CollectConfig(task.id, 1, output=str(out), seed=3, progress=False, registry=registry))
    row = load_episodes(out, task=task)[0]
    observations, actions, rewards = _replay(task, 3)
    assert row["image_observations"].shape == (40, 84, 84, 4)
    np.testing.assert_array_equal(
        row["image_observations"], [o["image_observations"] for o in observations]
    )
    np.testing.assert_array_equal(row["discrete_actions"], actions)
    np.testing.assert_array_equal(row["rewards"], rewards)


def test_failed_collection_leaves_no_half_dataset(tmp_path, monkeypatch):
    import gato.data.collect as collect_module

    out = tmp_path / "cartpole"
    collect(CollectConfig("gym-cartpole", 2, output=str(out), progress=False))
    real = collect_module.play_episode
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulator crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(collect_module, "play_episode", crash_on_third)
    with pytest.raises(RuntimeError, match="simulator crashed"):
        collect(CollectConfig("gym-cartpole", 5, output=str(out), seed=100, progress=False))
    assert len(load_episodes(out)) == 2  # the previous complete dataset is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cartpole"]  # no temporaries left
    calls.clear()
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="simulator crashed"):
        collect(CollectConfig("gym-cartpole", 5, output=str(fresh), progress=False))
    assert not fresh.exists()


def test_collection_never_replaces_a_folder_that_is_not_a_dataset(tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a dataset"):
        collect(CollectConfig("gym-cartpole", 1, output=str(precious), progress=False))
    assert (precious / "todo.txt").read_text() == "keep me"


# The random policy as a task's "expert", with scores that put the filter's threshold at 32.
RANDOM_CARTPOLE = (
    '[tasks.test-cartpole]\nsuite = "gym"\nenv = { id = "CartPole-v1" }\n'
    "observation = { continuous_observations = { shape = [4] } }\n"
    'action = { kind = "discrete", num_values = 2 }\nepisode_limit = 500\n'
    'expert = "random"\nscores = { expert = 40, random = 20 }\n'
)


def test_episodes_below_80_percent_of_expert_are_filtered(tmp_path):
    registry = _registry_with(tmp_path, RANDOM_CARTPOLE)
    result = collect(
        CollectConfig("test-cartpole", 12, output=str(tmp_path / "ds"), progress=False,
                      registry=registry)
    )  # fmt: skip
    returns = np.asarray(result.returns)
    assert result.threshold == pytest.approx(32.0)
    assert result.kept == (returns >= 32.0).tolist()
    assert 0 < result.num_kept < 12
    loaded = load_episodes(tmp_path / "ds")
    assert sorted(len(r) for r in loaded["rewards"]) == sorted(returns[returns >= 32].astype(int))
    unfiltered = collect(
        CollectConfig("test-cartpole", 12, output=str(tmp_path / "all"), progress=False,
                      registry=registry, filter=False)
    )  # fmt: skip
    assert unfiltered.num_kept == 12 and unfiltered.returns == result.returns
    # The registry's `filter = false` keeps every game of its expert without being asked.
    (tmp_path / "unfiltered").mkdir()
    registry = _registry_with(tmp_path / "unfiltered", RANDOM_CARTPOLE + "filter = false\n")
    kept = collect(
        CollectConfig("test-cartpole", 12, output=str(tmp_path / "kept"), progress=False,
                      registry=registry)
    )  # fmt: skip
    assert kept.num_kept == 12 and kept.threshold is None and kept.returns == result.returns


def test_cli_collect_and_score(tmp_path, capsys):
    out = tmp_path / "pendulum"
    args = ["collect", "--task", "gym-pendulum", "--episodes", "2", "--output", str(out), "--quiet"]
    assert main(args) == 0
    assert "wrote 2/2 episodes" in capsys.readouterr().out
    assert len(load_episodes(out)) == 2
    registry = _registry_with(tmp_path, "")
    args = ["score", "--registry", registry, "--task", "gym-mountaincar", "--expert-episodes",
            "3", "--random-episodes", "2", "--write", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert "gym-mountaincar: expert" in capsys.readouterr().out
    scores = load_registry(registry)["gym-mountaincar"].scores
    assert scores.expert_episodes == 3 and scores.random_episodes == 2 and scores.random == -200
    report = measure_scores(get_task("gym-cartpole"), 2, 5, progress=False)
    assert report.scores.expert == 500.0 and report.scores.random < 100
    assert report.scores.expert_episodes == 2 and report.scores.random_episodes == 5


@pytest.mark.slow
def test_workers_give_the_same_dataset(tmp_path):
    one = collect(CollectConfig("gym-mountaincar", 4, output=str(tmp_path / "a"), progress=False))
    two = collect(
        CollectConfig("gym-mountaincar", 4, output=str(tmp_path / "b"), workers=2, progress=False)
    )
    assert one.returns == two.returns
    a, b = load_episodes(tmp_path / "a"), load_episodes(tmp_path / "b")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["continuous_observations"], y["continuous_observations"])


def test_noisy_expert_perturbs_continuous_actions_and_leaves_the_expert_alone():
    task = get_task("gym-pendulum")
    clean, noisy = make_expert(task, 3), make_expert(task, 3, action_noise=0.3)
    with make_env(task) as env:
        obs = env.reset(seed=3)
        diffs = []
        for _ in range(200):
            a, b = clean.act(obs, env), noisy.act(obs, env)
            assert b.dtype == np.float32 and -1 <= b.min() and b.max() <= 1
            diffs.append(float(b[0] - np.clip(a[0], -1, 1)))
            obs = env.step(a).observation
    diffs = np.asarray(diffs)
    # The clean action is the noisy expert's mean: differences are the noise (clipping aside).
    unclipped = np.abs(diffs) < 0.99
    assert 0.2 < diffs[unclipped].std() < 0.4 and abs(diffs[unclipped].mean()) < 0.08


def test_noisy_expert_replaces_discrete_actions_with_the_given_probability():
    task = get_task("gym-cartpole")
    noisy = make_expert(task, 0, action_noise=0.25)
    with make_env(task) as env:
        obs = env.reset(seed=0)
        inner = noisy.expert
        replaced = sum(noisy.act(obs, env) != inner.act(obs, env) for _ in range(4000))
    # A replacement draws either action, so half of them differ from the expert's: p / 2.
    assert abs(replaced / 4000 - 0.125) < 0.02


def test_noisy_expert_rejects_bad_noise(tmp_path):
    with pytest.raises(ValueError, match="action_noise must lie in"):
        make_expert(get_task("gym-cartpole"), 0, action_noise=1.5)
    with pytest.raises(ValueError, match="action_noise must lie in"):
        make_expert(get_task("gym-pendulum"), 0, action_noise=-0.1)
    with pytest.raises(ValueError, match="action_noise must be non-negative"):
        CollectConfig("gym-pendulum", 2, action_noise=-1.0)
    with pytest.raises(ValueError, match="action_noise must be a non-negative number"):
        load_registry(_registry_with_entry(tmp_path, "action_noise = -0.5"))


def _registry_with_entry(folder, line: str) -> str:
    """The shipped registry plus a pendulum task with one more line."""
    return _registry_with(
        folder,
        '[tasks.test-pendulum]\nsuite = "gym"\nenv = { id = "Pendulum-v1" }\n'
        "observation = { continuous_observations = { shape = [3] } }\n"
        'action = { kind = "continuous", shape = [1] }\nepisode_limit = 200\n'
        f'expert = "pendulum-energy"\n{line}\n',
    )


def test_collection_records_the_noisy_actions_it_played(tmp_path):
    registry = _registry_with_entry(tmp_path, "action_noise = 0.4")
    task = load_registry(registry)["test-pendulum"]
    assert task.action_noise == 0.4
    out = tmp_path / "noisy"
    result = collect(
        CollectConfig("test-pendulum", 2, output=str(out), seed=5, progress=False,
                      registry=registry, filter=False)
    )  # fmt: skip
    assert result.metadata["action_noise"] == 0.4
    episodes = load_episodes(out)
    for index, seed in enumerate((5, 6)):
        with make_env(task) as env:
            expert = make_expert(task, seed, action_noise=0.4)
            obs, played = env.reset(seed=seed), []
            for _ in range(len(episodes[index]["rewards"])):
                played.append(expert.act(obs, env))
                obs = env.step(played[-1]).observation
        np.testing.assert_array_equal(episodes[index]["continuous_actions"], np.stack(played))
    clean = collect(
        CollectConfig("test-pendulum", 1, output=str(tmp_path / "clean"), seed=5,
                      progress=False, registry=registry, action_noise=0.0)
    )  # fmt: skip
    assert clean.metadata["action_noise"] == 0.0
    assert not np.array_equal(
        load_episodes(tmp_path / "clean")[0]["continuous_actions"],
        episodes[0]["continuous_actions"],
    )


def test_nothing_written_when_no_episode_passes_the_filter(tmp_path):
    from gato.data.collect import NothingKeptError

    # A random "expert" against an expert score of 500: no episode reaches 400.
    registry = _registry_with(
        tmp_path,
        '[tasks.test-cartpole]\nsuite = "gym"\nenv = { id = "CartPole-v1" }\n'
        "observation = { continuous_observations = { shape = [4] } }\n"
        'action = { kind = "discrete", num_values = 2 }\nepisode_limit = 500\n'
        'expert = "random"\nscores = { expert = 500, random = 20 }\n',
    )
    with pytest.raises(NothingKeptError, match="no episode reached the filter threshold"):
        collect(
            CollectConfig("test-cartpole", 3, output=str(tmp_path / "ds"), progress=False,
                          registry=registry)
        )  # fmt: skip
    assert not (tmp_path / "ds").exists()

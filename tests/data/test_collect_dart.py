"""DART collection: the noisy action is played, the expert's own action is recorded."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pytest

from gato.data import load_episodes
from gato.data.__main__ import main
from gato.data.collect import CollectConfig, collect, noise_setting
from gato.tasks.envs import make_env
from gato.tasks.experts import make_expert
from gato.tasks.registry import DEFAULT_REGISTRY_PATH, get_task, load_registry


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _registry_with(folder, line: str) -> str:
    """The shipped registry plus a pendulum task with one more line."""
    path = folder / "tasks.toml"
    path.write_text(
        DEFAULT_REGISTRY_PATH.read_text()
        + '\n[tasks.test-pendulum]\nsuite = "gym"\nenv = { id = "Pendulum-v1" }\n'
        "observation = { continuous_observations = { shape = [3] } }\n"
        'action = { kind = "continuous", shape = [1] }\nepisode_limit = 200\n'
        f'expert = "pendulum-energy"\n{line}\n'
    )
    tasks = folder / "tasks"
    if not tasks.exists():  # the root file's includes
        shutil.copytree(DEFAULT_REGISTRY_PATH.parent / "tasks", tasks)
    return str(path)


def _replay_dart(task, seed, noise):
    """(observations, played, clean expert actions) of a DART episode, step by step."""
    expert = make_expert(task, seed, action_noise=noise, record="expert")
    observations, played, labels = [], [], []
    with make_env(task) as env:
        obs = env.reset(seed=seed)
        while True:
            action, label = expert.act_and_label(obs, env)
            observations.append(obs["continuous_observations"])
            played.append(action)
            labels.append(label)
            step = env.step(action)
            obs = step.observation
            if step.terminated or step.truncated:
                return np.stack(observations), np.stack(played), np.stack(labels)


def test_dart_records_the_clean_expert_action_in_the_states_noise_led_to(tmp_path):
    task = get_task("gym-pendulum")
    result = collect(
        CollectConfig("gym-pendulum", 2, output=str(tmp_path / "dart"), seed=4, dart=0.5,
                      progress=False, filter=False)
    )  # fmt: skip
    assert result.metadata["dart"] == 0.5 and result.metadata["action_noise"] == 0.0
    assert json.loads(load_episodes(tmp_path / "dart").info.description)["dart"] == 0.5
    episodes = load_episodes(tmp_path / "dart")
    for index, seed in enumerate((4, 5)):
        observations, played, labels = _replay_dart(task, seed, 0.5)
        np.testing.assert_array_equal(episodes[index]["continuous_observations"], observations)
        np.testing.assert_array_equal(episodes[index]["continuous_actions"], labels)
        # The recorded actions are the clean expert's, not the played ones ...
        assert np.abs(played - labels).mean() > 0.2
        # ... and the clean expert's in exactly those states: a fresh expert agrees (this one
        # reads nothing but the observation).
        clean = make_expert(task, seed)
        with make_env(task) as env:
            again = [clean.act({"continuous_observations": o}, env) for o in observations]
        np.testing.assert_allclose(np.clip(np.stack(again), -1, 1), labels, atol=1e-6)
    # The states differ from a noiseless run: noise was played.
    plain = collect(
        CollectConfig("gym-pendulum", 1, output=str(tmp_path / "plain"), seed=4,
                      progress=False, filter=False)
    )  # fmt: skip
    assert plain.metadata["dart"] == 0.0
    assert not np.array_equal(
        load_episodes(tmp_path / "plain")[0]["continuous_observations"],
        episodes[0]["continuous_observations"],
    )


def test_dart_from_the_registry_and_the_command_line(tmp_path):
    registry = _registry_with(tmp_path, "dart = 0.3")
    task = load_registry(registry)["test-pendulum"]
    assert task.dart == 0.3 and task.action_noise == 0.0
    assert noise_setting(task, None, None) == (0.3, "expert")
    assert noise_setting(task, None, 0.0) == (0.0, "played")  # an explicit 0 turns it off
    assert noise_setting(task, 0.2, 0.0) == (0.2, "played")
    with pytest.raises(ValueError, match="both set"):
        noise_setting(task, 0.2, None)
    out = tmp_path / "cli"
    main(["collect", "--task", "gym-pendulum", "--episodes", "1", "--dart", "0.4",
          "--filter", "false", "--output", str(out), "--quiet"])  # fmt: skip
    meta = json.loads(load_episodes(out).info.description)
    assert meta["dart"] == 0.4 and meta["action_noise"] == 0.0


def test_dart_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="dart must be non-negative"):
        CollectConfig("gym-pendulum", 2, dart=-0.1)
    with pytest.raises(ValueError, match="action_noise .* and dart .* both set"):
        CollectConfig("gym-pendulum", 2, dart=0.1, action_noise=0.2)
    with pytest.raises(ValueError, match="dart must be a non-negative number"):
        load_registry(_registry_with(tmp_path, "dart = -1"))
    with pytest.raises(ValueError, match="action_noise and dart both set"):
        load_registry(_registry_with(tmp_path, "dart = 0.1\naction_noise = 0.1"))
    with pytest.raises(ValueError, match="record must be one of"):
        make_expert(get_task("gym-pendulum"), 0, action_noise=0.1, record="clean")

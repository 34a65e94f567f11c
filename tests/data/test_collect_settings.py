"""Collection under other settings than the registry's: an Atari protocol (sticky actions) and
expert parameters, played as asked, recorded in the dataset's info, refused where they do not
apply."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pytest

from gato.data import load_episodes
from gato.data.__main__ import main
from gato.data.collect import (
    CollectConfig,
    SettingsError,
    collect,
    parse_params,
    with_settings,
)
from gato.tasks.envs import make_env
from gato.tasks.experts import check_param_types, make_expert
from gato.tasks.registry import DEFAULT_REGISTRY_PATH, load_registry

BREAKOUT = (
    '[tasks.test-breakout]\nsuite = "atari"\nenv = { game = "Breakout" }\n'
    'action = { num_values = 4 }\nexpert = "breakout-ram"\nepisode_limit = 60\n'
    '[tasks.test-pong]\nsuite = "atari"\nenv = { game = "Pong" }\naction = { num_values = 6 }\n'
    'expert = "pong-ram"\nexpert_params = { dead_zone = 8.0 }\nepisode_limit = 60\n'
    '[tasks.test-no-expert]\nsuite = "atari"\nenv = { game = "Breakout" }\n'
    "action = { num_values = 4 }\nepisode_limit = 60\n"
)


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "tasks.toml"
    path.write_text(DEFAULT_REGISTRY_PATH.read_text() + "\n" + BREAKOUT)
    shutil.copytree(DEFAULT_REGISTRY_PATH.parent / "tasks", tmp_path / "tasks")
    return str(path)


def _replay(task, seed, env_kwargs, expert_params):
    """(frames, actions, rewards) of the episode played straight through the adapter built
    with `env_kwargs`, by the expert built with `expert_params`."""
    expert = make_expert(with_settings(task, {}, task.expert, expert_params), seed)
    frames, actions, rewards = [], [], []
    with make_env(task, **env_kwargs) as env:
        observation = env.reset(seed=seed)
        while True:
            action = expert.act(observation, env)
            frames.append(observation["image_observations"])
            actions.append(action)
            step = env.step(action)
            observation = step.observation
            rewards.append(step.reward)
            if step.terminated or step.truncated:
                return np.stack(frames), np.array(actions), rewards


def test_parse_params_reads_toml_values_and_keeps_other_text():
    assert parse_params(["horizon=6", "offset_up = 12.0", "walls=[40, 200]", "flag=true"]) == {
        "horizon": 6,
        "offset_up": 12.0,
        "walls": [40, 200],
        "flag": True,
    }
    assert parse_params(["name=pong", 'quoted="a b"']) == {"name": "pong", "quoted": "a b"}
    for bad in ("horizon", "=6"):
        with pytest.raises(ValueError, match=rf"expert parameter '{bad}': expected key=value"):
            parse_params([bad])


def test_sticky_collection_plays_and_records_the_protocol_and_parameters(tmp_path, registry):
    task = load_registry(registry)["test-breakout"]
    out = tmp_path / "sticky"
    result = collect(
        CollectConfig(
            task.id, 1, output=str(out), seed=5, progress=False, registry=registry,
            atari_protocol="sticky", atari_options=["noop_max=0"], expert_params=["offset=-4.0"],
        )
    )  # fmt: skip
    sticky = {"repeat_action_probability": 0.25, "noop_max": 0}
    assert {k: result.metadata["env"][k] for k in sticky} == sticky
    assert result.metadata["env"]["game"] == "Breakout"
    assert result.metadata["expert_params"] == {"offset": -4.0}
    info = json.loads(load_episodes(out, task=task).info.description)
    assert info["env"] == result.metadata["env"] and info["expert_params"] == {"offset": -4.0}
    row = load_episodes(out, task=task)[0]
    frames, actions, _ = _replay(task, 5, sticky, {"offset": -4.0})
    np.testing.assert_array_equal(row["image_observations"], frames)
    np.testing.assert_array_equal(row["discrete_actions"], actions)
    # The registry's settings give other games: the protocol and the parameters were played.
    plain, _, _ = _replay(task, 5, {}, {})
    assert plain.shape != frames.shape or not np.array_equal(plain, frames)


def test_another_policy_gets_the_given_parameters_not_the_registry_experts(tmp_path, registry):
    # test-pong's registry expert is pong-ram (dead_zone 8); pong-frames has no dead zone.
    task = load_registry(registry)["test-pong"]
    out = tmp_path / "frames"
    result = collect(
        CollectConfig(task.id, 1, output=str(out), seed=2, progress=False, registry=registry,
                      policy="pong-frames", expert_params=["horizon=3"])
    )  # fmt: skip
    assert result.metadata["policy"] == "pong-frames"
    assert result.metadata["expert_params"] == {"horizon": 3}
    expert = make_expert(with_settings(task, {}, "pong-frames", {"horizon": 3}), 2)
    assert expert.horizon == 3
    actions = []
    with make_env(task) as env:
        observation = env.reset(seed=2)
        for _ in range(task.episode_limit):
            actions.append(expert.act(observation, env))
            observation = env.step(actions[-1]).observation
    np.testing.assert_array_equal(load_episodes(out, task=task)[0]["discrete_actions"], actions)


def test_workers_play_the_same_settings(tmp_path, registry):
    common = dict(
        episodes=2, seed=9, progress=False, registry=registry, atari_protocol="sticky",
        expert_params=["offset=-4.0"],
    )  # fmt: skip
    one = collect(CollectConfig("test-breakout", output=str(tmp_path / "a"), **common))
    two = collect(CollectConfig("test-breakout", output=str(tmp_path / "b"), workers=2, **common))
    assert one.returns == two.returns
    for a, b in zip(load_episodes(tmp_path / "a"), load_episodes(tmp_path / "b"), strict=True):
        np.testing.assert_array_equal(a["image_observations"], b["image_observations"])


def test_settings_that_do_not_apply_are_refused(tmp_path, registry):
    out = str(tmp_path / "x")
    with pytest.raises(ValueError, match=r"unknown Atari protocol 'slippery'"):
        CollectConfig("atari-pong", 1, output=out, atari_protocol="slippery")
    with pytest.raises(ValueError, match=r"expert parameter 'horizon': expected key=value"):
        CollectConfig("atari-pong", 1, output=out, expert_params=["horizon"])
    with pytest.raises(ValueError, match=r"task 'gym-cartpole' is a gym task, not Atari"):
        collect(CollectConfig("gym-cartpole", 1, output=out, atari_protocol="sticky"))
    with pytest.raises(ValueError, match=r"bad expert_params for 'random'.*gain"):
        collect(CollectConfig("gym-cartpole", 1, output=out, policy="random",
                              expert_params=["gain=2"]))  # fmt: skip
    with pytest.raises(ValueError, match=r"bad expert_params for 'breakout-ram'.*no_such"):
        collect(
            CollectConfig("test-breakout", 1, output=out, registry=registry, progress=False,
                          expert_params=["no_such=1"])
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"task 'test-no-expert' has no expert; pass a policy"):
        collect(CollectConfig("test-no-expert", 1, output=out, registry=registry))
    with pytest.raises(SettingsError, match=r"parameter horizon='' must be an int, got str"):
        collect(CollectConfig("atari-pong", 1, output=out, policy="pong-frames",
                              expert_params=["horizon="]))  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_cli_passes_the_protocol_and_refuses_it_for_suites(tmp_path, registry, capsys):
    out = tmp_path / "cli"
    args = ["collect", "--registry", registry, "--task", "test-breakout", "--episodes", "1",
            "--output", str(out), "--quiet", "--atari_protocol", "sticky",
            "--expert_params", "offset=-4.0"]  # fmt: skip
    assert main(args) == 0
    info = json.loads(load_episodes(out).info.description)
    assert info["env"]["repeat_action_probability"] == 0.25
    assert info["expert_params"] == {"offset": -4.0}
    assert main(["collect", "--suite", "atari", "--atari_protocol", "sticky"]) != 0
    assert "--atari_protocol go with --task" in capsys.readouterr().err


def test_score_measures_a_policy_under_a_protocol_and_will_not_write_it(registry, capsys):
    args = ["score", "--registry", registry, "--task", "test-breakout", "--expert_episodes",
            "1", "--random_episodes", "1", "--quiet", "--atari_protocol", "sticky",
            "--expert_params", "offset=-4.0"]  # fmt: skip
    assert main(args) == 0
    task = load_registry(registry)["test-breakout"]
    played = with_settings(task, {"repeat_action_probability": 0.25}, task.expert, {"offset": -4.0})
    expected = sum(_replay(played, 1_000_000, {}, {})[2])
    assert f"test-breakout: expert {expected:.4g} " in capsys.readouterr().out
    assert main([*args, "--write"]) != 0
    assert "--write stores the registry's own scores" in capsys.readouterr().err
    assert main([*args[:-4], "--atari_protocol", "sticky", "--task", "gym-cartpole"]) == 2
    assert "error: atari protocol: task 'gym-cartpole' is a gym task" in capsys.readouterr().err


def test_cli_reports_a_bad_setting_before_playing(tmp_path, capsys):
    out = tmp_path / "never"
    base = ["collect", "--task", "atari-pong", "--episodes", "1", "--output", str(out), "--quiet"]
    cases = [
        (["--policy", "pong-frames", "--expert_params", "horizon="],
         "error: expert 'pong-frames': parameter horizon='' must be an int, got str"),
        (["--policy", "pong-frames", "--expert_params", "offset_up=true"],
         "parameter offset_up=True must be a number, got bool"),
        (["--atari_protocol", "slippery"], "error: unknown Atari protocol 'slippery'"),
        (["--expert_params", "no_such=1"], "bad expert_params for 'pong-frames'"),
    ]  # fmt: skip
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_expert_parameters_are_checked_against_their_annotations():
    def factory(task, gain: float = 1.0, steps: int = 3, on: bool = True,
                walls: tuple[float, float] = (0.0, 1.0), name: str = "a", free=None):  # fmt: skip
        return None

    good = {"gain": 2, "steps": 4, "on": False, "walls": [1, 2.5], "name": "b", "free": "x"}
    check_param_types(factory, good, "f")
    bad = [
        ({"gain": "fast"}, r"parameter gain='fast' must be a number, got str"),
        ({"gain": True}, r"parameter gain=True must be a number, got bool"),
        ({"steps": 2.0}, r"parameter steps=2.0 must be an int, got float"),
        ({"on": 1}, r"parameter on=1 must be true or false, got int"),
        ({"walls": [1, 2, 3]},
         r"parameter walls=\[1, 2, 3\] must be a list \(tuple\[float, float\]\)$"),
        ({"walls": ["a", 1]}, r"parameter walls=\['a', 1\] must be a list"),
        ({"name": 3}, r"parameter name=3 must be a string, got int"),
    ]  # fmt: skip
    for params, message in bad:
        with pytest.raises(ValueError, match=rf"expert 'f': {message}"):
            check_param_types(factory, params, "f")

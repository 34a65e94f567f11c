"""The full suites: registry coverage, the optional BabyAI and Meta-World adapters and experts,
clear errors when their packages are missing, and whole-suite collection (estimate, resume).

BabyAI needs `minigrid` and Meta-World `metaworld` (with mujoco < 3.17); their tests skip when
the package is absent. The checks of every task against the random policy are slow
(`pytest -m slow`); `benchmarks/suite_scores.py` prints the same comparison as a table.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil

import datasets
import numpy as np
import pytest

from gato.data import load_episodes
from gato.data.__main__ import main
from gato.data.collect import play_episodes
from gato.tasks import envs as envs_module
from gato.tasks.envs import MissingPackageError, make_env, require_suite
from gato.tasks.registry import DEFAULT_REGISTRY_PATH, get_task, load_registry


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _available(suite: str) -> bool:
    return envs_module.missing_package(suite) is None


def _metaworld_runs() -> bool:
    if not _available("metaworld"):
        return False
    import mujoco

    return tuple(int(p) for p in mujoco.__version__.split(".")[:2]) < (3, 17)


needs_babyai = pytest.mark.skipif(not _available("babyai"), reason="needs minigrid (gato[babyai])")
needs_metaworld = pytest.mark.skipif(
    not _metaworld_runs(), reason="needs metaworld (gato[metaworld]) and mujoco < 3.17"
)


# ---------------------------------------------------------------------------------------------
# Registry coverage
# ---------------------------------------------------------------------------------------------


def test_registry_counts_per_suite():
    registry = load_registry()
    by_suite = {s: registry.by_suite(s) for s in registry.suites}
    assert len(registry) >= 150
    assert sum(t.has_offline_expert for t in registry.values()) >= 100
    assert len(by_suite["atari"]) == 57
    assert len(by_suite["metaworld"]) == 50
    assert all(t.expert == "metaworld-policy" for t in by_suite["metaworld"])
    assert len(by_suite["babyai"]) >= 39
    assert sum(t.expert == "babyai-bot" for t in by_suite["babyai"]) >= 39
    mujoco = {t.env["id"] for t in by_suite["gym"]}
    jat_mujoco = {"Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup", "Pusher"}
    jat_mujoco |= {"Reacher", "Swimmer", "Walker2d", "InvertedPendulum", "InvertedDoublePendulum"}
    assert {f"{name}-v5" for name in jat_mujoco} <= mujoco
    os.environ.setdefault("MUJOCO_GL", "egl")  # as the adapter does: no display here
    from dm_control import suite

    registered = {(t.env["domain"], t.env["task"]) for t in by_suite["dmc"]}
    assert set(suite.ALL_TASKS) <= registered


def test_babyai_and_metaworld_ids_are_unique_and_follow_jat_names():
    registry = load_registry()
    levels = [t.env["level"] for t in registry.by_suite("babyai")]
    assert len(levels) == len(set(levels))
    assert get_task("babyai-go-to-red-ball-grey").env["level"] == "BabyAI-GoToRedBallGrey-v0"
    assert get_task("babyai-move-two-across-s8n9").env["level"] == "BabyAI-MoveTwoAcrossS8N9-v0"
    assert get_task("metaworld-button-press-topdown").env["name"] == "button-press-topdown-v3"
    babyai = get_task("babyai-boss-level")
    assert babyai.observation_columns == ("text_observations", "discrete_observations")
    assert babyai.observation["discrete_observations"].shape == (148,)
    assert babyai.action.num_values == 7 and babyai.episode_limit > 0
    # Levels the bot cannot solve have no expert; JAT has no KeyInBox config to read instead.
    key_in_box = get_task("babyai-key-in-box")
    assert key_in_box.expert is None and key_in_box.dataset_config is None


# ---------------------------------------------------------------------------------------------
# Bad input: a suite whose package is missing
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def without_package(monkeypatch):
    """Pretend some modules are not installed (whatever this machine has)."""
    hidden: set[str] = set()
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in hidden:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(envs_module.importlib.util, "find_spec", find_spec)
    return hidden


@pytest.mark.parametrize(
    ("task_id", "module", "extra"),
    [
        ("babyai-go-to-red-ball", "minigrid", "babyai"),
        ("metaworld-reach", "metaworld", "metaworld"),
    ],
)
def test_missing_package_is_named_not_a_traceback(without_package, capsys, task_id, module, extra):
    without_package.add(module)
    task = get_task(task_id)
    with pytest.raises(
        MissingPackageError, match=rf"needs the package '{module}'.*gato\[{extra}\]"
    ):
        make_env(task)
    with pytest.raises(MissingPackageError, match=module):
        require_suite(task.suite)
    assert main(["collect", "--suite", task.suite, "--episodes", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: suite") and module in err and "Traceback" not in err
    assert main(["collect", "--task", task_id, "--episodes", "1", "--quiet"]) == 2
    assert f"gato[{extra}]" in capsys.readouterr().err
    assert main(["tasks", "--suite", task.suite]) == 0  # listing needs no simulator


def test_metaworld_refuses_a_mujoco_it_cannot_run_on(monkeypatch):
    if not _available("metaworld"):
        pytest.skip("needs metaworld")
    import mujoco

    monkeypatch.setattr(mujoco, "__version__", "3.17.0")
    with pytest.raises(MissingPackageError, match=r"mujoco < 3.17.*mujoco==3.16.0"):
        make_env(get_task("metaworld-reach"))


# ---------------------------------------------------------------------------------------------
# BabyAI
# ---------------------------------------------------------------------------------------------


@needs_babyai
def test_babyai_observations_follow_the_jat_layout():
    task = get_task("babyai-go-to-red-ball")
    with make_env(task) as env:
        obs = env.reset(seed=3)
        raw = env.unwrapped.gen_obs()
        assert obs["text_observations"] == raw["mission"] and "red ball" in raw["mission"]
        discrete = obs["discrete_observations"]
        assert discrete.dtype == np.int64 and discrete.shape == (148,)
        assert discrete[0] == raw["direction"]
        np.testing.assert_array_equal(discrete[1:], raw["image"].reshape(-1))
        again = env.reset(seed=3)
        np.testing.assert_array_equal(again["discrete_observations"], discrete)
        with pytest.raises(ValueError, match="outside"):
            env.step(7)


@needs_babyai
def test_babyai_bot_solves_a_level_random_does_not():
    task = get_task("babyai-pickup-loc")
    expert = [r.episode_return for r in play_episodes(task, [0, 1, 2], progress=False)]
    rand = [r.episode_return for r in play_episodes(task, [0, 1, 2], "random", progress=False)]
    assert min(expert) > 0.5 and np.mean(rand) < 0.3


# ---------------------------------------------------------------------------------------------
# Meta-World
# ---------------------------------------------------------------------------------------------


@needs_metaworld
def test_metaworld_adapter_seeds_placements():
    task = get_task("metaworld-reach")
    with make_env(task) as env:
        first = env.reset(seed=1)["continuous_observations"]
        assert first.dtype == np.float32 and first.shape == (39,)
        assert not np.array_equal(env.reset(seed=2)["continuous_observations"][-3:], first[-3:])
        np.testing.assert_array_equal(env.reset(seed=1)["continuous_observations"], first)
        step = env.step(np.zeros(4, dtype=np.float32))
        assert 0.0 <= step.reward <= 10.0 and "success" in env.last_info


@needs_metaworld
def test_metaworld_policy_reaches_random_does_not():
    task = dataclasses.replace(get_task("metaworld-reach"), episode_limit=150)
    expert = [r.episode_return for r in play_episodes(task, [0, 1], progress=False)]
    rand = [r.episode_return for r in play_episodes(task, [0, 1], "random", progress=False)]
    assert min(expert) > 2 * max(rand)


# ---------------------------------------------------------------------------------------------
# Every expert of the optional suites against random (slow)
# ---------------------------------------------------------------------------------------------


def _suite_tasks(suite: str) -> list[str]:
    return [t.id for t in load_registry().by_suite(suite) if t.has_offline_expert]


def _beats_random(task_id: str, expert_seeds: list[int], random_seeds: list[int]) -> None:
    """Expert mean above the random mean by 20% of its size. Random returns have the wider
    spread (a lucky Meta-World random episode can press a handle early and keep it down), so the
    random policy plays more seeds."""
    task = get_task(task_id)
    expert = [r.episode_return for r in play_episodes(task, expert_seeds, progress=False)]
    rand = [r.episode_return for r in play_episodes(task, random_seeds, "random", progress=False)]
    expert_mean, random_mean = float(np.mean(expert)), float(np.mean(rand))
    assert expert_mean > random_mean + 0.2 * abs(random_mean) + 1e-3, (expert, rand)


@pytest.mark.slow
@needs_babyai
@pytest.mark.parametrize("task_id", _suite_tasks("babyai"))
def test_every_babyai_expert_beats_random(task_id):
    _beats_random(task_id, [10, 11, 12], list(range(10, 16)))


@pytest.mark.slow
@needs_metaworld
@pytest.mark.parametrize("task_id", _suite_tasks("metaworld"))
def test_every_metaworld_expert_beats_random(task_id):
    _beats_random(task_id, [10, 11, 12], list(range(10, 18)))


@pytest.mark.slow
def test_every_dmc_task_matches_its_registered_spec():
    for task in load_registry().by_suite("dmc"):
        with make_env(task) as env:
            env.reset(seed=0)  # ObservationError when the registered shape is wrong
            env.step(np.zeros(task.action.shape, dtype=np.float32))  # so is a wrong action


# ---------------------------------------------------------------------------------------------
# Whole-suite collection
# ---------------------------------------------------------------------------------------------

SMALL = """
[suites.gym]
episode_limit = 200

[tasks.gym-cartpole]
suite = "gym"
env = {{ id = "CartPole-v1" }}
observation = {{ continuous_observations = {{ shape = [4] }} }}
action = {{ kind = "discrete", num_values = 2 }}
expert = "cartpole-pd"
dataset = "{root}/cartpole"

[tasks.gym-mountaincar]
suite = "gym"
env = {{ id = "MountainCar-v0" }}
observation = {{ continuous_observations = {{ shape = [2] }} }}
action = {{ kind = "discrete", num_values = 3 }}
expert = "mountain-car-pump"
dataset = "{root}/mountaincar"

[tasks.gym-acrobot]
suite = "gym"
env = {{ id = "Acrobot-v1" }}
observation = {{ continuous_observations = {{ shape = [6] }} }}
action = {{ kind = "discrete", num_values = 3 }}
"""


def test_collect_suite_estimates_then_resumes_task_by_task(tmp_path, capsys, monkeypatch):
    registry = tmp_path / "tasks.toml"
    registry.write_text(SMALL.format(root=tmp_path))
    base = ["collect", "--registry", str(registry), "--episodes", "2", "--quiet"]
    assert main([*base, "--suite", "gym", "--estimate-only"]) == 0
    out = capsys.readouterr().out
    assert "2 tasks to collect, 0 already on disk" in out and "1 without an offline expert" in out
    assert "gym-cartpole: ~200 steps/episode" in out and "on disk" in out
    assert not (tmp_path / "cartpole").exists()  # estimating writes nothing

    # A run that stops after the first task (here: the second one fails) keeps the first.
    import gato.data.collect as collect_module

    real = collect_module.collect

    def fail_on_mountaincar(config):
        if config.task == "gym-mountaincar":
            raise RuntimeError("stopped")
        return real(config)

    monkeypatch.setattr(collect_module, "collect", fail_on_mountaincar)
    assert main([*base, "--suite", "gym"]) == 1
    captured = capsys.readouterr()
    assert "gym-mountaincar: FAILED: stopped" in captured.err
    assert len(load_episodes(tmp_path / "cartpole")) == 2
    assert not (tmp_path / "mountaincar").exists()
    monkeypatch.setattr(collect_module, "collect", real)

    # Run again: the collected task is skipped, the other one is collected.
    stamp = (tmp_path / "cartpole" / "state.json").stat().st_mtime_ns
    assert main([*base, "--all"]) == 0
    out = capsys.readouterr().out
    assert "1 tasks to collect, 1 already on disk" in out and "collected 1/1 tasks" in out
    assert (tmp_path / "cartpole" / "state.json").stat().st_mtime_ns == stamp
    assert len(load_episodes(tmp_path / "mountaincar")) >= 1
    assert main([*base, "--all"]) == 0
    assert "0 tasks to collect, 2 already on disk" in capsys.readouterr().out


def test_collect_suite_bad_input(tmp_path, capsys):
    registry = tmp_path / "tasks.toml"
    registry.write_text(SMALL.format(root=tmp_path))
    base = ["collect", "--registry", str(registry), "--episodes", "1", "--quiet"]
    assert main([*base, "--suite", "nes"]) == 2
    assert "unknown suites ['nes']; suites: gym" in capsys.readouterr().err
    assert main([*base, "--suite", "gym", "--output", str(tmp_path / "x")]) == 2
    assert "--output and --policy go with --task" in capsys.readouterr().err
    assert main([*base, "--all", "--dart", "0.3", "--start_noise", "0.5"]) == 2
    assert "--dart, --start_noise go with --task" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--suite", "gym", "--task", "gym-cartpole"])  # one of --task/--suite/--all


def test_shipped_registry_copy_still_loads(tmp_path):
    """The registry is a folder: the root file and its includes travel together."""
    shutil.copy(DEFAULT_REGISTRY_PATH, tmp_path / "tasks.toml")
    shutil.copytree(DEFAULT_REGISTRY_PATH.parent / "tasks", tmp_path / "tasks")
    assert len(load_registry(tmp_path / "tasks.toml")) == len(load_registry())

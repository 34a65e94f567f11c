"""Environment adapters on real simulators, action scaling, and bad observations."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from gato.files import REPO_ROOT
from gato.tasks.envs import (
    ControlEnv,
    ObservationError,
    bounds_to_unit,
    make_env,
    unit_to_bounds,
)
from gato.tasks.registry import get_task


def _run(env: ControlEnv, steps: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = [env.reset(seed=seed)]
    for _ in range(steps):
        step = env.step(env.sample_action(rng))
        out.append(step)
        if step.terminated or step.truncated:
            break
    return out


def test_atari_adapter_stacks_84x84_grayscale_frames():
    task = get_task("atari-pong")
    with make_env(task) as env:
        first, *steps = _run(env, 8)
        assert first["image_observations"].shape == (84, 84, 4)
        assert first["image_observations"].dtype == np.uint8
        # The first stack repeats the reset frame; later stacks shift by one frame.
        frames = first["image_observations"]
        assert all((frames[..., k] == frames[..., 0]).all() for k in range(4))
        a, b = (
            steps[-2].observation["image_observations"],
            steps[-1].observation["image_observations"],
        )
        np.testing.assert_array_equal(a[..., 1:], b[..., :3])
        assert isinstance(steps[0].reward, float)
        assert env.ram().shape == (128,)
        assert env.action_meanings[:4] == ["NOOP", "FIRE", "RIGHT", "LEFT"]  # minimal set
        # Seeded resets replay exactly (no sticky actions; no-ops drawn from the seed).
        again = _run(env, 8)
        np.testing.assert_array_equal(again[-1].observation["image_observations"], b)


def test_atari_registry_action_count_is_checked():
    task = get_task("atari-breakout")
    bad = dataclasses.replace(task, action=dataclasses.replace(task.action, num_values=18))
    with pytest.raises(ValueError, match="4 actions .minimal set."):
        make_env(bad)


def test_dmc_adapter_flattens_observations_in_key_order():
    task = get_task("dmc-cartpole-swingup")
    with make_env(task) as env:
        obs = env.reset(seed=3)
        state = obs["continuous_observations"]
        assert state.dtype == np.float32 and state.shape == (5,)
        raw = env._env._task.get_observation(env.physics)  # position (3), velocity (2)
        expected = np.concatenate([raw["position"], raw["velocity"]]).astype(np.float32)
        np.testing.assert_allclose(state, expected, rtol=1e-6)
        steps = _run(env, 5, seed=3)
        assert all(isinstance(s.reward, float) for s in steps[1:])
        assert env.substeps == 1
        # Same seed, same initial state.
        np.testing.assert_array_equal(env.reset(seed=3)["continuous_observations"], state)
        assert not np.array_equal(env.reset(seed=4)["continuous_observations"], state)


def test_dmc_time_limit_truncates_at_1000_steps():
    task = dataclasses.replace(get_task("dmc-point_mass-easy"), episode_limit=10_000)
    with make_env(task) as env:
        steps = _run(env, 2000)
        assert len(steps) - 1 == 1000
        assert steps[-1].truncated and not steps[-1].terminated


def test_dmc_pixels_are_optional():
    task = get_task("dmc-cartpole-swingup")
    try:
        env = make_env(task, pixels=True, height=64, width=64)
        obs = env.reset(seed=0)
    except Exception as err:  # no EGL / OSMesa on this machine
        pytest.skip(f"MuJoCo rendering unavailable: {err}")
    image = obs["image_observations"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 0
    env.close()


def test_gym_adapters_classic_control():
    with make_env(get_task("gym-pendulum")) as env:
        obs = env.reset(seed=0)
        assert obs["continuous_observations"].shape == (3,)
        # Canonical 1.0 is the full 2 N m torque.
        np.testing.assert_allclose(env.to_env_action(np.array([1.0])), [2.0])
        np.testing.assert_allclose(env.to_env_action(np.array([-0.5])), [-1.0])
        np.testing.assert_allclose(env.to_env_action(np.array([3.0])), [2.0])  # clipped
        steps = _run(env, 300)
        assert len(steps) - 1 == 200 and steps[-1].truncated  # the registry's episode limit
    with make_env(get_task("gym-cartpole")) as env:
        steps = _run(env, 50)
        assert steps[0]["continuous_observations"].dtype == np.float32
        assert steps[-1].terminated  # random pushes drop the pole quickly


def test_gym_mujoco_adapter():
    pytest.importorskip("imageio")  # gymnasium's MuJoCo environments import it
    with make_env(get_task("gym-inverted-pendulum")) as env:
        steps = _run(env, 3)
        assert steps[0]["continuous_observations"].shape == (4,)
        assert env.unwrapped.model.nq == 2


def test_episode_limit_from_the_registry():
    task = dataclasses.replace(get_task("gym-cartpole"), episode_limit=5)
    with make_env(task) as env:
        env.reset(seed=0)
        results = [env.step(1 if k % 2 else 0) for k in range(5)]
        assert [r.truncated for r in results] == [False] * 4 + [True]


def test_bad_actions_are_rejected():
    with make_env(get_task("gym-cartpole")) as env:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="outside"):
            env.step(2)
    with make_env(get_task("gym-pendulum")) as env:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(3))
        with pytest.raises(ValueError, match="non-finite"):
            env.step(np.array([np.nan]))


def test_action_scaling_round_trip():
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
    unit = np.array([-1.0, 0.5])
    np.testing.assert_allclose(unit_to_bounds(unit, low, high), [-2.0, 7.5])
    np.testing.assert_allclose(bounds_to_unit(unit_to_bounds(unit, low, high), low, high), unit)


class _FakeEnv(ControlEnv):
    """Serves a scripted list of observations, to check the adapter's validation."""

    def __init__(self, task, observations):
        super().__init__(task)
        self._observations = list(observations)

    def _reset(self, seed):
        return self._observations.pop(0)

    def _step(self, action):
        return self._observations.pop(0), 0.0, False, False


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (
            np.array([0.0, np.nan, 0.0, 0.0], np.float32),
            r"step 1, field 'continuous_observations': non-finite values at indices \[1\]",
        ),
        (np.zeros(5, np.float32), r"step 1, .*expected shape \(4,\), got \(5,\)"),
        (np.zeros(4, np.float64), r"step 1, .*expected a float32 array, got float64"),
        ([0.0, 0.0, 0.0, 0.0], r"step 1, .*expected a float32 array, got list"),
    ],  # fmt: skip
)
def test_bad_observations_name_task_step_and_field(bad, match):
    task = get_task("gym-cartpole")
    good = {"continuous_observations": np.zeros(4, np.float32)}
    env = _FakeEnv(task, [good, {"continuous_observations": bad}])
    env.reset()
    with pytest.raises(ObservationError, match=match) as err:
        env.step(0)
    assert "task 'gym-cartpole'" in str(err.value)
    assert err.value.step == 1 and err.value.field == "continuous_observations"


def test_non_finite_reward():
    task = get_task("gym-cartpole")
    good = {"continuous_observations": np.zeros(4, np.float32)}

    class _NaNReward(_FakeEnv):
        def _step(self, action):
            return self._observations.pop(0), float("nan"), False, False

    env = _NaNReward(task, [good, good])
    env.reset()
    with pytest.raises(ObservationError, match="step 1, field 'reward': got nan"):
        env.step(0)


def test_missing_observation_field():
    env = _FakeEnv(get_task("gym-cartpole"), [{"image_observations": np.zeros((2, 2, 1))}])
    with pytest.raises(ObservationError, match="step 0, field 'continuous_observations': missing"):
        env.reset()


def test_unknown_suite():
    task = dataclasses.replace(get_task("gym-cartpole"), suite="nes")
    with pytest.raises(ValueError, match="no adapter for suite 'nes'"):
        make_env(task)


def test_importing_envs_and_experts_imports_no_simulator_and_no_rl():
    # A fresh interpreter: this one has loaded every suite by now.
    code = (
        "import sys\n"
        "import gato.tasks.envs, gato.tasks.experts\n"
        "before = set(sys.modules)\n"
        "from gato.tasks.registry import get_task\n"
        "gato.tasks.envs.make_env(get_task('gym-cartpole')).close()\n"
        "gato.tasks.experts.make_expert(get_task('gym-cartpole'))\n"
        "print(' '.join(sorted(before)))\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    path = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    before, after = (line.split() for line in result.stdout.splitlines()[-2:])
    heavy = ("ale_py", "dm_control", "minigrid", "metaworld", "gymnasium", "mujoco", "gato.rl")
    assert [m for m in before if m.startswith(heavy)] == []
    # A gym task imports its suite's adapter and expert module, and no other suite's.
    assert "gato.tasks.envs.gym" in after and "gato.tasks.experts.classic" in after
    others = ("ale_py", "dm_control", "minigrid", "metaworld", "gato.rl", "gato.tasks.envs.atari")
    assert [m for m in after if m.startswith(others)] == []


def _bounded_tasks() -> list[str]:
    """Every continuous gymnasium task of the shipped registry, and dm-control's two kinds of
    bounds other than [-1, 1] (per element, and LQR's unbounded)."""
    from gato.tasks.registry import load_registry

    gym_tasks = [
        t.id for t in load_registry().values() if t.suite == "gym" and t.action.kind == "continuous"
    ]
    return [*gym_tasks, "dmc-quadruped-walk", "dmc-lqr-lqr_2_1"]


@pytest.mark.parametrize("task_id", _bounded_tasks())
def test_registry_action_bounds_are_the_environments(task_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    # Raw-scale datasets are tokenized, and policies act, by the registry's bounds.
    task = get_task(task_id)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            env = make_env(task)
    except ImportError as err:
        pytest.skip(f"{task_id}: {err}")
    with env:
        assert not [w for w in caught if "no action bounds" in str(w.message)]
        low, high = task.action.bounds()
        np.testing.assert_allclose(env.action_bounds[0].reshape(low.shape), low, rtol=1e-6)
        np.testing.assert_allclose(env.action_bounds[1].reshape(high.shape), high, rtol=1e-6)


def test_a_registry_without_the_environments_bounds_is_announced():
    spec = dataclasses.replace(get_task("gym-pendulum").action, low=None, high=None)
    task = dataclasses.replace(get_task("gym-pendulum"), action=spec)
    with pytest.warns(UserWarning, match=r"no action bounds but the environment's are low=\[-2"):
        env = make_env(task)
    with env:  # the adapter still rescales to the environment's bounds, as it always did
        np.testing.assert_allclose(env.to_env_action(np.array([1.0])), [2.0])


def test_registry_bounds_that_disagree_with_the_environment_are_refused():
    spec = dataclasses.replace(get_task("gym-pendulum").action, low=(-1.0,), high=(1.0,))
    task = dataclasses.replace(get_task("gym-pendulum"), action=spec)
    with pytest.raises(ValueError, match=r"bounds are low=\[-2.0\], high=\[2.0\] but the registry"):
        make_env(task)


@pytest.mark.slow
def test_pong_games_end_before_the_consoles_score_reset():
    """At emulator frame 65,212 of every Pong game the console sets the opponent's score to 1,
    and ALE pays the drop as one reward (+19 from 20): the registry ends Pong's games before."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    env = gym.make(
        "ALE/Pong-v5",
        frameskip=4,
        repeat_action_probability=0.0,
        max_num_frames_per_episode=100_000,
        disable_env_checker=True,
    )
    env.reset(seed=0)
    ale = env.unwrapped.ale
    rng = np.random.default_rng(0)
    drops = []
    for step in range(16_400):
        if step % 150 == 0:  # random play loses 21-0 in ~800 steps: keep the game going
            ale.setRAM(13, 3)
            ale.setRAM(14, 0)
        before = int(ale.getRAM()[13])
        _, reward, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
        assert not (terminated or truncated)
        if int(ale.getRAM()[13]) < before:
            drops.append((ale.getEpisodeFrameNumber(), int(ale.getRAM()[13]), reward))
    env.close()
    assert drops, "no drop of the opponent's score"
    frame, score, reward = drops[0]  # (later ones: the console holds it at 1 against our writes)
    assert frame == 65_212 and score == 1 and reward >= 2
    pong = get_task("atari-pong")
    assert pong.episode_limit * pong.env["frame_skip"] + pong.env["noop_max"] < frame

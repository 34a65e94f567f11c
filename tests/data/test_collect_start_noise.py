"""Wider start states for collection: joint noise after the task's own reset."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest

from gato.data import load_episodes
from gato.data.__main__ import main
from gato.data.collect import CollectConfig, collect
from gato.tasks.envs import make_env
from gato.tasks.registry import get_task, load_registry
from tests.data.test_collect_dart import _registry_with


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def test_start_noise_moves_the_joints_and_nothing_else():
    task = get_task("dmc-cartpole-swingup")
    with make_env(task) as env:
        plain = env.reset(seed=7)["continuous_observations"]
        qpos, qvel = env.physics.data.qpos.copy(), env.physics.data.qvel.copy()
        wide = env.reset(seed=7, start_noise=0.5)["continuous_observations"]
        moved = env.physics.data.qpos.copy()
        # The same perturbation drawn by hand from the documented stream, one draw per joint.
        rng = np.random.default_rng([7, 0x57A27])
        expected = qpos + rng.normal(0.0, 0.5, size=2)
        np.testing.assert_allclose(moved, expected)
        np.testing.assert_array_equal(env.physics.data.qvel, qvel)  # velocities untouched
        # The observation is the moved state's: cart x, cos and sin of the pole, velocities.
        np.testing.assert_allclose(
            wide, [moved[0], np.cos(moved[1]), np.sin(moved[1]), *qvel], rtol=1e-5, atol=1e-6
        )
        assert not np.allclose(wide, plain)
        # Reproducible, and off by default.
        np.testing.assert_array_equal(
            env.reset(seed=7, start_noise=0.5)["continuous_observations"], wide
        )
        np.testing.assert_array_equal(env.reset(seed=7)["continuous_observations"], plain)
        # The rail's limits hold: a huge noise leaves the cart on its rail.
        for seed in range(5):
            env.reset(seed=seed, start_noise=100.0)
            assert abs(env.physics.data.qpos[0]) <= 1.8 + 1e-9


def test_start_noise_fails_clearly_where_it_cannot_apply():
    with make_env(get_task("gym-pendulum")) as env:
        with pytest.raises(
            ValueError, match="start_noise needs the simulator's joint state.*'gym'"
        ):
            env.reset(seed=0, start_noise=0.1)
    with make_env(get_task("dmc-cartpole-swingup")) as env:
        for bad in (-0.1, float("nan"), float("inf"), "0.1", True):
            with pytest.raises(ValueError, match="start_noise must be a finite non-negative"):
                env.reset(seed=0, start_noise=bad)
    with pytest.raises(ValueError, match="start_noise must be finite and non-negative"):
        CollectConfig("dmc-cartpole-swingup", 2, start_noise=-1.0)


def test_collection_records_episodes_from_the_wider_starts(tmp_path):
    task = get_task("dmc-cartpole-swingup")
    out = tmp_path / "wide"
    result = collect(
        CollectConfig("dmc-cartpole-swingup", 2, output=str(out), seed=3, start_noise=0.4,
                      progress=False, filter=False)
    )  # fmt: skip
    assert result.metadata["start_noise"] == 0.4
    episodes = load_episodes(out)
    assert json.loads(episodes.info.description)["start_noise"] == 0.4
    with make_env(task) as env:
        for index, seed in enumerate((3, 4)):
            first = env.reset(seed=seed, start_noise=0.4)["continuous_observations"]
            np.testing.assert_array_equal(episodes[index]["continuous_observations"][0], first)
    # From the registry, and from the command line.
    registry = _registry_with(tmp_path, "")
    assert load_registry(registry)["test-pendulum"].start_noise == 0.0
    with pytest.raises(ValueError, match="start_noise must be a non-negative number"):
        load_registry(_registry_with(tmp_path, "start_noise = -2"))
    # The registry's value is what a collection uses unless told otherwise (a gym task cannot
    # take it, so the run fails naming the problem; an explicit 0 turns it off).
    registry = _registry_with(tmp_path, "start_noise = 0.3")
    assert load_registry(registry)["test-pendulum"].start_noise == 0.3
    with pytest.raises(ValueError, match="start_noise needs the simulator's joint state"):
        collect(CollectConfig("test-pendulum", 1, output=str(tmp_path / "g"), registry=registry,
                              progress=False, filter=False))  # fmt: skip
    off = collect(CollectConfig("test-pendulum", 1, output=str(tmp_path / "g"), registry=registry,
                                progress=False, filter=False, start_noise=0.0))  # fmt: skip
    assert off.metadata["start_noise"] == 0.0
    main(["collect", "--task", "dmc-cartpole-swingup", "--episodes", "1", "--seed", "5",
          "--start_noise", "0.2", "--filter", "false", "--output", str(tmp_path / "cli"),
          "--quiet"])  # fmt: skip
    assert json.loads(load_episodes(tmp_path / "cli").info.description)["start_noise"] == 0.2


@pytest.mark.slow
def test_workers_collect_the_same_wide_starts(tmp_path):
    def run(folder, workers):
        config = CollectConfig(
            "dmc-cartpole-swingup", 2, output=str(tmp_path / folder), workers=workers,
            start_noise=0.5, progress=False, filter=False,
        )  # fmt: skip
        return collect(config)

    assert run("one", 1).returns == run("two", 2).returns
    for x, y in zip(load_episodes(tmp_path / "one"), load_episodes(tmp_path / "two"), strict=True):
        np.testing.assert_array_equal(x["continuous_observations"], y["continuous_observations"])

"""Every expert beats the random policy by a wide margin on seeded episodes of its real task.

The fast tasks run by default; long episodes (Atari, swing-ups, planners) are marked slow
(`pytest -m slow`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from gato.data.collect import play_episodes
from gato.tasks.envs import make_env
from gato.tasks.experts import EXPERTS, dlqr, make_expert, reflect
from gato.tasks.registry import get_task, load_registry


def _mean_return(task_id: str, policy: str | None, seeds) -> float:
    task = get_task(task_id)
    results = play_episodes(task, list(seeds), policy, progress=False)
    return float(np.mean([r.episode_return for r in results]))


# task id, seeds, the expert's minimum mean return, the random policy's maximum mean return
FAST = [
    ("gym-cartpole", range(3), 495.0, 60.0),
    ("gym-pendulum", range(3), -300.0, -700.0),
    ("gym-mountaincar", range(3), -130.0, -199.0),
    ("gym-mountaincar-continuous", range(2), 90.0, 0.0),
    ("dmc-cartpole-balance", range(1), 990.0, 700.0),
    ("dmc-point_mass-easy", range(1), 800.0, 100.0),
    ("dmc-reacher-easy", range(2), 900.0, 300.0),
    ("dmc-point_mass-hard", range(2), 800.0, 100.0),
    ("gym-reacher", range(5), -12.0, -30.0),
]
SLOW = [
    ("atari-pong", range(2), 19.0, -19.0),
    ("atari-breakout", range(2), 300.0, 5.0),
    ("dmc-cartpole-swingup", range(3), 820.0, 100.0),
    ("dmc-cartpole-swingup-pixels", range(1), 820.0, 100.0),
    ("dmc-cartpole-swingup_sparse", range(3), 700.0, 10.0),
    ("dmc-cartpole-balance_sparse", range(3), 990.0, 300.0),
    ("dmc-pendulum-swingup", range(3), 800.0, 50.0),
    ("dmc-reacher-hard", range(3), 900.0, 100.0),
    ("gym-acrobot", range(3), -80.0, -400.0),
    ("gym-inverted-pendulum", range(3), 999.0, 50.0),
    ("gym-inverted-double-pendulum", range(3), 9300.0, 500.0),
]


def _check_expert(task_id, seeds, expert_min, random_max):
    if task_id.startswith(("gym-inverted", "gym-reacher")):
        pytest.importorskip("imageio")  # gymnasium's MuJoCo environments import it
    expert = _mean_return(task_id, None, seeds)
    rand = _mean_return(task_id, "random", seeds)
    assert expert >= expert_min, f"{task_id}: expert {expert} < {expert_min}"
    assert rand <= random_max, f"{task_id}: random {rand} > {random_max}"


@pytest.mark.parametrize(("task_id", "seeds", "expert_min", "random_max"), FAST)
def test_expert_beats_random(task_id, seeds, expert_min, random_max):
    _check_expert(task_id, seeds, expert_min, random_max)


@pytest.mark.slow
@pytest.mark.parametrize(("task_id", "seeds", "expert_min", "random_max"), SLOW)
def test_expert_beats_random_slow(task_id, seeds, expert_min, random_max):
    _check_expert(task_id, seeds, expert_min, random_max)


def test_every_registry_task_is_checked_here():
    # BabyAI and Meta-World experts (one per level or task, shipped by their packages) are
    # checked against random in tests/tasks/test_suites.py, every task of the suites.
    checked = {t for t, *_ in FAST + SLOW}
    # Trained experts (expert_params.checkpoint, e.g. IMPALA) are checked where they are trained.
    own = {
        t.id
        for t in load_registry().values()
        if t.expert and "checkpoint" not in t.expert_params and t.suite in ("atari", "dmc", "gym")
    }
    assert own == checked


def test_reflect_mirrors_off_walls():
    assert reflect(5.0, 0.0, 10.0) == 5.0
    assert reflect(12.0, 0.0, 10.0) == 8.0
    assert reflect(-3.0, 0.0, 10.0) == 3.0
    assert reflect(23.0, 0.0, 10.0) == 3.0  # two bounces


def test_dlqr_scalar_system_matches_the_closed_form():
    # x' = x + u, cost x^2 + u^2: P solves P = 1 + P - P^2 / (1 + P) -> P = golden ratio.
    gain = dlqr(np.eye(1), np.eye(1), np.eye(1), np.eye(1))
    phi = (1 + math.sqrt(5)) / 2
    assert gain[0, 0] == pytest.approx(phi / (1 + phi), rel=1e-8)


def test_dlqr_stabilises_a_double_integrator():
    dt = 0.1
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[0.0], [dt]])
    K = dlqr(A, B, np.eye(2), np.eye(1))
    assert np.abs(np.linalg.eigvals(A - B @ K)).max() < 1.0


def test_make_expert_errors():
    task = get_task("gym-cartpole")
    with pytest.raises(ValueError, match="unknown expert 'nope'"):
        make_expert(task, name="nope")
    assert isinstance(make_expert(task, name="random"), EXPERTS["random"])
    bad = dataclasses.replace(task, expert_params={"colour": 1})
    with pytest.raises(ValueError, match="bad expert_params"):
        make_expert(bad)


def test_random_policy_is_seeded():
    task = get_task("gym-pendulum")
    with make_env(task) as env:
        first, second = make_expert(task, 5, "random"), make_expert(task, 5, "random")
        a = [first.act({}, env) for _ in range(5)]
        b = [second.act({}, env) for _ in range(5)]
        np.testing.assert_array_equal(a, b)
        assert len({float(x[0]) for x in a}) == 5
        assert all(-1.0 <= float(x[0]) <= 1.0 for x in a)


def test_every_expert_name_registers_when_looked_up():
    from gato.tasks.experts import EXPERT_MODULES, UnknownExpertError

    for name, module in EXPERT_MODULES.items():
        factory = EXPERTS[name]  # imports the module, whose @register_expert(name) registers it
        assert factory.name == name and factory.__module__ == module, name
    assert EXPERTS["impala"].__module__ == "gato.rl.expert"
    assert set(EXPERT_MODULES) <= set(EXPERTS) and "nope" not in EXPERTS
    with pytest.raises(UnknownExpertError, match="unknown expert 'nope'; experts: \\["):
        EXPERTS["nope"]


def test_an_expert_module_that_does_not_register_its_name_is_named(monkeypatch):
    from gato.tasks import experts

    monkeypatch.setitem(experts.EXPERT_MODULES, "ghost", "gato.tasks.experts.classic")
    with pytest.raises(KeyError, match="gato.tasks.experts.classic defines no @register_expert"):
        EXPERTS["ghost"]

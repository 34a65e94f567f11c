"""Dark Room and Dark Key-to-Door: dynamics and rewards on hand-checked trajectories, splits."""

from __future__ import annotations

import numpy as np
import pytest

from gato.experiments.algorithm_distillation.dark_room import (
    DarkKeyToDoor,
    DarkRoom,
    expert_action,
    goal_split,
    key_door_split,
    key_to_door_step,
    move,
    optimal_return,
)

NOOP, UP, RIGHT, DOWN, LEFT = range(5)


def _run(env, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((tuple(int(v) for v in obs), reward, terminated, truncated))
    return out


def test_dark_room_hand_checked_trajectory():
    env = DarkRoom(goal=(5, 6))
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [4, 4]  # the centre
    steps = _run(env, [RIGHT, UP, NOOP, UP, NOOP, LEFT, DOWN])
    assert steps == [
        ((5, 4), 0.0, False, False),
        ((5, 5), 0.0, False, False),
        ((5, 5), 0.0, False, False),
        ((5, 6), 1.0, False, False),  # reaching the goal pays
        ((5, 6), 1.0, False, False),  # and staying on it pays every step
        ((4, 6), 0.0, False, False),
        ((4, 5), 0.0, False, False),
    ]


def test_dark_room_walls_and_episode_end():
    env = DarkRoom(goal=(0, 0))
    env.reset()
    steps = _run(env, [LEFT] * 4 + [LEFT, DOWN, DOWN, DOWN, DOWN, DOWN])
    assert [s[0] for s in steps[3:6]] == [(0, 4), (0, 4), (0, 3)]  # the wall holds the agent
    assert steps[-1] == ((0, 0), 1.0, False, False)
    steps = _run(env, [NOOP] * 10)
    assert [s[3] for s in steps] == [False] * 9 + [True]  # truncated at step 20
    assert sum(s[1] for s in steps) == 10.0
    with pytest.raises(ValueError, match="episode is over"):
        env.step(NOOP)
    env.reset()
    with pytest.raises(ValueError, match="action"):
        env.step(5)


def test_dark_room_rejects_bad_goals():
    with pytest.raises(ValueError, match="goal"):
        DarkRoom(goal=(9, 0))
    with pytest.raises(ValueError, match="goal"):
        DarkRoom(goal=(1, 2, 3))


def test_vectorised_dynamics_match_the_environment():
    rng = np.random.default_rng(0)
    goals = rng.integers(0, 9, size=(6, 2))
    envs = [DarkRoom(g) for g in goals]
    positions = np.stack([e.reset()[0] for e in envs])
    for _ in range(20):
        actions = rng.integers(0, 5, size=6)
        positions = move(positions, actions, 9)
        stepped = [e.step(int(a)) for e, a in zip(envs, actions, strict=True)]
        assert positions.tolist() == [s[0].tolist() for s in stepped]
    with pytest.raises(ValueError, match="action"):
        move(positions, np.full(6, 7), 9)
    with pytest.raises(ValueError, match="does not match"):
        move(positions, np.zeros(5, np.int64), 9)


def test_expert_reaches_the_optimal_return():
    rng = np.random.default_rng(1)
    for goal in [(4, 4), (0, 0), (8, 3), (4, 7)]:
        env = DarkRoom(goal=goal)
        obs, _ = env.reset()
        total = 0.0
        for _ in range(20):
            obs, reward, _, _, _ = env.step(int(expert_action(obs, np.array(goal), rng)))
            total += reward
        assert total == optimal_return(np.array(goal))
    # 20 on the centre; 21 - d for a goal d moves away.
    assert optimal_return(np.array([[4, 4], [0, 0], [8, 3]])).tolist() == [20, 13, 16]


def test_key_to_door_hand_checked_trajectory():
    env = DarkKeyToDoor(key=(2, 3), door=(2, 5))
    env.reset(seed=0)
    env.position = np.array([2, 4])  # a known start cell
    steps = _run(env, [UP, DOWN, DOWN, NOOP, UP, UP, DOWN, UP])
    assert steps == [
        ((2, 5), 0.0, False, False),  # the door without the key: nothing
        ((2, 4), 0.0, False, False),
        ((2, 3), 1.0, False, False),  # the key
        ((2, 3), 0.0, False, False),  # pays once
        ((2, 4), 0.0, False, False),
        ((2, 5), 1.0, False, False),  # the door with the key
        ((2, 4), 0.0, False, False),
        ((2, 5), 0.0, False, False),  # opens once
    ]
    assert env.has_key and env.opened


def test_key_to_door_episode_and_reset():
    env = DarkKeyToDoor(key=(0, 0), door=(8, 8))
    starts = {tuple(env.reset(seed=s)[0].tolist()) for s in range(20)}
    assert len(starts) > 5  # random start cells
    steps = _run(env, [NOOP] * 50)
    assert [s[3] for s in steps].index(True) == 49
    with pytest.raises(ValueError, match="differ"):
        DarkKeyToDoor(key=(1, 1), door=(1, 1))


def test_key_to_door_step_is_vectorised():
    out = key_to_door_step(
        position=np.array([[0, 0], [3, 3]]),
        has_key=np.array([False, True]),
        opened=np.array([False, False]),
        action=np.array([RIGHT, UP]),
        key=np.array([[1, 0], [5, 5]]),
        door=np.array([[2, 2], [3, 4]]),
        size=9,
    )
    assert out.reward.tolist() == [1.0, 1.0]
    assert out.has_key.tolist() == [True, True]
    assert out.opened.tolist() == [False, True]


def test_goal_split_is_fixed_and_disjoint():
    train, held = goal_split(9, 16)
    assert len(train) == 65 and len(held) == 16
    cells = {tuple(c) for c in train.tolist()} | {tuple(c) for c in held.tolist()}
    assert len(cells) == 81  # disjoint, and together every cell
    again = goal_split(9, 16)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held)
    with pytest.raises(ValueError, match="num_held_out"):
        goal_split(9, 81)


def test_key_door_split_is_disjoint():
    train, held = key_door_split(9, 100)
    assert train.shape == (81 * 80 - 100, 2, 2) and held.shape == (100, 2, 2)
    pairs = {tuple(p.ravel()) for p in train} & {tuple(p.ravel()) for p in held}
    assert not pairs
    assert not np.any(np.all(train[:, 0] == train[:, 1], axis=-1))

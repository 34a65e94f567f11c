"""Pong's frame-readable tracker: its target, its braking, and a won game."""

from __future__ import annotations

import numpy as np
import pytest

from gato.tasks.envs import make_env
from gato.tasks.experts import make_expert
from gato.tasks.experts.atari import PongTracker, pong_target
from gato.tasks.registry import get_task

NOOP, UP, DOWN = 0, 2, 3


def test_pong_target_extrapolates_the_ball_to_the_paddle_line():
    # Moving right 4 columns and 2 rows a step from x 100: 22 steps to x 188, 44 rows down.
    assert pong_target((100, 100), (96, 98), offset=6.0) == 100 + 44 - 6
    # Steeper: 88 rows down, still above the bottom wall (207); steeper still, mirrored off it.
    assert pong_target((100, 100), (96, 96), offset=0.0) == 188
    assert pong_target((100, 150), (96, 146), offset=0.0) == 2 * 207 - (150 + 88)
    # Moving away, or no previous position: level with the ball; out of play: mid-field.
    assert pong_target((100, 100), (104, 98), offset=6.0) == 94
    assert pong_target((100, 100), None, offset=0.0) == 100
    assert pong_target((100, 0), (96, 98), offset=6.0) == 120


class _Ram:
    """An adapter whose RAM shows a ball (x 49, y 54) and the right paddle (y 51)."""

    def __init__(self):
        self.memory = np.zeros(128, np.uint8)

    def show(self, ball, paddle):
        self.memory[49], self.memory[54], self.memory[51] = *ball, paddle

    def ram(self):
        return self.memory


def test_the_tracker_moves_towards_its_target_and_brakes_by_the_paddle_speed():
    task, env = get_task("atari-pong"), _Ram()
    expert = PongTracker(task, offset_down=0.0, offset_up=0.0, dead_zone=4.0)
    env.show((100, 150), 100)  # no previous position: the target is the ball's y, 50 below
    assert expert.act({}, env) == DOWN
    env.show((100, 150), 130)  # 20 rows short of it, but 30 a step: 160 next, past the zone
    assert expert.act({}, env) == UP
    env.show((100, 150), 140)  # 10 rows short at 10 a step: on target next step
    assert expert.act({}, env) == NOOP
    env.show((100, 150), 140)  # stopped 10 rows short: move
    assert expert.act({}, env) == DOWN
    expert.reset(1)  # forgets the previous positions
    env.show((100, 50), 100)
    assert expert.act({}, env) == UP


def test_the_tracker_keeps_no_state_but_the_previous_positions():
    # Two trackers that saw different pasts choose alike once they saw the same last step.
    first, second, env = (
        PongTracker(get_task("atari-pong")),
        PongTracker(get_task("atari-pong")),
        _Ram(),
    )
    env.show((60, 90), 170)
    first.act({}, env)
    for ball, paddle in (((80, 120), 100), ((90, 130), 110)):
        env.show(ball, paddle)
        second.act({}, env)
    env.show((90, 130), 110)
    first.act({}, env)
    for ball, paddle in (((94, 132), 104), ((98, 134), 96), ((102, 136), 96)):
        env.show(ball, paddle)
        assert first.act({}, env) == second.act({}, env)


def test_the_tracker_meets_a_descending_ball_with_another_part_of_the_paddle():
    expert, env = PongTracker(get_task("atari-pong"), offset_down=3.0, offset_up=9.0), _Ram()
    env.show((96, 146), 173)
    expert.act({}, env)
    # Descending: crossing at 176 (mirrored, as above), target 173, where the paddle is.
    env.show((100, 150), 173)
    assert expert.act({}, env) == NOOP
    expert.reset(0)
    env.show((96, 154), 167)
    expert.act({}, env)
    # Rising from 154 to 150: crossing at 150 - 88 = 62 (no wall), target 53: far above.
    env.show((100, 150), 167)
    assert expert.act({}, env) == UP
    expert.reset(0)
    env.show((96, 154), 62 - 9)
    expert.act({}, env)
    env.show((100, 150), 62 - 9)
    assert expert.act({}, env) == NOOP


@pytest.mark.slow
def test_the_tracker_wins_a_game():
    task = get_task("atari-pong")
    with make_env(task) as env:
        expert = make_expert(task, 1_000_001, "pong-tracker")
        observation, total = env.reset(seed=1_000_001), 0.0
        for _ in range(task.episode_limit):
            step = env.step(expert.act(observation, env))
            observation, total = step.observation, total + step.reward
            if step.terminated or step.truncated:
                break
    assert total >= 15

"""Pong from the frames: positions read against the console's RAM, the paddle model against a
slow reference and against the emulator, the search's choices, and won games."""

from __future__ import annotations

import numpy as np
import pytest

from gato.tasks.envs import make_env
from gato.tasks.experts import make_expert
from gato.tasks.experts.pong_frames import (
    BACKGROUND,
    FRAME_TO_RAM,
    PADDLE_MODEL,
    PADDLE_RANGE,
    PongFrames,
    paddle_rollout,
    pong_positions,
    pressed_from_moves,
    steps_to_line,
)
from gato.tasks.registry import get_task

NOOP, UP, DOWN, RIGHTFIRE = 0, 2, 3, 4


def _frame(ball=None, paddle=None):
    """A synthetic field: the background, the paddle's solid pixels (rows paddle..paddle+5 of
    columns 73-75) and a 2x2 ball (its top-left pixel at `ball` = (column, row))."""
    frame = np.full((84, 84), BACKGROUND, np.uint8)
    if paddle is not None:
        frame[paddle : paddle + 6, 73:76] = 147
    if ball is not None:
        column, row = ball
        frame[row : row + 2, column : column + 2] = 236
    return frame


def _ram_units(name, pixel):
    scale, offset = FRAME_TO_RAM[name]
    return scale * pixel + offset


def test_positions_read_from_a_synthetic_frame():
    ball, paddle = pong_positions(_frame(ball=(40, 30), paddle=50))
    assert ball == pytest.approx((_ram_units("ball_x", 40.5), _ram_units("ball_y", 30.5)))
    assert paddle == pytest.approx(_ram_units("paddle", 52.5))
    # The ball over the paddle's columns is still found, and the paddle is not taken for it.
    ball, paddle = pong_positions(_frame(ball=(74, 60), paddle=50))
    assert ball == pytest.approx((_ram_units("ball_x", 74.5), _ram_units("ball_y", 60.5)))
    assert paddle == pytest.approx(_ram_units("paddle", 52.5))
    assert pong_positions(_frame()) == (None, None)


def test_positions_refuse_a_frame_of_another_shape():
    with pytest.raises(ValueError, match=r"\(84, 84\) grayscale frame, got shape \(84, 84, 4\)"):
        pong_positions(np.zeros((84, 84, 4), np.uint8))


def test_positions_match_the_console_ram_over_played_frames():
    task = get_task("atari-pong")
    with make_env(task) as env:
        expert = make_expert(task, 0, "pong-frames")
        observation = env.reset(seed=1_000_000)
        ball_errors, paddle_errors, unseen = [], [], 0
        for _ in range(600):
            ram = env.ram()
            ball, paddle = pong_positions(observation["image_observations"][..., -1])
            if ram[54] and 60 < ram[49] < 180:
                if ball is None:  # a served ball the console has not drawn yet
                    unseen += 1
                else:
                    ball_errors.append((abs(ball[0] - ram[49]), abs(ball[1] - ram[54])))
            if 45 < ram[51] < 195:
                assert paddle is not None
                paddle_errors.append(abs(paddle - ram[51]))
            observation = env.step(expert.act(observation, env)).observation
    ball_errors = np.array(ball_errors)
    assert len(ball_errors) > 200 and unseen <= 0.03 * len(ball_errors)
    assert len(paddle_errors) > 400
    # A frame pixel is 1.9 (x) and 2.5 (y) RAM units: the reading is within two pixels.
    assert ball_errors[:, 0].max() < 3.0 and ball_errors[:, 1].max() < 5.0
    assert max(paddle_errors) < 5.0 and np.mean(paddle_errors) < 1.5


def _slow_rollout(position, moves, pressed, plan):
    c0, c1, c2, c3, c4 = PADDLE_MODEL
    (d1, d2), (u1, u2), out = moves, pressed, []
    for u in plan:
        d = c0 * u + c1 * u1 + c2 * u2 + c3 * d1 + c4 * d2
        position = min(max(position + d, PADDLE_RANGE[0]), PADDLE_RANGE[1])
        out.append(position)
        d1, d2, u1, u2 = d, d1, u, u1
    return out


def test_paddle_rollout_matches_the_model_step_by_step():
    plans = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [-1, 0, 1, 0], [1, -1, -1, 0]])
    for start in ((120.0, (0.0, 0.0), (0, 0)), (60.0, (-20.0, -8.0), (-1, -1))):
        got = paddle_rollout(*start, plans)
        want = [_slow_rollout(*start, plan) for plan in plans]
        np.testing.assert_allclose(got, want)
    # Pressing down from the bottom stays at the bottom.
    assert paddle_rollout(200.0, (20.0, 20.0), (1, 1), np.ones((1, 3)))[0, -1] == PADDLE_RANGE[1]
    with pytest.raises(ValueError, match=r"plans must be \(n_plans, horizon\), got shape \(4,\)"):
        paddle_rollout(120.0, (0.0, 0.0), (0, 0), np.zeros(4))


def test_paddle_rollout_predicts_the_emulator():
    # From rest mid-field, a pressed sequence; the model's positions against the RAM's.
    task, plan = get_task("atari-pong"), [1, 1, 0, 0, -1, -1, 0, 1, 0, 0]
    with make_env(task) as env:
        env.reset(seed=5)
        for _ in range(20):  # the paddle comes to rest
            env.step(NOOP)
        start, positions = float(env.ram()[51]), []
        for u in plan:
            env.step({0: NOOP, -1: UP, 1: DOWN}[u])
            positions.append(float(env.ram()[51]))
    predicted = paddle_rollout(start, (0.0, 0.0), (0, 0), np.array([plan]))[0]
    assert np.abs(predicted - positions).max() < 6.0  # rows; the paddle moves up to 23 a step


def test_steps_to_line():
    assert steps_to_line((100.0, 50.0), (96.0, 48.0), 188.0) == 22.0
    assert steps_to_line((100.0, 50.0), (104.0, 48.0), 188.0) is None  # moving away
    assert steps_to_line((100.0, 50.0), (99.8, 48.0), 188.0) is None  # within the frames' noise
    assert steps_to_line(None, (96.0, 48.0), 188.0) is None


def _stack(*frames):
    return {"image_observations": np.stack(frames, axis=-1)}


def test_the_expert_waits_where_the_ball_arrives_and_moves_where_it_does_not():
    expert = PongFrames(get_task("atari-pong"), offset_down=0.0, offset_up=0.0, offset_flat=0.0)
    # The paddle at rest, the ball moving straight at it at its height in RAM units (ball rows
    # 39-40: y 111.9; paddle rows 40-45: y 112.9).
    paddle = 40
    level = paddle - 1
    frames = [_frame(ball=(60 + 2 * i, level), paddle=paddle) for i in range(4)]
    assert expert.direction(_stack(*frames)) == 0
    # The same ball 20 pixel rows lower: the paddle must go down.
    frames = [_frame(ball=(60 + 2 * i, level + 20), paddle=paddle) for i in range(4)]
    assert expert.direction(_stack(*frames)) == 1
    # A ball moving away: wait level with it.
    frames = [_frame(ball=(60 - 2 * i, level - 20), paddle=paddle) for i in range(4)]
    assert expert.direction(_stack(*frames)) == -1


def test_the_expert_counts_the_action_played_not_the_one_it_chose():
    # On target and at rest, an expert told that up was pressed (RIGHTFIRE is up) expects the
    # paddle to rise over the next steps and presses down against it; one that chose and
    # played nothing keeps still.
    task, paddle = get_task("atari-pong"), 40
    frames = [_frame(ball=(50 + 2 * i, paddle - 1), paddle=paddle) for i in range(4)]
    still, pushed = (PongFrames(task, 0.0, 0.0, offset_flat=0.0) for _ in range(2))
    for expert in (still, pushed):
        assert expert.act(_stack(*frames), None) == NOOP
    pushed.played(RIGHTFIRE, NOOP)
    assert still.act(_stack(*frames), None) == NOOP
    assert pushed.act(_stack(*frames), None) == DOWN


def test_a_flat_ball_is_met_with_its_own_offset():
    # A ball moving straight at the paddle 6 pixel rows (15 RAM rows) below its height: met
    # with offset 0 the paddle must go down; with offset_flat 15 it is already where it should be.
    task, paddle = get_task("atari-pong"), 40
    frames = [_frame(ball=(50 + 2 * i, paddle + 5), paddle=paddle) for i in range(4)]
    assert PongFrames(task, offset_flat=0.0).direction(_stack(*frames)) == 1
    assert PongFrames(task, offset_flat=15.0).direction(_stack(*frames)) == 0
    # A ball rising 2 pixel rows a step is not flat: it crosses at about y 86, above the paddle
    # (113), and offset_up, not offset_flat, moves the target.
    frames = [_frame(ball=(50 + 2 * i, paddle + 11 - 2 * i), paddle=paddle) for i in range(4)]
    for offset_up, offset_flat, direction in ((0.0, 0.0, -1), (0.0, -60.0, -1), (-60.0, 0.0, 1)):
        expert = PongFrames(task, offset_up=offset_up, offset_flat=offset_flat)
        assert expert.direction(_stack(*frames)) == direction


def test_a_larger_approach_weight_moves_the_paddle_early():
    # A flat ball 8 pixel rows below the paddle, arriving within the 6-step horizon: with the
    # default weight the paddle can wait and still arrive in time (NOOP now); weighted for its
    # distance along the way it sets off at once.
    task, paddle = get_task("atari-pong"), 40
    frames = [_frame(ball=(60 + 2 * i, paddle + 7), paddle=paddle) for i in range(4)]
    late, early = (
        PongFrames(task, 0.0, 0.0, offset_flat=0.0, horizon=6, approach_weight=weight)
        for weight in (0.1, 3.0)
    )
    assert late.direction(_stack(*frames)) == 0
    assert early.direction(_stack(*frames)) == 1


def test_presses_are_read_back_from_the_moves_they_made():
    """Moves made by the model from known presses give those presses back, wherever the moves
    tell them apart (a press alternating with rest can be explained the other way round)."""
    c0, c1, c2, c3, c4 = PADDLE_MODEL
    d4, d5 = 2.0, -1.0
    for u1, u2, u3, u4 in [(0, 0, 0, 0), (1, 1, 1, 1), (-1, -1, 0, 0), (0, 1, 1, 0),
                           (1, -1, -1, 1), (-1, 0, 0, 1)]:  # fmt: skip
        d3 = c0 * u4 + c3 * d4 + c4 * d5
        d2 = c0 * u3 + c1 * u4 + c3 * d3 + c4 * d4
        d1 = c0 * u2 + c1 * u3 + c2 * u4 + c3 * d2 + c4 * d3
        d0 = c0 * u1 + c1 * u2 + c2 * u3 + c3 * d1 + c4 * d2
        assert pressed_from_moves((d0, d1, d2)) == (u1, u2), (u1, u2, u3, u4)


def test_an_expert_that_reads_its_presses_from_the_frames_forgets_its_own():
    # The stack in which `test_the_expert_counts_the_action_played_not_the_one_it_chose` has a
    # remembering expert press down: read from the frames (a paddle at rest), nothing was
    # pressed, so the expert keeps still whatever it played before.
    task, paddle = get_task("atari-pong"), 40
    frames = [_frame(ball=(50 + 2 * i, paddle - 1), paddle=paddle) for i in range(4)]
    expert = PongFrames(task, 0.0, 0.0, offset_flat=0.0, pressed_from="frames")
    expert.played(RIGHTFIRE, NOOP)
    assert expert.act(_stack(*frames), None) == NOOP
    # A paddle seen rising 6 then 16 pixel rows a step was pushed up twice: with the ball above
    # it, an expert that read those presses lets the momentum carry it (NOOP), as one that
    # remembers them does; one that remembers pressing nothing presses up.
    rising = [_frame(ball=(50 + 2 * i, 30), paddle=p) for i, p in enumerate((62, 62, 56, 40))]
    remembering, blank = (
        PongFrames(task, 0.0, 0.0, offset_flat=0.0),
        PongFrames(task, 0.0, 0.0, offset_flat=0.0),
    )
    for _ in range(2):  # it chose NOOP twice, and up was played
        remembering.act(_stack(*frames), None)
        remembering.played(RIGHTFIRE, NOOP)
    assert expert.act(_stack(*rising), None) == remembering.act(_stack(*rising), None) == NOOP
    assert blank.act(_stack(*rising), None) == UP
    with pytest.raises(ValueError, match=r"pressed_from must be one of \('memory', 'frames'\)"):
        PongFrames(task, pressed_from="ram")
    with pytest.raises(ValueError, match=r"k >= 4, got \(84, 84, 3\)"):
        expert.act({"image_observations": np.zeros((84, 84, 3), np.uint8)}, None)


def test_the_expert_refuses_bad_settings_and_observations():
    task = get_task("atari-pong")
    for horizon in (1, 9):  # one step cannot tell moving from stopping; 3**9 plans a step
        with pytest.raises(ValueError, match=rf"horizon must be in \[2, 8\].*got {horizon}"):
            PongFrames(task, horizon=horizon)
    with pytest.raises(ValueError, match=r"approach_weight must be >= 0, got -1"):
        PongFrames(task, approach_weight=-1.0)
    with pytest.raises(ValueError, match=r"shape \(84, 84, k\), k >= 3, got \(84, 84, 2\)"):
        PongFrames(task).act({"image_observations": np.zeros((84, 84, 2), np.uint8)}, None)


@pytest.mark.slow
def test_the_expert_wins_games_with_dart_noise():
    task = get_task("atari-pong")
    with make_env(task) as env:
        for seed in (1_000_000, 1_000_001):
            expert = make_expert(task, seed, "pong-frames", action_noise=0.05, record="expert")
            observation, total = env.reset(seed=seed), 0.0
            for _ in range(task.episode_limit):
                step = env.step(expert.act_and_label(observation, env)[0])
                observation, total = step.observation, total + step.reward
                if step.terminated or step.truncated:
                    break
            assert total >= 9

"""Pong played from the frames the agent sees: an expert a frame-reading clone can copy.

The RAM experts (`gato.tasks.experts.atari`) decide from the console's exact positions, and the
planner from simulations of the emulator; a clone sees only the 84x84 grayscale stack. This
expert reads the ball and its paddle from that stack (`pong_positions`), so every position it
uses is one the clone's input holds, and places the paddle with a model of the paddle's
momentum (`paddle_rollout`) by a search over short action sequences: it arrives where the ball
will cross and stops there, where a tracker with a dead zone overshoots and oscillates around
the crossing point (docs/control_learning.md measures both).

Coordinates are the RAM's (ball x 49 and y 54, paddle y 51), so `pong_target`'s geometry
carries over; `FRAME_TO_RAM` maps frame pixels to them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from gato.tasks.envs import ControlEnv
from gato.tasks.experts.atari import pong_target
from gato.tasks.experts.base import Expert, register_expert
from gato.tasks.registry import TaskSpec

FRAME_SHAPE = (84, 84)
"""The frames `pong_positions` reads: the environment's grayscale 84x84 (one of its stack)."""
BACKGROUND = 87
"""Grayscale of the playing field."""
PLAY_ROWS = (14, 77)
"""Frame rows between the top and bottom walls."""
PADDLE_COLUMNS = (73, 76)
"""Frame columns of the right (the agent's) paddle."""
BALL_COLUMNS = (11, 84)
"""Frame columns the ball is looked for in: right of the opponent's paddle."""
PADDLE_GRAY = (130, 160)
"""Grayscale of the paddle's solid pixels (its blurred edges and the bright ball fall outside)."""
BALL_OVER_PADDLE = 160
"""In the paddle's columns and right of them, only pixels brighter than this are ball."""
FRAME_TO_RAM = {"ball_x": (1.907, 48.83), "ball_y": (2.508, 12.88), "paddle": (2.508, 6.32)}
"""(scale, offset) from frame pixels to RAM units, a least-squares fit over two games of
`pong-tracker` (5,295 frames with the ball in play): residual standard deviation 0.53 (ball x),
0.89 (ball y) and 0.95 (paddle) RAM units, against 1.9-2.5 units a pixel."""

PADDLE_MODEL = (5.733, 15.876, 8.737, -0.507, 0.184)
"""The paddle's move over one agent step, d_t = c0 u_t + c1 u_{t-1} + c2 u_{t-2} + c3 d_{t-1} +
c4 d_{t-2}, with u the direction pressed (-1 up, 0 none, +1 down) and d the previous moves (RAM
rows): a least-squares fit over 1,070 steps of random actions (3 games, the paddle away from the
walls), residual standard deviation 0.69 rows. The paddle answers a press mostly one and two
steps later: this lag is what makes a tracker with a dead zone overshoot."""
PADDLE_RANGE = (38.0, 203.0)
"""RAM rows the paddle can reach."""

_DIRECTION = {0: 0, 1: 0, 2: -1, 3: 1, 4: -1, 5: 1}
"""Direction of each action of the minimal set: NOOP, FIRE, RIGHT (up), LEFT (down), RIGHTFIRE,
LEFTFIRE."""
_ACTION = {0: 0, -1: 2, 1: 3}


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.shape != FRAME_SHAPE:
        raise ValueError(
            f"pong_positions reads one {FRAME_SHAPE} grayscale frame, got shape {frame.shape}"
        )
    return frame.astype(np.float32)


def _centroid(weights: np.ndarray, first: int) -> float:
    return float((weights * np.arange(len(weights))).sum() / weights.sum()) + first


def pong_positions(frame: np.ndarray) -> tuple[tuple[float, float] | None, float | None]:
    """(ball (x, y), paddle y), in RAM units, read from one 84x84 grayscale frame; None for what
    the frame does not show (the ball out of play, the paddle hidden by a wall).

    The paddle is the centroid of its solid pixels in its columns; the ball, the centroid of
    what differs from the background right of the opponent's paddle (in and beyond the paddle's
    columns, only what is brighter than the paddle, so the paddle never counts as ball)."""
    field = _check_frame(frame)[PLAY_ROWS[0] : PLAY_ROWS[1]]
    paddle = field[:, PADDLE_COLUMNS[0] : PADDLE_COLUMNS[1]]
    solid = ((paddle >= PADDLE_GRAY[0]) & (paddle <= PADDLE_GRAY[1])).sum(axis=1)
    paddle_y = None
    if solid.sum() > 3:
        scale, offset = FRAME_TO_RAM["paddle"]
        paddle_y = scale * _centroid(solid, PLAY_ROWS[0]) + offset
    ball = np.abs(field[:, BALL_COLUMNS[0] : PADDLE_COLUMNS[0]] - BACKGROUND)
    beyond = np.clip(field[:, PADDLE_COLUMNS[0] : BALL_COLUMNS[1]] - BALL_OVER_PADDLE, 0, None)
    ball = np.concatenate([ball, beyond], axis=1)
    if ball.sum() < 30:  # a few blurred pixels: no ball
        return None, paddle_y
    (sx, ox), (sy, oy) = FRAME_TO_RAM["ball_x"], FRAME_TO_RAM["ball_y"]
    x = _centroid(ball.sum(axis=0), BALL_COLUMNS[0])
    y = _centroid(ball.sum(axis=1), PLAY_ROWS[0])
    return (sx * x + ox, sy * y + oy), paddle_y


def paddle_rollout(
    position: float,
    moves: tuple[float, float],
    pressed: tuple[int, int],
    plans: np.ndarray,
    model: tuple[float, ...] = PADDLE_MODEL,
) -> np.ndarray:
    """The paddle's positions after each step of each plan, (n_plans, horizon), by `model`.

    Args:
        position: the paddle's y now (RAM rows).
        moves: its last two moves (d_{t-1}, d_{t-2}).
        pressed: the last two directions pressed (u_{t-1}, u_{t-2}), each -1, 0 or 1.
        plans: (n_plans, horizon) directions to press from now on.
    """
    plans = np.asarray(plans, dtype=np.float64)
    if plans.ndim != 2:
        raise ValueError(f"plans must be (n_plans, horizon), got shape {plans.shape}")
    n, horizon = plans.shape
    c0, c1, c2, c3, c4 = model
    y = np.full(n, float(position))
    d1, d2 = np.full(n, float(moves[0])), np.full(n, float(moves[1]))
    u1, u2 = np.full(n, float(pressed[0])), np.full(n, float(pressed[1]))
    out = np.empty((n, horizon))
    for k in range(horizon):
        u = plans[:, k]
        d = c0 * u + c1 * u1 + c2 * u2 + c3 * d1 + c4 * d2
        y = np.clip(y + d, *PADDLE_RANGE)
        out[:, k] = y
        d1, d2, u1, u2 = d, d1, u, u1
    return out


_PRESS_HISTORIES = np.array(list(itertools.product((0, -1, 1), repeat=4)), np.float64)
"""Every (u_{t-1}, u_{t-2}, u_{t-3}, u_{t-4}) of directions, NOOP first (ties go to rest)."""


def pressed_from_moves(
    moves: tuple[float, float, float], model: tuple[float, ...] = PADDLE_MODEL
) -> tuple[int, int]:
    """The last two directions pressed (u_{t-1}, u_{t-2}) that best explain the paddle's last
    three moves (d_{t-1}, d_{t-2}, d_{t-3}, as the frames show them) under `model`.

    The moves give two equations of the model, d_{t-1} = c0 u_{t-1} + c1 u_{t-2} + c2 u_{t-3} +
    c3 d_{t-2} + c4 d_{t-3} and d_{t-2} = c0 u_{t-2} + c1 u_{t-3} + c2 u_{t-4} + c3 d_{t-3} (its
    c4 d_{t-4} unseen, a small term); the four presses in {-1, 0, 1} with the least squared
    residual are chosen. Unlike a memory of the presses made, this is what the console applied:
    under sticky actions (the previous action repeated at random) the two differ.
    """
    c0, c1, c2, c3, c4 = model
    d1, d2, d3 = (float(m) for m in moves)
    u = _PRESS_HISTORIES
    first = d1 - (c0 * u[:, 0] + c1 * u[:, 1] + c2 * u[:, 2] + c3 * d2 + c4 * d3)
    second = d2 - (c0 * u[:, 1] + c1 * u[:, 2] + c2 * u[:, 3] + c3 * d3)
    best = u[int(np.argmin(first * first + second * second))]
    return int(best[0]), int(best[1])


def steps_to_line(
    ball: tuple[float, float] | None, prev: tuple[float, float] | None, hit_x: float
) -> float | None:
    """Agent steps until the ball reaches x = hit_x at its current speed; None unless it moves
    towards the line (right) by more than the frames' noise."""
    if ball is None or prev is None or ball[0] <= prev[0] + 0.5:
        return None
    return (hit_x - ball[0]) / (ball[0] - prev[0])


PRESSED_FROM = ("memory", "frames")
"""The choices of `PongFrames`' `pressed_from`."""


@register_expert("pong-frames")
class PongFrames(Expert):
    """Meet the ball where it will cross the paddle's line, reading only the observed frames.

    Each step: the ball's and the paddle's positions in the last three frames of the stack
    (`pong_positions`), the ball's crossing point (`pong_target`) minus an offset along the
    paddle (`offset_down` for a descending ball, `offset_up` for a rising one, `offset_flat`
    for a flat one), and the first action of the
    `horizon`-step plan (every sequence of NOOP, up, down) whose `paddle_rollout` puts the
    paddle closest to that point at the step the ball arrives (and closest along the way, by
    `approach_weight`); while the ball moves away, the plan that gets closest to the ball's
    height (less `offset_up`) and stops there. The only state kept is the last two directions
    pressed, which the frames show only in part (read back from the paddle's moves they match
    the remembered ones at 69% and 75% of a game's steps), so a clone of it needs its own
    previous actions as well as the frames. It won 22 games of 22 (20.3 points a game), and 12
    of 12 with 5% random actions (DART; 14.2 points a game) (docs/control_learning.md).

    Args:
        offset_down, offset_up: ball y minus paddle y (RAM rows) to meet a descending ball
            with, and any other.
        offset_flat, flat_speed: the offset for a ball whose y moves by less than `flat_speed`
            rows a step: met near the paddle's top edge, it leaves steeply; met as the others,
            a flat ball can be returned back and forth forever (a game stalled at the step
            limit, 0 points).
        horizon: steps a plan looks ahead (3**horizon plans a step).
        approach_weight: the weight of the paddle's distance from the target at each step
            before the ball arrives, against 10 for the distance when it arrives: a larger one
            gets the paddle there early, which sticky actions (each frame repeats the previous
            action with some probability) reward, as they delay every move.
        hit_x: the ball's x where it meets the paddle.
        walls: ball y of the top and bottom walls.
        home: paddle y to wait at while no ball is in play.
        pressed_from: where the model's last two presses come from: "memory" (the directions
            this expert pressed) or "frames" (`pressed_from_moves`: the presses that explain
            the paddle's moves in the stack's four frames). With "frames" the action is a
            function of the observation alone, and under sticky actions the model starts
            from what the console applied, not from what was asked; but the frames leave the
            presses ambiguous, and it plays far worse (5.75 points a game on 8 deterministic
            games, where "memory" wins 20.3).
    """

    def __init__(
        self,
        task: TaskSpec,
        offset_down: float = 0.0,
        offset_up: float = 9.0,
        offset_flat: float = -3.0,
        flat_speed: float = 3.0,
        horizon: int = 5,
        approach_weight: float = 0.1,
        hit_x: float = 188.0,
        walls: tuple[float, float] = (44.0, 207.0),
        home: float = 120.0,
        pressed_from: str = "memory",
    ) -> None:
        super().__init__(task)
        if pressed_from not in PRESSED_FROM:
            raise ValueError(f"pressed_from must be one of {PRESSED_FROM}, got {pressed_from!r}")
        self.pressed_from = pressed_from
        if not 2 <= horizon <= 8:
            raise ValueError(f"horizon must be in [2, 8] (3**horizon plans a step), got {horizon}")
        if approach_weight < 0:
            raise ValueError(f"approach_weight must be >= 0, got {approach_weight}")
        self.offset_down, self.offset_up = offset_down, offset_up
        self.approach_weight = approach_weight
        self.offset_flat, self.flat_speed = offset_flat, flat_speed
        self.horizon, self.hit_x, self.walls, self.home = horizon, hit_x, tuple(walls), home
        self.plans = np.array(list(itertools.product((0, -1, 1), repeat=horizon)), np.float64)
        self.reset(0)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._pressed = (0, 0)

    def _frames(self, observation: Mapping[str, Any]) -> np.ndarray:
        stack = np.asarray(observation["image_observations"])
        least = 4 if self.pressed_from == "frames" else 3
        if stack.ndim != 3 or stack.shape[:2] != FRAME_SHAPE or stack.shape[2] < least:
            raise ValueError(
                f"pong-frames (pressed_from={self.pressed_from!r}) reads image_observations of "
                f"shape (84, 84, k), k >= {least}, got {stack.shape}"
            )
        return stack

    def _pressed_now(self, stack: np.ndarray, paddles: list[float | None]) -> tuple[int, int]:
        if self.pressed_from == "memory":
            return self._pressed
        paddles = [*paddles, pong_positions(stack[..., -4])[1]]
        if any(p is None for p in paddles):  # a paddle behind a wall: its moves are unseen
            return (0, 0)
        moves = tuple(paddles[i] - paddles[i + 1] for i in range(3))
        return pressed_from_moves(moves)

    def _target(self, ball, prev) -> tuple[float, float | None]:
        """(paddle y to reach, steps until the ball arrives or None)."""
        steps = steps_to_line(ball, prev, self.hit_x)
        if ball is None:
            return self.home, None
        if steps is None:  # moving away: wait level with it
            return ball[1] - self.offset_up, None
        offset = self.offset_down if ball[1] >= prev[1] else self.offset_up
        if abs(ball[1] - prev[1]) < self.flat_speed:
            offset = self.offset_flat
        return pong_target(ball, prev, offset, self.hit_x, self.walls), steps

    def direction(self, observation: Mapping[str, Any]) -> int:
        """The direction to press now: -1 up, 0 none, 1 down."""
        stack = self._frames(observation)
        (ball, paddle), (prev, paddle_1), (_, paddle_2) = (
            pong_positions(stack[..., i]) for i in (-1, -2, -3)
        )
        if paddle is None:  # behind a wall: move out, away from the wall it is hidden by
            field = stack[..., -1].astype(np.float32)
            columns = slice(*PADDLE_COLUMNS)
            top = np.abs(field[PLAY_ROWS[0] : PLAY_ROWS[0] + 4, columns] - BACKGROUND).sum()
            bottom = np.abs(field[PLAY_ROWS[1] - 4 : PLAY_ROWS[1], columns] - BACKGROUND).sum()
            return 1 if top >= bottom else -1
        d1 = 0.0 if paddle_1 is None else paddle - paddle_1
        d2 = 0.0 if paddle_1 is None or paddle_2 is None else paddle_1 - paddle_2
        target, steps = self._target(ball, prev)
        pressed = self._pressed_now(stack, [paddle, paddle_1, paddle_2])
        rollout = paddle_rollout(paddle, (d1, d2), pressed, self.plans)
        path = np.abs(rollout - target)
        if steps is not None and 0 < steps <= self.horizon:
            k = min(max(round(steps) - 1, 0), self.horizon - 1)
            cost = 10.0 * path[:, k] + self.approach_weight * path[:, : k + 1].sum(axis=1)
        else:  # no ball on its way: get there and stop
            cost = path.sum(axis=1) + np.abs(rollout[:, -1] - rollout[:, -2])
        return int(self.plans[int(np.argmin(cost)), 0])

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> int:
        direction = self.direction(observation)
        self._pressed = (direction, self._pressed[0])
        return _ACTION[direction]

    def played(self, action: Any, chosen: Any) -> None:
        # The paddle moves by what was pressed: remember the action played, not the one chosen.
        self._pressed = (_DIRECTION.get(int(action), 0), self._pressed[1])

"""Atari experts that read the console RAM: Pong and Breakout."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gato.tasks.envs import ControlEnv
from gato.tasks.experts.base import Expert, reflect, register_expert
from gato.tasks.registry import TaskSpec

_PONG_NOOP, _PONG_UP, _PONG_DOWN = 0, 2, 3  # minimal set: NOOP FIRE RIGHT LEFT ...; RIGHT is up


def pong_target(
    ball: tuple[int, int],
    prev: tuple[int, int] | None,
    offset: float,
    hit_x: float = 188.0,
    walls: tuple[float, float] = (44.0, 207.0),
) -> float:
    """The paddle y (RAM 51) to steer for: where the ball (RAM 49, 54: x, y; y 0 out of play)
    will cross the paddle's line `hit_x`, extrapolated from its previous position `prev` and
    mirrored off the walls, minus `offset` along the paddle; mid-field while it is out of play,
    and level with it while it moves away."""
    bx, by = ball
    if by == 0:
        return 120.0
    if prev is not None and prev[1] and bx > prev[0]:
        steps = (hit_x - bx) / (bx - prev[0])
        y = reflect(by + (by - prev[1]) * steps, *walls) if steps > 0 else by
        return y - offset
    return by - offset


@register_expert("pong-ram")
class PongRAM(Expert):
    """Track the ball with the right paddle; on each approach, plan the return in the emulator.

    RAM: 49 ball x, 54 ball y (0 when out of play), 51 player paddle y. The base controller
    steers the paddle towards where the ball will cross its line (extrapolated from the last two
    positions, mirrored off the walls) minus an offset along the paddle. The paddle's momentum
    depends on the frame phase, so no single offset returns every ball; instead, each time the
    ball starts towards the paddle, the expert saves the emulator state, plays the base
    controller for each offset in `offsets` until the ball is returned and then until the
    opponent misses it or returns it, and replays the actions of the first return the opponent
    misses (else of the steepest return, the hardest to reach). Episodes are deterministic given
    the seed (no sticky actions), so a replayed plan does what the simulation did; when another
    action is played instead (`NoisyExpert`, DART collection), the plan is dropped and made
    again from the state reached.

    Args:
        offsets: paddle offsets tried by the planner, in order of preference.
        default_offset: the base controller's offset when not following a plan.
        horizon: planning horizon in agent steps.
        hit_x: the ball's x when it reaches the paddle.
        walls: ball y of the top and bottom walls.
        dead_zone: no move while the paddle is this close to its target.
    """

    WIN = 1000.0
    """Value of a planned return that wins the point (above any steepness)."""

    def __init__(
        self,
        task: TaskSpec,
        offsets: tuple[float, ...] = (4.0, 0.0, 13.0, 11.0, 9.0, 2.0, 6.0),
        default_offset: float = 6.0,
        horizon: int = 120,
        hit_x: float = 188.0,
        walls: tuple[float, float] = (44.0, 207.0),
        dead_zone: float = 2.0,
    ) -> None:
        super().__init__(task)
        self.offsets, self.default_offset = tuple(offsets), default_offset
        self.horizon, self.hit_x, self.walls, self.dead_zone = (
            horizon,
            hit_x,
            tuple(walls),
            dead_zone,
        )
        self.reset(0)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._prev: tuple[int, int] | None = None
        self._plan: list[int] = []

    def _track(self, ram: np.ndarray, prev: tuple[int, int] | None, offset: float) -> int:
        """The base controller: one action towards the predicted crossing point."""
        ball, py = (int(ram[49]), int(ram[54])), int(ram[51])
        gap = pong_target(ball, prev, offset, self.hit_x, self.walls) - py
        if abs(gap) <= self.dead_zone:
            return _PONG_NOOP
        return _PONG_DOWN if gap > 0 else _PONG_UP

    def _simulate(self, env: ControlEnv, offset: float) -> tuple[float, list[int]] | None:
        """Play the base controller from the current state; None if the ball is missed.

        Returns (value, actions up to the return): value `WIN` when the opponent then misses
        within the horizon, else the rebound's steepness (ball y per step).
        """
        ale, actions_map, skip = env.ale, env.ale_actions, env.frame_skip
        saved = ale.cloneState()
        prev, actions, steepness = self._prev, [], None
        try:
            for _ in range(self.horizon):
                ram = ale.getRAM()
                bx, by = int(ram[49]), int(ram[54])
                if steepness is None and prev is not None and 0 < bx < prev[0] and prev[0] > 150:
                    steepness = float(abs(by - prev[1]))  # returned: keep the plan so far
                    plan = list(actions)
                elif steepness is not None and prev is not None and bx > prev[0] > 0:
                    break  # the opponent returned it: the rally goes on
                action = self._track(ram, prev, offset if steepness is None else 0.0)
                prev = (bx, by)
                actions.append(action)
                reward = sum(ale.act(actions_map[action]) for _ in range(skip))
                if reward:
                    if reward > 0 and steepness is not None:
                        return self.WIN, plan
                    break
        finally:
            ale.restoreState(saved)
        return None if steepness is None else (steepness, plan)

    def _replan(self, env: ControlEnv) -> None:
        best = None
        for offset in self.offsets:
            outcome = self._simulate(env, offset)
            if outcome is not None and (best is None or outcome[0] > best[0]):
                best = outcome
                if best[0] >= self.WIN:
                    break
        self._plan = list(best[1]) if best is not None else []

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> int:
        ram = env.ram()
        bx, by = int(ram[49]), int(ram[54])
        prev = self._prev
        approaching = prev is not None and by and bx > prev[0] and bx < 150
        if approaching and not self._plan and hasattr(env, "ale"):
            self._replan(env)
        action = self._plan.pop(0) if self._plan else self._track(ram, prev, self.default_offset)
        self._prev = (bx, by)
        return action

    def played(self, action: Any, chosen: Any) -> None:
        self._plan = []  # made for the chosen action: the state it predicted will not happen


@register_expert("pong-tracker")
class PongTracker(Expert):
    """Steer the right paddle to where the ball will cross its line, braking by its speed: an
    expert whose action is a function of what the last two frames show.

    The planning expert (`pong-ram`) picks, on each approach, the paddle offset that its
    simulation of the emulator finds winning; the frames do not show that choice, and a clone
    of it trained on frames stays near 60% of expert. This controller has no hidden state but
    the previous step's ball and paddle positions (the frame stack shows both): the target is
    `pong_target`, the predicted crossing point minus an offset that depends only on whether
    the ball is descending (`offset_down`) or not (`offset_up`), so it meets the ball with
    another part of the paddle; the paddle moves towards the target unless the position it
    would reach at its current speed, `lead` steps on, is within `dead_zone` rows of it. The
    speed term is what lets a fixed offset return the ball at all (without it the paddle
    overshoots: the planner's base controller loses its games), and the two offsets are what
    win them: one offset for both (6, dead zone 8) won 6.0 points a game on average over 12
    starts, 3 and 9 (dead zone 6) 16.4 (docs/control_learning.md).

    Args:
        offset_down, offset_up: ball y minus paddle y (RAM rows) at contact, for a descending
            ball (its y not decreasing since the previous step) and for any other.
        dead_zone: no move while the predicted paddle is this close to its target.
        lead: steps of the paddle's current speed added to its position.
        hit_x, walls: as `pong_target`.
    """

    def __init__(
        self,
        task: TaskSpec,
        offset_down: float = 3.0,
        offset_up: float = 9.0,
        dead_zone: float = 6.0,
        lead: float = 1.0,
        hit_x: float = 188.0,
        walls: tuple[float, float] = (44.0, 207.0),
    ) -> None:
        super().__init__(task)
        self.offset_down, self.offset_up = offset_down, offset_up
        self.dead_zone, self.lead = dead_zone, lead
        self.hit_x, self.walls = hit_x, tuple(walls)
        self.reset(0)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._ball: tuple[int, int] | None = None
        self._paddle: int | None = None

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> int:
        ram = env.ram()
        ball, paddle, prev = (int(ram[49]), int(ram[54])), int(ram[51]), self._ball
        descending = prev is not None and prev[1] and ball[1] >= prev[1]
        offset = self.offset_down if descending else self.offset_up
        target = pong_target(ball, prev, offset, self.hit_x, self.walls)
        speed = 0 if self._paddle is None else paddle - self._paddle
        self._ball, self._paddle = ball, paddle
        gap = target - (paddle + self.lead * speed)
        if abs(gap) <= self.dead_zone:
            return _PONG_NOOP
        return _PONG_DOWN if gap > 0 else _PONG_UP


_BREAKOUT_NOOP, _BREAKOUT_FIRE, _BREAKOUT_RIGHT, _BREAKOUT_LEFT = 0, 1, 2, 3
# Paddle displacement over one agent step (4 frames) given the previous and the current action:
# the paddle's momentum makes this depend on both (measured from RAM; 0 = no direction).
_PADDLE_MOVES = {
    (0, 0): 0.0, (0, 2): 12.0, (0, 3): -12.0,
    (2, 2): 23.0, (2, 0): 10.5, (2, 3): -2.0,
    (3, 3): -23.0, (3, 0): -10.0, (3, 2): 2.0,
}  # fmt: skip
_PLANS = list(itertools.product((0, 2, 3), repeat=3))


@register_expert("breakout-ram")
class BreakoutRAM(Expert):
    """Catch the ball where it will land, planning the paddle's momentum three steps ahead.

    RAM: 99 ball x, 101 ball y (0 when no ball is in play: FIRE serves), 72 paddle x,
    76-77 the score. Landing x comes from the last two ball positions with mirror bounces off the
    side walls. Each descent aims at a random point within `jitter` of the paddle's centre, and
    within `stuck_jitter` when no brick has broken for `stuck_steps` steps, so the ball leaves
    periodic orbits that miss the last bricks.

    Args:
        offset: paddle x that centres the paddle under ball x = paddle x - offset.
        paddle_y: ball y at the paddle's top.
        walls: ball x of the left and right walls.
        paddle_range: the paddle's reachable x.
        jitter, stuck_jitter, stuck_steps: the aiming noise (see above).
    """

    def __init__(
        self,
        task: TaskSpec,
        offset: float = -8.0,
        paddle_y: float = 180.0,
        walls: tuple[float, float] = (57.0, 199.0),
        paddle_range: tuple[float, float] = (55.0, 191.0),
        jitter: float = 1.5,
        stuck_jitter: float = 6.0,
        stuck_steps: int = 60,
    ) -> None:
        super().__init__(task)
        self.offset, self.paddle_y, self.walls = offset, paddle_y, tuple(walls)
        self.paddle_range = tuple(paddle_range)
        self.jitter, self.stuck_jitter, self.stuck_steps = jitter, stuck_jitter, stuck_steps
        self.reset(0)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._prev: tuple[int, int] | None = None
        self._last_direction = 0
        self._descending = False
        self._aim = 0.0
        self._score = (0, 0)
        self._since_score = 0

    def _plan(self, paddle: float, goal: float) -> int:
        """First action of the 3-step plan whose paddle positions stay closest to the goal."""
        lo, hi = self.paddle_range
        best_cost, best = math.inf, 0
        for plan in _PLANS:
            position, last, cost = paddle, self._last_direction, 0.0
            for action in plan:
                position = min(hi, max(lo, position + _PADDLE_MOVES[(last, action)]))
                last = action
                cost += abs(position - goal)
            if cost < best_cost - 1e-9:
                best_cost, best = cost, plan[0]
        return best

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> int:
        ram = env.ram()
        bx, by, paddle = int(ram[99]), int(ram[101]), float(ram[72])
        score = (int(ram[76]), int(ram[77]))
        self._since_score = 0 if score != self._score else self._since_score + 1
        self._score = score
        if by == 0:
            self._prev, self._last_direction = None, 0
            return _BREAKOUT_FIRE
        target = float(bx)
        if self._prev is not None:
            vx, vy = bx - self._prev[0], by - self._prev[1]
            if vy > 0 and not self._descending:
                width = self.jitter if self._since_score < self.stuck_steps else self.stuck_jitter
                self._aim = float(self.rng.uniform(-width, width))
            self._descending = vy > 0
            if vy > 0:
                steps = max((self.paddle_y - by) / vy, 0.0)
                target = reflect(bx + vx * steps, *self.walls)
        self._prev = (bx, by)
        goal = min(
            self.paddle_range[1], max(self.paddle_range[0], target + self.offset + self._aim)
        )
        action = self._plan(paddle, goal)
        self._last_direction = action
        return action

"""gymnasium classic-control experts: Pendulum, CartPole, MountainCar, Acrobot."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gato.tasks.envs import ControlEnv
from gato.tasks.experts.base import Expert, register_expert, state_vector, unit_action, wrap_angle
from gato.tasks.registry import TaskSpec


@register_expert("pendulum-energy")
class PendulumEnergy(Expert):
    """gymnasium Pendulum-v1: energy pumping, then a PD law near upright.

    Dynamics: angular acceleration 15 sin(theta) + 3 torque (theta = 0 upright), torque in
    [-2, 2]; energy 0.5 w^2 + 15 (cos - 1) is zero upright at rest.

    Args:
        catch_cosine: the PD law takes over above this cosine.
        kp, kd: PD gains (torque per rad, per rad/s).
    """

    def __init__(
        self, task: TaskSpec, catch_cosine: float = 0.8, kp: float = 12.0, kd: float = 2.5
    ) -> None:
        super().__init__(task)
        self.catch_cosine, self.kp, self.kd = catch_cosine, kp, kd

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        cos, sin, velocity = state_vector(observation)
        if cos > self.catch_cosine:
            torque = -(self.kp * math.atan2(sin, cos) + self.kd * velocity)
        else:
            energy = 0.5 * velocity * velocity + 15.0 * (cos - 1.0)
            direction = 1.0 if velocity >= 0 else -1.0
            torque = 2.0 * direction * min(1.0, max(-1.0, -energy))
        return unit_action(torque / 2.0)


@register_expert("cartpole-pd")
class CartPolePD(Expert):
    """gymnasium CartPole-v1: push towards where a PD law on angle and position asks.

    Args:
        gains: weights of x, dx, theta, dtheta in the push decision (positive: push right).
    """

    def __init__(
        self, task: TaskSpec, gains: tuple[float, float, float, float] = (0.1, 0.5, 10.0, 2.0)
    ) -> None:
        super().__init__(task)
        self.gains = tuple(gains)

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> int:
        x, dx, theta, dtheta = state_vector(observation)
        kx, kdx, kt, kdt = self.gains
        return 1 if kx * x + kdx * dx + kt * theta + kdt * dtheta > 0 else 0


def _mountain_car_steps(position: float, velocity: float, first: float, power: float) -> int:
    """Steps to the goal when pushing `first` now, then along the velocity (the pump policy).

    Simulates MountainCar's known, deterministic dynamics (velocity += power a - 0.0025 cos(3 x),
    clipped to 0.07; position clipped to [-1.2, 0.6], the left wall stops the car).
    """
    x, v, push = position, velocity, first
    for step in range(1000):
        v = min(0.07, max(-0.07, v + power * push - 0.0025 * math.cos(3.0 * x)))
        x = min(0.6, max(-1.2, x + v))
        if x == -1.2 and v < 0:
            v = 0.0
        if x >= 0.5 and v >= 0:
            return step
        push = 1.0 if v > 0 else -1.0
    return 1000


@register_expert("mountain-car-pump")
class MountainCarPump(Expert):
    """MountainCar-v0 / MountainCarContinuous-v0: energy pumping improved by one-step lookahead.

    The base policy pushes along the velocity. Each step, the expert simulates the known dynamics
    for both first pushes followed by the base policy and takes the push that reaches the goal
    sooner (a rollout policy: never worse than the base). The continuous task pays 0.1 a^2 per
    step; pushing with `force` < 1 trades a few more steps for a smaller bill.

    Args:
        force: push magnitude in canonical units (continuous task only).
    """

    def __init__(self, task: TaskSpec, force: float = 1.0) -> None:
        super().__init__(task)
        self.force = force

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> Any:
        position, velocity = state_vector(observation)
        continuous = self.task.action.kind == "continuous"
        power = 0.0015 * self.force if continuous else 0.001
        right = _mountain_car_steps(position, velocity, 1.0, power)
        left = _mountain_car_steps(position, velocity, -1.0, power)
        direction = 1.0 if right <= left else -1.0
        if continuous:
            return unit_action(direction * self.force)
        return 2 if direction > 0 else 0


@register_expert("acrobot-rollout")
class AcrobotRollout(Expert):
    """Acrobot-v1: energy pumping improved by rollouts through the task's own dynamics.

    The base policy torques the second joint against the first joint's velocity, plus a term
    that straightens the arm (`torque sign of -w1 - k theta2 - c w2`), which swings the arm up in
    about 80 steps. Each step, the expert simulates every action followed by the base policy for
    up to `horizon` steps with gymnasium's Acrobot equations (RK4, the same step the task takes)
    and plays the action that reaches the line soonest (ties: the higher tip). The state comes
    from the observation (angles from their cosines and sines).

    Args:
        horizon: rollout length in steps.
        straighten, damping: k and c of the base policy.
    """

    def __init__(
        self, task: TaskSpec, horizon: int = 100, straighten: float = 0.5, damping: float = -0.2
    ) -> None:
        super().__init__(task)
        self.horizon, self.straighten, self.damping = horizon, straighten, damping
        self._model = None

    def _base(self, s: np.ndarray) -> int:
        decision = -s[2] - self.straighten * wrap_angle(s[1]) - self.damping * s[3]
        return 2 if decision > 0 else 0

    def _next(self, s: np.ndarray, action: int) -> np.ndarray:
        from gymnasium.envs.classic_control.acrobot import rk4

        m = self._model
        out = rk4(m._dsdt, np.append(s, action - 1.0), [0, m.dt])
        out[0], out[1] = wrap_angle(out[0]), wrap_angle(out[1])
        out[2] = min(max(out[2], -m.MAX_VEL_1), m.MAX_VEL_1)
        out[3] = min(max(out[3], -m.MAX_VEL_2), m.MAX_VEL_2)
        return out

    def _cost(self, s: np.ndarray, action: int) -> float:
        s = self._next(s, action)
        for step in range(self.horizon):
            height = -math.cos(s[0]) - math.cos(s[0] + s[1])
            if height > 1.0:
                return float(step)
            s = self._next(s, self._base(s))
        return self.horizon + 1.0 - (-math.cos(s[0]) - math.cos(s[0] + s[1]))

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> int:
        if self._model is None:
            from gymnasium.envs.classic_control.acrobot import AcrobotEnv

            self._model = AcrobotEnv()
        c1, s1, c2, s2, w1, w2 = state_vector(observation)
        state = np.array([math.atan2(s1, c1), math.atan2(s2, c2), w1, w2])
        return min((0, 2, 1), key=lambda a: self._cost(state, a))

"""MuJoCo experts: energy pumping and LQR from the simulator's own model, PD controllers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gato.tasks.envs import ControlEnv
from gato.tasks.experts.base import (
    Expert,
    dlqr,
    linearize,
    register_expert,
    state_vector,
    unit_action,
    wrap_angle,
)
from gato.tasks.registry import TaskSpec

_GAINS: dict[tuple, np.ndarray] = {}


def _lqr_gain(env: ControlEnv, weights: list[float], control_cost: float) -> np.ndarray:
    """LQR gain around qpos = 0 (upright) in the simulator's control units (cached per task)."""
    key = (env.task.id, env.task.suite, tuple(sorted(env.task.env.items())), tuple(weights),
           control_cost)  # fmt: skip
    if key not in _GAINS:
        _GAINS[key] = _compute_lqr_gain(env, weights, control_cost)
    return _GAINS[key]


def _compute_lqr_gain(env: ControlEnv, weights: list[float], control_cost: float) -> np.ndarray:
    if hasattr(env, "physics"):  # dm-control
        physics = env.physics
        model = physics.model.ptr
        substeps = env.substeps
    else:  # gymnasium MuJoCo
        model = env.unwrapped.model
        substeps = int(env.unwrapped.frame_skip)
    A, B = linearize(model, np.zeros(model.nq), substeps)
    return dlqr(A, B, np.diag(weights), np.eye(B.shape[1]) * control_cost)


class _LQRExpert(Expert):
    """Shared machinery: LQR gains computed once per process from the task's model."""

    weights: list[float] = []
    control_cost = 1.0

    def __init__(self, task: TaskSpec) -> None:
        super().__init__(task)
        self._gain: list[float] | None = None
        self._bounds = (-1.0, 1.0)

    def _lqr(self, state: list[float], env: ControlEnv) -> float:
        """LQR control (first actuator, canonical units) for a state [qpos..., qvel...]."""
        if self._gain is None:
            self._gain = _lqr_gain(env, self.weights, self.control_cost)[0].tolist()
            self._bounds = tuple(float(b[0]) for b in env.action_bounds)
        force = -sum(k * x for k, x in zip(self._gain, state, strict=True))
        low, high = self._bounds
        return 2.0 * (force - low) / (high - low) - 1.0


@register_expert("cartpole-swingup")
class CartpoleSwingup(_LQRExpert):
    """dm-control cartpole: pump the pole's energy with the cart, then LQR near upright.

    Observation: cart x, pole cos, sin, cart velocity, pole angular velocity. Energy is
    normalised so that upright at rest is 0 (uniform pole of length 1: E = w^2 / (3 g) + cos - 1).
    The pump pushes the cart against the pole's swing, plus a spring-damper keeping the cart off
    the rails.

    Args:
        pump_gain: force per unit of missing energy.
        centre_gain, centre_damping: spring and damper on the cart during the swing-up.
        catch_cosine: LQR takes over above this pole cosine.
    """

    weights = [1.0, 10.0, 0.1, 0.1]

    def __init__(
        self,
        task: TaskSpec,
        pump_gain: float = 3.0,
        centre_gain: float = 0.5,
        centre_damping: float = 0.5,
        catch_cosine: float = 0.9,
    ) -> None:
        super().__init__(task)
        self.pump_gain, self.centre_gain = pump_gain, centre_gain
        self.centre_damping, self.catch_cosine = centre_damping, catch_cosine

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        x, cos, sin, dx, dtheta = state_vector(observation)
        if cos > self.catch_cosine:
            return unit_action(self._lqr([x, math.atan2(sin, cos), dx, dtheta], env))
        energy = dtheta * dtheta / (3.0 * 9.81) + cos - 1.0
        direction = -1.0 if dtheta * cos > 0 else 1.0
        force = -self.pump_gain * energy * direction
        return unit_action(force - self.centre_gain * x - self.centre_damping * dx)


@register_expert("pendulum-swingup")
class PendulumSwingup(_LQRExpert):
    """dm-control pendulum: torque along the motion until the swing reaches the top, then LQR.

    Observation: cos, sin (0 upright), angular velocity. The torque limit (1 Nm) is a fifth of
    the gravity torque, so the pendulum has to be pumped over several swings.

    Args:
        catch_cosine: LQR takes over above this cosine.
        energy_margin: keep pumping until the energy exceeds the top's by this much (J), so the
            pendulum arrives with a little speed to spare despite the joint damping.
    """

    weights = [10.0, 1.0]
    control_cost = 0.1

    def __init__(self, task: TaskSpec, catch_cosine: float = 0.8, energy_margin: float = 0.1):
        super().__init__(task)
        self.catch_cosine, self.energy_margin = catch_cosine, energy_margin

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        cos, sin, velocity = state_vector(observation)
        if cos > self.catch_cosine:
            return unit_action(self._lqr([math.atan2(sin, cos), velocity], env))
        # Point mass 1 kg at 0.5 m: E = I w^2 / 2 + m g l (cos - 1), I = 0.25.
        energy = 0.125 * velocity * velocity + 4.905 * (cos - 1.0)
        if energy < self.energy_margin:
            return unit_action(1.0 if velocity >= 0 else -1.0)
        return unit_action(0.0)


@register_expert("mujoco-lqr")
class MujocoLQR(_LQRExpert):
    """gymnasium InvertedPendulum / InvertedDoublePendulum: LQR around upright.

    The state [qpos, qvel] is read from the observation: InvertedPendulum gives it directly;
    InvertedDoublePendulum gives x, sines, cosines and velocities.

    Args:
        weights: LQR state weights over [qpos..., qvel...].
        control_cost: LQR control weight.
    """

    def __init__(
        self, task: TaskSpec, weights: list[float] | None = None, control_cost: float = 1.0
    ) -> None:
        super().__init__(task)
        self.weights = list(weights) if weights is not None else []
        self.control_cost = control_cost

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        obs = state_vector(observation)
        if len(obs) == 4:  # InvertedPendulum: x, theta, dx, dtheta
            state = obs
        else:  # InvertedDoublePendulum: x, sin1, sin2, cos1, cos2, dx, dtheta1, dtheta2, ...
            state = [
                obs[0],
                math.atan2(obs[1], obs[3]),
                math.atan2(obs[2], obs[4]),
                obs[5],
                obs[6],
                obs[7],
            ]
        if not self.weights:
            self.weights = [1.0] * len(state)
        return unit_action(self._lqr(state, env))


# ---------------------------------------------------------------------------------------------
# PD controllers
# ---------------------------------------------------------------------------------------------


@register_expert("point-mass-pd")
class PointMassPD(Expert):
    """dm-control point_mass: force = -kp position - kd velocity (the target is the origin).

    Each control pulls a tendon along a direction of the plane; `easy` uses the x and y axes,
    `hard` draws two random directions per episode. The expert reads them from the model
    (`wrap_prm`, the tendons' joint coefficients) and solves for the controls that produce the
    wanted force.

    Args:
        kp, kd: gains in canonical action units per metre and per metre/second.
    """

    def __init__(self, task: TaskSpec, kp: float = 40.0, kd: float = 5.0) -> None:
        super().__init__(task)
        self.kp, self.kd = kp, kd

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        x, y, dx, dy = state_vector(observation)
        fx, fy = -self.kp * x - self.kd * dx, -self.kp * y - self.kd * dy
        # Force on the joints = u1 d1 + u2 d2 with d1, d2 the tendon directions: solve for u.
        a, b, c, d = env.physics.model.wrap_prm[:4].tolist()  # d1 = (a, b), d2 = (c, d)
        det = a * d - b * c
        action = [(d * fx - c * fy) / det, (a * fy - b * fx) / det]
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


@register_expert("reacher-pd")
class ReacherPD(Expert):
    """dm-control reacher: inverse kinematics to the target, then joint-space PD.

    Observation: shoulder and wrist angles, finger-to-target vector (x, y), joint velocities.
    Both links are 0.12 m, so the target's joint angles have a closed form; of the two elbow
    solutions the one nearer the current posture is taken (a Jacobian-transpose law stalls when
    the target lies behind the arm).

    Args:
        kp: torque per radian of joint error (canonical units).
        kd: torque per rad/s of joint velocity.
    """

    def __init__(self, task: TaskSpec, kp: float = 10.0, kd: float = 0.5) -> None:
        super().__init__(task)
        self.kp, self.kd = kp, kd

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        q1, q2, ex, ey, w1, w2 = state_vector(observation)
        length = 0.12
        tx = length * (math.cos(q1) + math.cos(q1 + q2)) + ex
        ty = length * (math.sin(q1) + math.sin(q1 + q2)) + ey
        reach = min(math.hypot(tx, ty), 2 * length * 0.9999)
        elbow = math.acos(max(-1.0, min(1.0, reach * reach / (2 * length * length) - 1.0)))
        best = None
        for q2_goal in (elbow, -elbow):
            q1_goal = math.atan2(ty, tx) - math.atan2(math.sin(q2_goal), 1.0 + math.cos(q2_goal))
            e1, e2 = wrap_angle(q1_goal - q1), q2_goal - q2
            if best is None or abs(e1) + abs(e2) < abs(best[0]) + abs(best[1]):
                best = (e1, e2)
        action = [self.kp * best[0] - self.kd * w1, self.kp * best[1] - self.kd * w2]
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


@register_expert("reacher-ik")
class GymReacherIK(Expert):
    """gymnasium Reacher-v5: inverse kinematics to the target, then joint-space PD.

    Observation: cos q1, cos q2, sin q1, sin q2, target x, y, joint velocities, fingertip minus
    target (x, y, z). The links are 0.1 m and 0.11 m (to the fingertip), so the target's joint
    angles have a closed form; of the two elbow solutions the one nearer the current posture is
    taken. The reward charges the squared torque, so the gains stay moderate.

    Args:
        kp: torque per radian of joint error (canonical units).
        kd: torque per rad/s of joint velocity.
    """

    LINKS = (0.1, 0.11)

    def __init__(self, task: TaskSpec, kp: float = 1.0, kd: float = 0.1) -> None:
        super().__init__(task)
        self.kp, self.kd = kp, kd

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> np.ndarray:
        c1, c2, s1, s2, tx, ty, w1, w2, *_ = state_vector(observation)
        q1, q2 = math.atan2(s1, c1), math.atan2(s2, c2)
        a, b = self.LINKS
        reach = min(math.hypot(tx, ty), (a + b) * 0.9999)
        cos_elbow = (reach * reach - a * a - b * b) / (2 * a * b)
        elbow = math.acos(max(-1.0, min(1.0, cos_elbow)))
        best = None
        for q2_goal in (elbow, -elbow):
            q1_goal = math.atan2(ty, tx) - math.atan2(
                b * math.sin(q2_goal), a + b * math.cos(q2_goal)
            )
            e1, e2 = wrap_angle(q1_goal - q1), wrap_angle(q2_goal - q2)
            if best is None or abs(e1) + abs(e2) < abs(best[0]) + abs(best[1]):
                best = (e1, e2)
        action = [self.kp * best[0] - self.kd * w1, self.kp * best[1] - self.kd * w2]
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)

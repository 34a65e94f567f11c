"""The expert interface, registration of experts by name, and helpers shared by the controllers."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gato.tasks.envs import ControlEnv
from gato.tasks.registry import TaskSpec


class Expert:
    """A policy: `reset(seed)` at each episode start, then `act(observation, env)` each step.

    `observation` is the adapter's canonical dict; `env` is the adapter itself, for experts that
    read privileged state (Atari RAM, the MuJoCo model). Actions are canonical: an int for
    discrete tasks, floats in [-1, 1] for continuous ones.
    """

    def __init__(self, task: TaskSpec) -> None:
        self.task = task
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> Any:
        raise NotImplementedError

    def act_and_label(self, observation: Mapping[str, Any], env: ControlEnv) -> tuple[Any, Any]:
        """(the action to play, the action to record): the same action, except for experts that
        play one action and teach another (`NoisyExpert` with `record="expert"`, DART)."""
        action = self.act(observation, env)
        return action, action

    def played(self, action: Any, chosen: Any) -> None:
        """Told after `act` when the action played was not the one it chose (`NoisyExpert`):
        an expert that follows a plan made from the state drops the plan here. Default: no-op."""


REGISTERED: dict[str, Callable[..., Expert]] = {}
"""Expert name -> factory `(task, **expert_params) -> Expert`, for the expert modules imported so
far (`gato.tasks.experts.EXPERTS` imports a module when its expert is asked for)."""


def register_expert(name: str) -> Callable[[type[Expert]], type[Expert]]:
    """Class decorator: the expert the registry's `expert = "<name>"` builds."""

    def decorator(cls: type[Expert]) -> type[Expert]:
        if name in REGISTERED:
            raise ValueError(f"expert {name!r} registered twice")
        REGISTERED[name] = cls
        cls.name = name
        return cls

    return decorator


class WrappedExpert(Expert):
    """An expert around another (`self.expert`) that plays one action and records another
    (`act_and_label`): reset with it, and drawing from a random stream of its own (`STREAM`, a
    salt of the seed), so the wrapped expert's draws are those of a run without the wrapper."""

    STREAM = 0

    def reset(self, seed: int | None = None) -> None:
        self.expert.reset(seed)
        self.rng = np.random.default_rng(None if seed is None else [seed, self.STREAM])

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> Any:
        return self.act_and_label(observation, env)[0]


class NoisyExpert(WrappedExpert):
    """Another policy's actions with exploration noise added before they are played.

    Noise injection in the demonstrator (DART, Laskey et al. 2017): the recorded episodes visit
    the states a learner's own small errors lead to, with the expert's corrections from there. For
    a sequence model that also sees its previous actions it matters twice: a smooth controller's
    action is nearly the previous one (the swing-up experts repeat their last action to within
    0.05 on 97% of steps), so a model can fit such data by copying and then never switches when
    it acts on its own; independent noise on every recorded action makes the last action a poor
    predictor of the next and the observation a good one.

    Continuous actions: each value + N(0, noise^2), clipped to [-1, 1]. Discrete actions: a
    uniformly random action with probability `noise` (epsilon-greedy).

    What is recorded (`act_and_label`'s second action) is set by `record`: "played", the noisy
    action (exploration data, as an RL replay holds it), or "expert", the wrapped expert's own
    clean action in the state the noise led to: DART proper, the label a behaviour clone must
    learn (it teaches the correction, not the noise).
    """

    RECORDS = ("played", "expert")
    STREAM = 0x5EED

    def __init__(
        self, expert: Expert, noise: float, seed: int | None = 0, record: str = "played"
    ) -> None:
        if record not in self.RECORDS:
            raise ValueError(f"record must be one of {self.RECORDS}, got {record!r}")
        if not 0.0 < noise <= (1.0 if expert.task.action.kind == "discrete" else 2.0):
            raise ValueError(
                f"action_noise must lie in (0, 1] for discrete actions (a probability) and in "
                f"(0, 2] for continuous ones (a standard deviation on [-1, 1]), got {noise}"
            )
        super().__init__(expert.task)
        self.expert = expert
        self.noise = float(noise)
        self.record = record
        kind = "dart" if record == "expert" else "noise"
        self.name = f"{getattr(expert, 'name', type(expert).__name__)}+{kind}{noise:g}"
        self.reset(seed)

    def act_and_label(self, observation: Mapping[str, Any], env: ControlEnv) -> tuple[Any, Any]:
        action = self.expert.act(observation, env)
        if self.task.action.kind == "discrete":
            played = env.sample_action(self.rng) if self.rng.random() < self.noise else action
            if played != action:
                self.expert.played(played, action)
        else:
            action = np.asarray(action, dtype=np.float32)
            noisy = action + self.noise * self.rng.standard_normal(action.shape)
            played = np.clip(noisy, -1.0, 1.0).astype(np.float32)
            action = np.clip(action, -1.0, 1.0)
        return played, (action if self.record == "expert" else played)


@register_expert("random")
class RandomPolicy(Expert):
    """Uniformly random actions: the policy behind every task's random score."""

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> Any:
        return env.sample_action(self.rng)


def state_vector(observation: Mapping[str, Any]) -> list[float]:
    """The continuous observation as Python floats.

    Scalar arithmetic on Python floats is several times cheaper than on numpy scalars, and
    experts run every collected step.
    """
    return observation["continuous_observations"].tolist()


def wrap_angle(angle: float) -> float:
    """An angle in [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def unit_action(value: float) -> np.ndarray:
    """A one-dimensional canonical action: `value` clipped to [-1, 1], float32 (1,)."""
    return np.array([min(1.0, max(-1.0, value))], dtype=np.float32)


def reflect(y: float, lo: float, hi: float) -> float:
    """Where a point moving freely along y ends up between walls at lo and hi (mirror bounces)."""
    span = hi - lo
    m = (y - lo) % (2.0 * span)
    return lo + (m if m <= span else 2.0 * span - m)


def dlqr(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, tol: float = 1e-10
) -> np.ndarray:
    """Discrete-time LQR gain K (u = -K x) by Riccati iteration; shapes A (n, n), B (n, m)."""
    P = Q.copy()
    for _ in range(100_000):
        BtP = B.T @ P
        K = np.linalg.solve(R + BtP @ B, BtP @ A)
        P_next = Q + A.T @ P @ (A - B @ K)
        if np.abs(P_next - P).max() <= tol * max(1.0, np.abs(P).max()):
            return K
        P = P_next
    raise RuntimeError("Riccati iteration did not converge (is the system stabilisable?)")


def linearize(model: Any, qpos: np.ndarray, substeps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Linearise a MuJoCo model's control step around (qpos, zero velocity, zero control).

    Central finite differences of `substeps` calls of `mj_step` (any integrator, RK4 included):
    returns A (2 nq, 2 nq) and B (2 nq, nu) over the state [qpos, qvel] (hinge and slide joints).
    """
    import mujoco

    data = mujoco.MjData(model)
    nq = model.nq

    def f(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = x[:nq], x[nq:], u
        for _ in range(substeps):
            mujoco.mj_step(model, data)
        return np.concatenate([data.qpos, data.qvel])

    x0 = np.concatenate([np.asarray(qpos, dtype=np.float64), np.zeros(nq)])
    u0 = np.zeros(model.nu)
    eps = 1e-5
    A = np.stack([(f(x0 + eps * e, u0) - f(x0 - eps * e, u0)) / (2 * eps) for e in np.eye(2 * nq)])
    B = np.stack(
        [(f(x0, u0 + eps * e) - f(x0, u0 - eps * e)) / (2 * eps) for e in np.eye(model.nu)]
    )
    return A.T, B.T

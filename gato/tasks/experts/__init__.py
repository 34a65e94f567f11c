"""Scripted expert policies: controllers that really solve their tasks, no training needed.

An expert maps the adapter's canonical observation (plus, for privileged experts, the simulator
behind it: Atari RAM, the MuJoCo model) to a canonical action. The registry names each task's
expert; `make_expert(task)` builds it. `EXPERT_MODULES` says which module defines each expert,
and a module is imported only when one of its experts is asked for, so finding an expert does
not import every suite's expert code (nor `gato.rl`, for the trained `impala` expert).

The controllers:

- Atari Pong and Breakout read the paddle and ball from the console RAM, predict where the ball
  crosses the paddle's line (bouncing off the walls) and steer the paddle there. Pong plans each
  return in the emulator (saved states) and replays the one with the steepest rebound, which
  the built-in opponent rarely reaches; Breakout plans three steps ahead with a measured model
  of the paddle's momentum and aims at a slightly random spot of the paddle to vary the rebound
  angle (and more so when no brick has broken for a while). `pong-frames` plays Pong from the
  observed 84x84 frames alone, placing the paddle by a measured model of its momentum: an
  expert whose every input a frame-reading clone also sees.
- Cartpoles and pendulums pump energy towards the upright state's, then hand over to LQR gains
  computed from the simulator's own MuJoCo model (finite-difference linearisation around upright
  and a discrete Riccati iteration), so no gain is tuned by hand.
- Point mass and reacher: PD control towards the target (the reacher in joint space, after
  closed-form inverse kinematics).
- Mountain car and Acrobot: energy pumping, improved by one-step lookahead: each step, every
  action is followed by the pumping policy through the task's known dynamics, and the action
  that reaches the goal soonest is played.
- BabyAI: minigrid's BabyAI bot (subgoals from the mission, breadth-first search on the level).
- Meta-World: the scripted policy Meta-World ships for each task.
- gymnasium Reacher: inverse kinematics and joint PD; dm-control point_mass hard: PD through the
  episode's random actuator directions, read from the model.
"""

import importlib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gato.tasks.experts.base import (
    REGISTERED,
    Expert,
    NoisyExpert,
    RandomPolicy,
    WrappedExpert,
    dlqr,
    linearize,
    reflect,
    register_expert,
)
from gato.tasks.registry import TaskSpec

EXPERT_MODULES: dict[str, str] = {
    "random": "gato.tasks.experts.base",
    "pong-ram": "gato.tasks.experts.atari",
    "pong-tracker": "gato.tasks.experts.atari",
    "pong-frames": "gato.tasks.experts.pong_frames",
    "breakout-ram": "gato.tasks.experts.atari",
    "pendulum-energy": "gato.tasks.experts.classic",
    "cartpole-pd": "gato.tasks.experts.classic",
    "mountain-car-pump": "gato.tasks.experts.classic",
    "acrobot-rollout": "gato.tasks.experts.classic",
    "cartpole-swingup": "gato.tasks.experts.mujoco",
    "pendulum-swingup": "gato.tasks.experts.mujoco",
    "mujoco-lqr": "gato.tasks.experts.mujoco",
    "point-mass-pd": "gato.tasks.experts.mujoco",
    "reacher-pd": "gato.tasks.experts.mujoco",
    "reacher-ik": "gato.tasks.experts.mujoco",
    "babyai-bot": "gato.tasks.experts.babyai",
    "metaworld-policy": "gato.tasks.experts.metaworld",
    # A policy trained by IMPALA: playing it needs the network code of `gato.rl`, a layer above
    # this one. Naming the module (a plugin, imported on lookup) instead of importing it keeps
    # `gato.tasks` free of `gato.rl` while the registry can still say `expert = "impala"`.
    "impala": "gato.rl.expert",
}
"""Expert name (the registry's `expert`) -> the module whose `@register_expert(name)` defines it.
A new expert adds its name here."""


class UnknownExpertError(KeyError):
    """An expert name that no module defines; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class _Experts(Mapping[str, Callable[..., Expert]]):
    """Expert name -> factory `(task, **expert_params) -> Expert`: the names of
    `EXPERT_MODULES` and any registered elsewhere. Looking a name up imports its module."""

    def __getitem__(self, name: str) -> Callable[..., Expert]:
        if name not in REGISTERED:
            if name not in EXPERT_MODULES:
                raise UnknownExpertError(f"unknown expert {name!r}; experts: {sorted(self)}")
            module = EXPERT_MODULES[name]
            importlib.import_module(module)
            if name not in REGISTERED:
                raise UnknownExpertError(
                    f"expert {name!r}: its module {module} defines no @register_expert({name!r})"
                )
        return REGISTERED[name]

    def __contains__(self, name: object) -> bool:
        return name in EXPERT_MODULES or name in REGISTERED  # no import needed to answer

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*EXPERT_MODULES, *REGISTERED]))

    def __len__(self) -> int:
        return len(set(EXPERT_MODULES) | set(REGISTERED))


EXPERTS: Mapping[str, Callable[..., Expert]] = _Experts()
"""Every expert by name; a lookup imports the module that defines it."""


def make_expert(
    task: TaskSpec,
    seed: int | None = 0,
    name: str | None = None,
    action_noise: float = 0.0,
    record: str = "played",
    learner: str | None = None,
    expert_mix: float = 0.0,
) -> Expert:
    """The task's expert (or the one called `name`; "random" is the random policy), reset;
    with `action_noise` > 0, wrapped in a `NoisyExpert` that records `record` ("played": the
    noisy action; "expert": the expert's own, DART); with `learner` (a file of `save_learner`),
    wrapped in a `LearnerLedExpert`: the learner plays (the expert with probability
    `expert_mix`), the expert's action is recorded (DAgger)."""
    if learner is not None:
        if action_noise:
            raise ValueError(
                f"learner and action_noise ({action_noise}) both set: the learner's errors are "
                "the exploration; pick one"
            )
        from gato.tasks.experts.learner import LearnerLedExpert, load_learner

        return LearnerLedExpert(
            make_expert(task, seed, name), load_learner(learner, task), expert_mix, seed
        )
    if action_noise:
        return NoisyExpert(make_expert(task, seed, name), action_noise, seed, record)
    if record not in NoisyExpert.RECORDS:
        raise ValueError(f"record must be one of {NoisyExpert.RECORDS}, got {record!r}")
    name = name or task.expert
    if name is None:
        raise ValueError(f"task {task.id!r} has no expert in the registry")
    try:
        factory = EXPERTS[name]
    except UnknownExpertError as err:
        raise ValueError(f"task {task.id!r}: {err}") from None
    params = task.expert_params if name == task.expert else {}
    check_param_types(factory, params, name)
    try:
        expert = factory(task, **params)
    except TypeError as err:
        raise ValueError(f"task {task.id!r}: bad expert_params for {name!r}: {err}") from None
    expert.reset(seed)
    return expert


_SCALARS = {int: "an int", float: "a number", bool: "true or false", str: "a string"}


def _fits(value: Any, hint: Any) -> bool | None:
    """Whether `value` fits the annotation `hint`; None where `hint` is not one checked here."""
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) is not False for v in value)
        return len(value) == len(args) and all(
            _fits(v, a) is not False for v, a in zip(value, args, strict=True)
        )
    return None


def check_param_types(factory: Callable[..., Any], params: Mapping[str, Any], name: str) -> None:
    """Refuse an expert parameter whose value does not fit its annotation in the factory's
    signature (a class's `__init__`): a value read from the command line ("horizon=" gives the
    text "") fails here, naming the parameter, not as a `TypeError` mid-episode."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):  # annotations this module cannot resolve: left unchecked
        return
    for key, value in params.items():
        hint = hints.get(key)
        if hint is not None and _fits(value, hint) is False:
            wanted = _SCALARS.get(hint) or f"a list ({hint})"
            got = "" if typing.get_origin(hint) is tuple else f", got {type(value).__name__}"
            raise ValueError(f"expert {name!r}: parameter {key}={value!r} must be {wanted}{got}")


__all__ = [
    "EXPERTS",
    "EXPERT_MODULES",
    "check_param_types",
    "Expert",
    "NoisyExpert",
    "RandomPolicy",
    "UnknownExpertError",
    "WrappedExpert",
    "dlqr",
    "linearize",
    "make_expert",
    "reflect",
    "register_expert",
]

"""Scripted expert policies: controllers that really solve their tasks, no training needed.

An expert maps the adapter's canonical observation (plus, for privileged experts, the simulator
behind it: Atari RAM, the MuJoCo model) to a canonical action. The registry names each task's
expert; `make_expert(task)` builds it. Later issues add trained experts (IMPALA) as more entries of
`EXPERTS`.

The controllers:

- Atari Pong and Breakout read the paddle and ball from the console RAM, predict where the ball
  crosses the paddle's line (bouncing off the walls) and steer the paddle there. Pong plans each
  return in the emulator (saved states) and replays the one with the steepest rebound, which
  the built-in opponent rarely reaches; Breakout plans three steps ahead with a measured model
  of the paddle's momentum and aims at a slightly random spot of the paddle to vary the rebound
  angle (and more so when no brick has broken for a while).
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

from gato.tasks.experts.base import (
    EXPERTS,
    Expert,
    NoisyExpert,
    RandomPolicy,
    dlqr,
    linearize,
    make_expert,
    reflect,
    register_expert,
)

# Importing the controller modules registers their experts.
from gato.tasks.experts import atari, babyai, classic, metaworld, mujoco  # noqa: E402, F401  isort: skip
from gato.tasks.experts import impala  # noqa: E402, F401  isort: skip  (trained by gato.rl.impala)

__all__ = [
    "EXPERTS",
    "Expert",
    "NoisyExpert",
    "RandomPolicy",
    "dlqr",
    "linearize",
    "make_expert",
    "reflect",
    "register_expert",
]

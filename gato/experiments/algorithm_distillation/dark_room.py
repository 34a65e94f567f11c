"""Dark Room and Dark Key-to-Door (Laskin et al., ICLR 2023): gridworlds whose target is invisible.

Both are gymnasium environments on a `size` x `size` grid. The agent observes only its own cell
(x, y), so a task can be solved only by remembering where reward came from: across episodes, in
the weights of a learner (the source RL algorithm) or in the context of a transformer (Algorithm
Distillation).

- Dark Room: the agent starts every episode at the centre; reward 1 on every step that ends on
  the goal cell (the agent may stay there with the no-op); episodes last 20 steps.
- Dark Key-to-Door: the agent starts every episode on a uniformly random cell; reward 1 the
  first time it steps on the key, and 1 the first time it steps on the door while holding the
  key; episodes last 50 steps (so the return is at most 2). The episode does not end at the
  door: every episode has the same length, which keeps learning histories and in-context
  evaluation in lockstep across tasks.

Actions (both): 0 no-op, 1 up (y + 1), 2 right (x + 1), 3 down (y - 1), 4 left (x - 1); a move
into a wall leaves the agent where it is.

The dynamics are pure, vectorised functions (`move`, `dark_room_reward`, `key_to_door_step`)
shared by the gymnasium classes and by the batched source algorithm in
`gato.experiments.algorithm_distillation.histories`, so
both paths step the same world.

Tasks: `goal_split` and `key_door_split` cut the tasks into fixed, disjoint training and
held-out sets (a seeded permutation, the same on every machine).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

__all__ = [
    "MOVES",
    "NUM_ACTIONS",
    "DarkKeyToDoor",
    "DarkRoom",
    "KeyDoorStep",
    "dark_room_reward",
    "expert_action",
    "goal_split",
    "key_door_split",
    "key_to_door_step",
    "move",
    "optimal_return",
]

MOVES = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0]], dtype=np.int64)
"""(5, 2) displacement (dx, dy) of each action: no-op, up, right, down, left."""

NUM_ACTIONS = len(MOVES)

SPLIT_SEED = 20230501
"""Seed of the fixed task split: changing it changes which tasks are held out."""


# ---------------------------------------------------------------------------------------------
# Dynamics (pure functions, vectorised over any leading shape)
# ---------------------------------------------------------------------------------------------


def _check_cells(cells: np.ndarray, size: int, name: str) -> np.ndarray:
    cells = np.asarray(cells)
    if cells.shape[-1:] != (2,):
        raise ValueError(f"{name}: expected cells (..., 2), got shape {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise ValueError(f"{name}: cells must be integers, got dtype {cells.dtype}")
    if cells.size and (cells.min() < 0 or cells.max() >= size):
        raise ValueError(f"{name}: cells must lie in [0, {size}), got values {cells.min()}..")
    return cells.astype(np.int64, copy=False)


def move(position: np.ndarray, action: np.ndarray, size: int) -> np.ndarray:
    """Positions (..., 2) and actions (...) -> new positions (..., 2), clipped to the grid."""
    position = _check_cells(position, size, "position")
    action = np.asarray(action)
    if not np.issubdtype(action.dtype, np.integer):
        raise ValueError(f"action: expected integers, got dtype {action.dtype}")
    if action.shape != position.shape[:-1]:
        raise ValueError(
            f"action: shape {action.shape} does not match positions {position.shape[:-1]}"
        )
    if action.size and (action.min() < 0 or action.max() >= NUM_ACTIONS):
        raise ValueError(f"action: must lie in [0, {NUM_ACTIONS}), got {action.min()}..")
    return np.clip(position + MOVES[action], 0, size - 1)


def dark_room_reward(position: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Positions (..., 2), goals (..., 2) -> (...) float32: 1 where the agent is on its goal."""
    return np.all(np.asarray(position) == np.asarray(goal), axis=-1).astype(np.float32)


class KeyDoorStep(NamedTuple):
    """The state after one Key-to-Door step, and the reward it gave (all (...) arrays)."""

    position: np.ndarray
    has_key: np.ndarray
    opened: np.ndarray
    reward: np.ndarray


def key_to_door_step(
    position: np.ndarray,
    has_key: np.ndarray,
    opened: np.ndarray,
    action: np.ndarray,
    key: np.ndarray,
    door: np.ndarray,
    size: int,
) -> KeyDoorStep:
    """One step of Dark Key-to-Door, vectorised: positions/key/door (..., 2), flags (...) bool.

    Reward 1 on the step that first reaches the key, and 1 on the step that first reaches the
    door with the key; 0 otherwise.
    """
    new = move(position, action, size)
    has_key = np.asarray(has_key, dtype=bool)
    opened = np.asarray(opened, dtype=bool)
    got_key = ~has_key & np.all(new == key, axis=-1)
    has_key = has_key | got_key
    opens = has_key & ~opened & ~got_key & np.all(new == door, axis=-1)
    reward = (got_key | opens).astype(np.float32)
    return KeyDoorStep(new, has_key, opened | opens, reward)


def optimal_return(goal: np.ndarray, size: int = 9, episode_length: int = 20) -> np.ndarray:
    """Best Dark Room return from the centre: goals (..., 2) -> (...) float.

    A goal d > 0 moves away is first reached on step d and then held: episode_length - d + 1
    rewarded steps; the centre itself pays every step.
    """
    goal = _check_cells(goal, size, "goal")
    distance = np.abs(goal - size // 2).sum(axis=-1)
    return np.where(distance == 0, episode_length, episode_length - distance + 1).astype(float)


def expert_action(position: np.ndarray, goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A shortest-path Dark Room action: a uniformly random move that closes the distance to
    the goal, or the no-op on the goal. Positions and goals (..., 2) -> actions (...) int64."""
    position = np.asarray(position, dtype=np.int64)
    delta = np.asarray(goal, dtype=np.int64) - position  # (..., 2)
    # Per action, whether it shortens the Manhattan distance (the no-op only at the goal).
    helps = np.stack(
        [
            np.all(delta == 0, axis=-1),
            delta[..., 1] > 0,
            delta[..., 0] > 0,
            delta[..., 1] < 0,
            delta[..., 0] < 0,
        ],
        axis=-1,
    )  # (..., 5)
    scores = np.where(helps, rng.random(helps.shape), -1.0)
    return scores.argmax(axis=-1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Task splits
# ---------------------------------------------------------------------------------------------


def _split(tasks: np.ndarray, num_held_out: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < num_held_out < len(tasks):
        raise ValueError(
            f"{name}: num_held_out must lie in [1, {len(tasks) - 1}], got {num_held_out}"
        )
    order = np.random.default_rng(SPLIT_SEED).permutation(len(tasks))
    held = np.sort(order[:num_held_out])
    train = np.sort(order[num_held_out:])
    return tasks[train], tasks[held]


def goal_split(size: int = 9, num_held_out: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The fixed Dark Room split: (train goals (N, 2), held-out goals (M, 2)), disjoint, together
    every cell of the grid. The same split for the same arguments on every call and machine."""
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    cells = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1)
    return _split(cells.reshape(-1, 2), num_held_out, "goal_split")


def key_door_split(size: int = 9, num_held_out: int = 648) -> tuple[np.ndarray, np.ndarray]:
    """The fixed Key-to-Door split of every (key, door) pair with key != door:
    (train tasks (N, 2, 2), held-out tasks (M, 2, 2)), [:, 0] the key and [:, 1] the door."""
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    cells = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1)
    cells = cells.reshape(-1, 2)
    key, door = np.meshgrid(np.arange(len(cells)), np.arange(len(cells)), indexing="ij")
    keep = key.ravel() != door.ravel()
    pairs = np.stack([cells[key.ravel()[keep]], cells[door.ravel()[keep]]], axis=1)
    return _split(pairs, num_held_out, "key_door_split")


# ---------------------------------------------------------------------------------------------
# gymnasium environments
# ---------------------------------------------------------------------------------------------


class DarkRoom(gym.Env):
    """Dark Room: find an invisible goal from the centre of a `size` x `size` room.

    Args:
        goal: the goal cell (x, y); part of the task, never observed.
        size: side of the room (9 in the paper).
        episode_length: steps per episode (20 in the paper); the episode is truncated there.

    Observation: int64 (2,) the agent's cell (x, y). Reward: 1 on every step ending on the goal.
    """

    metadata = {"render_modes": []}

    def __init__(self, goal: Any, size: int = 9, episode_length: int = 20) -> None:
        if size < 2 or episode_length < 1:
            raise ValueError(
                f"DarkRoom: size must be >= 2 and episode_length >= 1, got {size}, {episode_length}"
            )
        self.size = size
        self.episode_length = episode_length
        self.goal = _check_cells(np.asarray(goal), size, "DarkRoom goal").copy()
        if self.goal.shape != (2,):
            raise ValueError(f"DarkRoom goal: expected one cell (2,), got {self.goal.shape}")
        self.observation_space = gym.spaces.MultiDiscrete([size, size])
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.position = np.full(2, size // 2, dtype=np.int64)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = np.full(2, self.size // 2, dtype=np.int64)
        self.steps = 0
        return self.position.copy(), {}

    def step(self, action: Any):
        if self.steps >= self.episode_length:
            raise ValueError("DarkRoom.step: the episode is over; call reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"DarkRoom.step: action must be in [0, {NUM_ACTIONS}), got {action}")
        self.position = move(self.position, np.int64(action), self.size)
        self.steps += 1
        reward = float(dark_room_reward(self.position, self.goal))
        truncated = self.steps >= self.episode_length
        return self.position.copy(), reward, False, truncated, {}


class DarkKeyToDoor(gym.Env):
    """Dark Key-to-Door: find an invisible key, then an invisible door.

    Args:
        key, door: the cells (x, y) of the key and the door (different cells); never observed.
        size: side of the room (9 in the paper).
        episode_length: steps per episode (50 in the paper); the episode is truncated there.

    Observation: int64 (2,) the agent's cell. Each episode starts on a uniformly random cell
    (drawn from the environment's seeded generator) without the key.
    """

    metadata = {"render_modes": []}

    def __init__(self, key: Any, door: Any, size: int = 9, episode_length: int = 50) -> None:
        if size < 2 or episode_length < 1:
            raise ValueError(
                f"DarkKeyToDoor: size must be >= 2 and episode_length >= 1, got {size}, "
                f"{episode_length}"
            )
        self.size = size
        self.episode_length = episode_length
        self.key = _check_cells(np.asarray(key), size, "DarkKeyToDoor key").copy()
        self.door = _check_cells(np.asarray(door), size, "DarkKeyToDoor door").copy()
        if self.key.shape != (2,) or self.door.shape != (2,):
            raise ValueError("DarkKeyToDoor: key and door must each be one cell (2,)")
        if np.array_equal(self.key, self.door):
            raise ValueError(f"DarkKeyToDoor: key and door must differ, both are {self.key}")
        self.observation_space = gym.spaces.MultiDiscrete([size, size])
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.position = np.zeros(2, dtype=np.int64)
        self.has_key = False
        self.opened = False
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = self.np_random.integers(0, self.size, size=2).astype(np.int64)
        self.has_key = False
        self.opened = False
        self.steps = 0
        return self.position.copy(), {}

    def step(self, action: Any):
        if self.steps >= self.episode_length:
            raise ValueError("DarkKeyToDoor.step: the episode is over; call reset()")
        if not self.action_space.contains(action):
            raise ValueError(
                f"DarkKeyToDoor.step: action must be in [0, {NUM_ACTIONS}), got {action}"
            )
        out = key_to_door_step(
            self.position,
            self.has_key,
            self.opened,
            np.int64(action),
            self.key,
            self.door,
            self.size,
        )
        self.position = out.position
        self.has_key, self.opened = bool(out.has_key), bool(out.opened)
        self.steps += 1
        truncated = self.steps >= self.episode_length
        info = {"has_key": self.has_key, "opened": self.opened}
        return self.position.copy(), float(out.reward), False, truncated, info

"""Learning histories for Algorithm Distillation: the source RL algorithm, datasets, windows.

Source algorithm: tabular Q-learning with epsilon-greedy exploration, run from scratch on each
task and recorded episode by episode, in order (`q_learning_histories`). It runs all tasks of a
batch at once on the pure dynamics of `gato.experiments.algorithm_distillation.dark_room`, one
vectorised step for every task.

Datasets: one row per episode in the JAT columns (`discrete_observations` (T, 2) cells,
`discrete_actions` (T,), `rewards` (T,)) plus `task` (index of the history), `episode` (index
within it), `goal` (the hidden cell, for evaluation only) and `final_observation` (the cell after
the last step), written atomically with `gato.data.io.save_dataset`.

Tokens (`encode_episode`): an episode of T steps becomes T + 1 timesteps. Timestep t observes
the discrete vector [x_t, y_t, c_t] where c_t codes the reward that *preceded* it: c_0 = 0 (the
episode starts, no reward yet) and c_t = 1 + r_{t-1}; it then acts a_t. The extra timestep T
observes the final cell and the last reward and takes no action. Gato puts no rewards in its
tokens; in-context reinforcement learning cannot do without them, and carrying the reward as a
field of the next observation needs no new token type: the tokenizer, the model's local
positions and the loss mask (actions only) work unchanged. An explicit start code lets the model
see episode boundaries, which AD's across-episode context needs.

Windows (`window_episodes`): AD trains on `context_episodes` consecutive episodes of one task's
history taken every `stride` episodes (stride 1: the history as it was). A stride k > 1 shows the
model k episodes of the source's improvement between neighbouring episodes of its context, so the
algorithm it distils improves up to k times faster per episode than the source did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from gato.experiments.algorithm_distillation.dark_room import (
    NUM_ACTIONS,
    dark_room_reward,
    expert_action,
    move,
)
from gato.schema import ActionSpec
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer

__all__ = [
    "ACTION_SPEC",
    "Histories",
    "HistoryWindows",
    "QLearningConfig",
    "encode_episode",
    "episode_observations",
    "expert_histories",
    "histories_from_dataset",
    "histories_to_dataset",
    "q_learning_histories",
    "random_histories",
    "reward_code",
    "window_episodes",
]

ACTION_SPEC = ActionSpec("discrete", num_values=NUM_ACTIONS)
"""Dark Room and Key-to-Door actions: one token in [0, 5)."""

START_CODE = 0
"""Reward field of an episode's first timestep: no reward has come yet."""


# ---------------------------------------------------------------------------------------------
# Histories
# ---------------------------------------------------------------------------------------------


class Histories(NamedTuple):
    """Recorded episodes of N tasks, H episodes each, T steps per episode (all numpy).

    Attributes:
        positions: (N, H, T + 1, 2) int64 cells; [:, :, t] before step t, [:, :, T] the last.
        actions: (N, H, T) int64.
        rewards: (N, H, T) float32, the reward that followed each action.
        goals: (N, 2) int64 the hidden goal of each task.
    """

    positions: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    goals: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """(N, H) return of each episode."""
        return self.rewards.sum(axis=-1)


@dataclass
class QLearningConfig:
    """Tabular Q-learning with epsilon-greedy exploration (the source algorithm)."""

    learning_rate: float = 0.1
    """Step size alpha of the update Q(s, a) += alpha (r + gamma max Q(s', .) - Q(s, a))."""
    discount: float = 0.9
    """Discount gamma."""
    epsilon_start: float = 1.0
    """Exploration rate of the first episode."""
    epsilon_end: float = 0.05
    """Floor of the exploration rate."""
    epsilon_decay: float = 0.98
    """Per-episode factor: epsilon_e = max(epsilon_end, epsilon_start * epsilon_decay ** e)."""
    initial_value: float = 0.0
    """Initial Q-values (above 0 is optimism: untried actions look better than known ones)."""

    def __post_init__(self) -> None:
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must lie in (0, 1], got {self.learning_rate}")
        if not 0 <= self.discount < 1:
            raise ValueError(f"discount must lie in [0, 1), got {self.discount}")
        for name in ("epsilon_start", "epsilon_end", "epsilon_decay"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.epsilon_end > self.epsilon_start:
            raise ValueError(
                f"epsilon_end={self.epsilon_end} exceeds epsilon_start={self.epsilon_start}"
            )

    def epsilon(self, episode: int) -> float:
        return max(self.epsilon_end, self.epsilon_start * self.epsilon_decay**episode)


def _check_goals(goals: Any, size: int) -> np.ndarray:
    goals = np.asarray(goals)
    if goals.ndim != 2 or goals.shape[1] != 2 or len(goals) == 0:
        raise ValueError(f"goals: expected (N, 2) cells with N >= 1, got shape {goals.shape}")
    if not np.issubdtype(goals.dtype, np.integer) or goals.min() < 0 or goals.max() >= size:
        raise ValueError(f"goals: expected integer cells in [0, {size}), got {goals.tolist()}")
    return goals.astype(np.int64)


def _check_counts(num_episodes: int, episode_length: int, size: int) -> None:
    if num_episodes < 1 or episode_length < 1 or size < 2:
        raise ValueError(
            f"num_episodes and episode_length must be >= 1 and size >= 2, got {num_episodes}, "
            f"{episode_length}, {size}"
        )


def _rollout(
    goals: np.ndarray,
    num_episodes: int,
    episode_length: int,
    size: int,
    act,
    learn=None,
) -> Histories:
    """Run every task in lockstep for `num_episodes` Dark Room episodes, recording them.

    act(episode, positions (N, 2)) -> actions (N,); learn(positions, actions, rewards, next).
    """
    n = len(goals)
    positions = np.empty((n, num_episodes, episode_length + 1, 2), dtype=np.int64)
    actions = np.empty((n, num_episodes, episode_length), dtype=np.int64)
    rewards = np.empty((n, num_episodes, episode_length), dtype=np.float32)
    for e in range(num_episodes):
        position = np.full((n, 2), size // 2, dtype=np.int64)
        positions[:, e, 0] = position
        for t in range(episode_length):
            action = act(e, position)
            new = move(position, action, size)
            reward = dark_room_reward(new, goals)
            if learn is not None:
                learn(position, action, reward, new)
            actions[:, e, t], rewards[:, e, t], positions[:, e, t + 1] = action, reward, new
            position = new
    return Histories(positions, actions, rewards, goals)


def q_learning_histories(
    goals: Any,
    num_episodes: int,
    config: QLearningConfig | None = None,
    seed: int = 0,
    size: int = 9,
    episode_length: int = 20,
) -> Histories:
    """Tabular Q-learning from scratch on each Dark Room goal, every episode recorded in order.

    Ties between greedy actions are broken uniformly at random (with Q initialised flat, the
    first episodes are random walks). Returns `Histories` of shape (N, num_episodes, ...).
    """
    config = config or QLearningConfig()
    goals = _check_goals(goals, size)
    _check_counts(num_episodes, episode_length, size)
    rng = np.random.default_rng(seed)
    n = len(goals)
    rows = np.arange(n)
    q = np.full((n, size, size, NUM_ACTIONS), config.initial_value, dtype=np.float64)

    def act(episode: int, position: np.ndarray) -> np.ndarray:
        values = q[rows, position[:, 0], position[:, 1]]  # (N, A)
        best = values >= values.max(axis=1, keepdims=True) - 1e-12
        greedy = np.where(best, rng.random(values.shape), -1.0).argmax(axis=1)
        explore = rng.random(n) < config.epsilon(episode)
        return np.where(explore, rng.integers(NUM_ACTIONS, size=n), greedy)

    def learn(position, action, reward, new) -> None:
        target = reward + config.discount * q[rows, new[:, 0], new[:, 1]].max(axis=1)
        index = (rows, position[:, 0], position[:, 1], action)
        q[index] += config.learning_rate * (target - q[index])

    return _rollout(goals, num_episodes, episode_length, size, act, learn)


def expert_histories(
    goals: Any, num_episodes: int, seed: int = 0, size: int = 9, episode_length: int = 20
) -> Histories:
    """Shortest-path expert episodes on each goal (ties between optimal moves at random)."""
    goals = _check_goals(goals, size)
    _check_counts(num_episodes, episode_length, size)
    rng = np.random.default_rng(seed)
    return _rollout(
        goals, num_episodes, episode_length, size, lambda e, p: expert_action(p, goals, rng)
    )


def random_histories(
    goals: Any, num_episodes: int, seed: int = 0, size: int = 9, episode_length: int = 20
) -> Histories:
    """Uniformly random actions on each goal."""
    goals = _check_goals(goals, size)
    _check_counts(num_episodes, episode_length, size)
    rng = np.random.default_rng(seed)
    n = len(goals)
    return _rollout(
        goals, num_episodes, episode_length, size, lambda e, p: rng.integers(NUM_ACTIONS, size=n)
    )


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------


def histories_to_dataset(histories: Histories):
    """`Histories` -> a `datasets.Dataset`, one row per episode, task-major then in time order."""
    import datasets

    n, h, t = histories.actions.shape
    task = np.repeat(np.arange(n), h)
    features = datasets.Features(
        {
            "discrete_observations": datasets.List(datasets.List(datasets.Value("int64"))),
            "discrete_actions": datasets.List(datasets.Value("int64")),
            "rewards": datasets.List(datasets.Value("float32")),
            "final_observation": datasets.List(datasets.Value("int64")),
            "task": datasets.Value("int64"),
            "episode": datasets.Value("int64"),
            "goal": datasets.List(datasets.Value("int64")),
        }
    )
    columns = {
        "discrete_observations": histories.positions[:, :, :t].reshape(n * h, t, 2).tolist(),
        "discrete_actions": histories.actions.reshape(n * h, t).tolist(),
        "rewards": histories.rewards.reshape(n * h, t).tolist(),
        "final_observation": histories.positions[:, :, t].reshape(n * h, 2).tolist(),
        "task": task.tolist(),
        "episode": np.tile(np.arange(h), n).tolist(),
        "goal": np.repeat(histories.goals, h, axis=0).tolist(),
    }
    return datasets.Dataset.from_dict(columns, features=features)


REQUIRED_COLUMNS = (
    "discrete_observations",
    "discrete_actions",
    "rewards",
    "final_observation",
    "task",
    "episode",
    "goal",
)


def histories_from_dataset(source: str | Path) -> Histories:
    """Read a dataset written from `histories_to_dataset` back into `Histories`.

    Rows may come in any order: they are put back by (task, episode). Raises `ValueError` when a
    history has a gap or a duplicate episode, or histories differ in length.
    """
    from gato.data.io import load_rows

    table = load_rows(source, required_columns=REQUIRED_COLUMNS).with_format("numpy")
    task = np.asarray(table["task"], dtype=np.int64)
    episode = np.asarray(table["episode"], dtype=np.int64)
    observations = np.stack(list(table["discrete_observations"])).astype(np.int64)  # (R, T, 2)
    order = np.lexsort((episode, task))
    task, episode = task[order], episode[order]
    tasks, counts = np.unique(task, return_counts=True)
    if not np.array_equal(tasks, np.arange(len(tasks))) or len(set(counts.tolist())) != 1:
        raise ValueError(
            f"{source}: histories must be tasks 0..N-1 with equal numbers of episodes, got tasks "
            f"{tasks.tolist()[:10]} with counts {sorted(set(counts.tolist()))}"
        )
    n, h = len(tasks), int(counts[0])
    if not np.array_equal(episode.reshape(n, h), np.tile(np.arange(h), (n, 1))):
        raise ValueError(f"{source}: a history has a missing or repeated episode index")
    t = observations.shape[1]
    final = np.stack(list(table["final_observation"])).astype(np.int64)[order]
    positions = np.concatenate([observations[order], final[:, None]], axis=1)
    actions = np.stack(list(table["discrete_actions"])).astype(np.int64)[order]
    rewards = np.stack(list(table["rewards"])).astype(np.float32)[order]
    goals = np.stack(list(table["goal"])).astype(np.int64)[order].reshape(n, h, 2)[:, 0]
    return Histories(
        positions.reshape(n, h, t + 1, 2),
        actions.reshape(n, h, t),
        rewards.reshape(n, h, t),
        goals,
    )


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


def reward_code(rewards: np.ndarray) -> np.ndarray:
    """Rewards (...) -> the discrete reward field 1 + r (0 is reserved for an episode's start).

    Rewards must be non-negative integers below 1023 (Dark Room and Key-to-Door pay 0 or 1).
    """
    rewards = np.asarray(rewards)
    if rewards.size and (
        (rewards != np.round(rewards)).any() or rewards.min() < 0 or rewards.max() > 1022
    ):
        raise ValueError(
            f"rewards must be integers in [0, 1022] to be tokenized as discrete values, got "
            f"{np.unique(rewards)[:5].tolist()}"
        )
    return rewards.astype(np.int64) + 1


def episode_observations(positions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Cells (T + 1, 2) and rewards (T,) -> (T + 1, 3) observations [x, y, reward code]."""
    positions = np.asarray(positions, dtype=np.int64)
    if positions.ndim != 2 or positions.shape[1] != 2 or positions.shape[0] != len(rewards) + 1:
        raise ValueError(
            f"positions must be (T + 1, 2) for {len(rewards)} rewards, got {positions.shape}"
        )
    codes = np.concatenate([[START_CODE], reward_code(rewards)])
    return np.concatenate([positions, codes[:, None]], axis=1)


def encode_episode(
    tokenizer: GatoTokenizer, positions: np.ndarray, actions: np.ndarray, rewards: np.ndarray
) -> TokenSequence:
    """One episode -> T + 1 timesteps of [x, y, reward code], separator, action (none at T)."""
    observations = episode_observations(positions, rewards)
    return tokenizer.encode_episode(
        {"discrete": observations}, {"discrete": np.asarray(actions)}, ACTION_SPEC
    )


def window_episodes(
    num_episodes: int, context_episodes: int, stride: int, rng: np.random.Generator
) -> np.ndarray:
    """Episode indices of one training window: (context_episodes,) increasing by `stride`.

    The first episode is uniform over every start whose window fits inside the history.
    """
    if context_episodes < 1 or stride < 1:
        raise ValueError(
            f"context_episodes and stride must be >= 1, got {context_episodes}, {stride}"
        )
    span = (context_episodes - 1) * stride
    if span >= num_episodes:
        raise ValueError(
            f"a window of {context_episodes} episodes every {stride} spans {span + 1} episodes, "
            f"more than the history's {num_episodes}"
        )
    first = int(rng.integers(num_episodes - span))
    return first + stride * np.arange(context_episodes)


@dataclass
class _Tokens:
    """Every episode of every task tokenized, stacked (all episodes have the same length E)."""

    ids: np.ndarray  # (N, H, E) int64
    local_positions: np.ndarray  # (E,) int64
    loss_mask: np.ndarray  # (E,) bool
    timestep_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T+1,)


def tokenize_histories(tokenizer: GatoTokenizer, histories: Histories) -> _Tokens:
    """Tokenize every episode once; the windows then only index."""
    n, h, _ = histories.actions.shape
    first = encode_episode(
        tokenizer, histories.positions[0, 0], histories.actions[0, 0], histories.rewards[0, 0]
    )
    ids = np.empty((n, h, len(first)), dtype=np.int64)
    for i in range(n):
        for e in range(h):
            seq = encode_episode(
                tokenizer, histories.positions[i, e], histories.actions[i, e],
                histories.rewards[i, e],
            )  # fmt: skip
            ids[i, e] = seq.ids
    return _Tokens(ids, first.local_positions, first.loss_mask, first.timestep_starts)


class HistoryWindows:
    """Batches of across-episode windows for the `Trainer`: each row is one task's episodes
    `window_episodes(H, context_episodes, stride)`, concatenated in order; a row never mixes
    tasks. Yields `gato.data.mixture.MixtureBatch`es; `state_dict` makes a run resumable.

    Args:
        tokenizer: the model's tokenizer.
        histories: the learning histories (or expert episodes, for expert distillation).
        batch_size: rows per batch.
        context_episodes: episodes per window.
        stride: episodes of the history between neighbouring episodes of a window.
        seed: seed of the window sampler.
        name: the source name the trainer logs the loss under.
    """

    def __init__(
        self,
        tokenizer: GatoTokenizer,
        histories: Histories,
        batch_size: int,
        context_episodes: int,
        stride: int = 1,
        seed: int = 0,
        name: str = "darkroom-ad",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_tasks, self.num_episodes = histories.actions.shape[:2]
        # Fail now, not at the first batch, when the window cannot fit.
        window_episodes(self.num_episodes, context_episodes, stride, np.random.default_rng(0))
        self.tokens = tokenize_histories(tokenizer, histories)
        self.batch_size = batch_size
        self.context_episodes = context_episodes
        self.stride = stride
        self.seed = seed
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.step = 0

    @property
    def window_length(self) -> int:
        """Tokens per window."""
        return self.context_episodes * self.tokens.ids.shape[-1]

    def sample(self) -> tuple[np.ndarray, np.ndarray, list[TokenSequence]]:
        """One batch of windows: (tasks (B,), episode indices (B, K), token sequences)."""
        tasks = self.rng.integers(self.num_tasks, size=self.batch_size)
        episodes = np.stack(
            [
                window_episodes(self.num_episodes, self.context_episodes, self.stride, self.rng)
                for _ in tasks
            ]
        )
        k, e = self.context_episodes, self.tokens.ids.shape[-1]
        sequences = []
        for task, index in zip(tasks, episodes, strict=True):
            sequences.append(
                TokenSequence(
                    ids=self.tokens.ids[task, index].reshape(k * e),
                    local_positions=np.tile(self.tokens.local_positions, k),
                    loss_mask=np.tile(self.tokens.loss_mask, k),
                    timestep_starts=(
                        self.tokens.timestep_starts[None] + e * np.arange(k)[:, None]
                    ).reshape(-1),
                )
            )
        return tasks, episodes, sequences

    def __iter__(self) -> HistoryWindows:
        return self

    def __next__(self):
        from gato.data.mixture import MixtureBatch

        tasks, _, sequences = self.sample()
        self.step += 1
        return MixtureBatch(
            batch=collate(sequences),
            source_index=torch.zeros(len(tasks), dtype=torch.int64),
            prompt_kind=torch.zeros(len(tasks), dtype=torch.int64),
            source_names=(self.name,),
            step=self.step,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"rng", "step"}:
            raise ValueError(f"HistoryWindows state needs 'rng' and 'step', got {sorted(state)}")
        self.rng.bit_generator.state = state["rng"]
        self.step = int(state["step"])

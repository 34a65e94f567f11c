"""The in-context loop: a trained `GatoModel` acts on Dark Room goals through its KV cache.

Each step feeds the previous action and the new observation, and samples one action token with
the logits masked to the 5 actions. At every episode start the cache is rebuilt from the last
`context_episodes - 1` episodes, so the context always begins at an episode boundary, as the
training windows do, and never exceeds the trained length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gato.experiments.algorithm_distillation.dark_room import DarkRoom
from gato.experiments.algorithm_distillation.histories import ACTION_SPEC, START_CODE, reward_code
from gato.vocab import NO_LOCAL_POSITION, SEPARATOR_ID

__all__ = ["in_context_returns"]


def _observation_tokens(positions: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells (B, 2), reward codes (B,) -> ids (B, 4) [x, y, code, separator] and local
    positions (B, 4), the tokenizer's layout of one timestep's observation."""
    from gato.vocab import DISCRETE_OFFSET

    ids = np.concatenate([positions, codes[:, None]], axis=1) + DISCRETE_OFFSET  # (B, 3)
    ids = np.concatenate([ids, np.full((len(ids), 1), SEPARATOR_ID)], axis=1)
    local = np.broadcast_to(np.array([0, 1, 2, NO_LOCAL_POSITION]), ids.shape)
    return ids.astype(np.int64), np.ascontiguousarray(local, dtype=np.int64)


@torch.no_grad()
def in_context_returns(
    model: Any,
    goals: Any,
    num_episodes: int,
    context_episodes: int,
    seed: int = 0,
    size: int = 9,
    episode_length: int = 20,
    return_tokens: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Run a trained model in context on Dark Room goals, one row per goal, with frozen weights.

    Args:
        model: a `GatoModel` (eval mode).
        goals: (B, 2) goal cells; rows run side by side in one batch.
        num_episodes: episodes per row.
        context_episodes: the trained window: the context holds the current episode and at
            most `context_episodes - 1` before it.
        seed: seed of the action sampling.

    Returns:
        (B, num_episodes) float returns; with `return_tokens`, also the (B, num_episodes, E)
        token ids of every episode (E = 5 T + 4), as
        `gato.experiments.algorithm_distillation.histories.encode_episode` lays
        them out.
    """
    goals = np.asarray(goals)
    if goals.ndim != 2 or goals.shape[1] != 2 or len(goals) == 0:
        raise ValueError(f"goals: expected (B, 2) cells, got shape {goals.shape}")
    if num_episodes < 1 or context_episodes < 2:
        raise ValueError(
            f"num_episodes must be >= 1 and context_episodes >= 2, got {num_episodes}, "
            f"{context_episodes}"
        )
    context_limit = context_episodes * (5 * episode_length + 4)
    if context_limit > model.config.max_position_embeddings:
        raise ValueError(
            f"{context_episodes} episodes need {context_limit} tokens, more than the model's "
            f"context of {model.config.max_position_embeddings}"
        )
    envs = [DarkRoom(g, size, episode_length) for g in goals]
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    lo, hi = ACTION_SPEC.token_range()
    b = len(envs)
    returns = np.zeros((b, num_episodes))
    records: list[np.ndarray] = []  # each (B, E): one finished episode of every row
    locals_: list[np.ndarray] = []
    for episode in range(num_episodes):
        cache = None
        kept = records[len(records) - (context_episodes - 1) :] if records else []
        if kept:
            ids = torch.from_numpy(np.concatenate(kept, axis=1)).to(device)
            local = torch.from_numpy(np.concatenate(locals_[-len(kept) :], axis=1)).to(device)
            cache = model(input_ids=ids, local_positions=local, use_cache=True).past_key_values
        position = np.stack([env.reset(seed=seed)[0] for env in envs])
        code = np.full(b, START_CODE)
        pending_ids = np.zeros((b, 0), np.int64)
        pending_local = np.zeros((b, 0), np.int64)
        record_ids, record_local = [], []
        for _ in range(episode_length):
            obs_ids, obs_local = _observation_tokens(position, code)
            ids = np.concatenate([pending_ids, obs_ids], axis=1)
            local = np.concatenate([pending_local, obs_local], axis=1)
            out = model(
                input_ids=torch.from_numpy(ids).to(device),
                local_positions=torch.from_numpy(local).to(device),
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            probs = torch.softmax(out.logits[:, -1, lo:hi].float().cpu(), dim=-1)  # (B, 5)
            action = torch.multinomial(probs, 1, generator=generator)[:, 0].numpy()
            rewards = np.zeros(b)
            for row, env in enumerate(envs):
                obs, reward, _, _, _ = env.step(int(action[row]))
                position[row] = obs
                rewards[row] = reward
            returns[:, episode] += rewards
            pending_ids = (action + lo).astype(np.int64)[:, None]
            pending_local = np.full((b, 1), NO_LOCAL_POSITION, np.int64)
            record_ids += [obs_ids, pending_ids]
            record_local += [obs_local, pending_local]
            code = reward_code(rewards)
        obs_ids, obs_local = _observation_tokens(position, code)  # the final timestep
        records.append(np.concatenate([*record_ids, obs_ids], axis=1))
        locals_.append(np.concatenate([*record_local, obs_local], axis=1))
    if return_tokens:
        return returns, np.stack(records, axis=1)
    return returns

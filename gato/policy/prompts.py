"""Demonstration prompts: the policy conditions on a task's best dataset episode.

`demonstration_prompt` reads the task's episodes (JAT schema), picks the best-return one, decodes
only the steps the prompt can hold and cuts them to whole timesteps within the budget
(`agent.prompt_budget`: `PolicyConfig.prompt_tokens`, default half the context, as the training
mixture's prompts).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Collection
from typing import Any, Literal

import numpy as np

from gato.tokens.batch import TokenSequence
from gato.tokens.tokenizer import GatoTokenizer

__all__ = ["demonstration_episode", "demonstration_prompt", "episode_steps"]


def demonstration_prompt(
    task: Any,
    tokenizer: GatoTokenizer,
    budget: int,
    which: Literal["start", "end"] = "start",
    exclude_seeds: Collection[int] = (),
) -> TokenSequence | None:
    """The best-return episode of the task's dataset, cut to its first (or last) whole timesteps
    within `budget` tokens; None (with a warning) when the task has no dataset on disk.

    Episodes whose reset seed is in `exclude_seeds` (the evaluated episodes') are never the
    prompt (`demonstration_episode`)."""
    from gato.data.action_scale import dataset_action_scale
    from gato.data.episodes import load_episodes
    from gato.tokens.windows import end_window, fit_stop, sequence_bounds, take_steps

    if budget <= 0:
        return None
    if not task.has_data():
        warnings.warn(
            f"task {task.id!r} has no episodes at {task.dataset_path}: the policy runs without a "
            "demonstration prompt (collect them with `python -m gato.data collect`)",
            stacklevel=2,
        )
        return None
    dataset = load_episodes(task.dataset_path, task=task)
    best, _ = demonstration_episode(dataset, exclude_seeds)
    if best is None:
        warnings.warn(
            f"task {task.id!r}: every episode of {task.dataset_path} has an excluded seed: the "
            "policy runs without a demonstration prompt",
            stacklevel=2,
        )
        return None
    # A step is at least 2 tokens (an observation token, the separator): no prompt needs more
    # steps than this, and a 27,000-step Atari episode is never decoded whole.
    row = episode_steps(dataset, best, budget // 2 + 1, from_end=which == "end")
    # Actions on the tokens' scale, as training saw them (`gato.data.action_scale`).
    episode = tokenizer.encode_jat_episode(row, task.action, dataset_action_scale(dataset))
    bounds = sequence_bounds(episode)
    if which == "start":
        first, stop = 0, fit_stop(bounds, 0, budget)
    else:
        first, stop = end_window(bounds, budget)
    if stop <= first:
        return None
    return take_steps(episode, first, stop)


def demonstration_episode(
    dataset: Any, exclude_seeds: Collection[int] = ()
) -> tuple[int | None, int | None]:
    """(row, reset seed) of the best-return episode whose seed is not in `exclude_seeds`; the
    seed is None where the dataset does not record seeds (then nothing can be excluded), the row
    None when every episode is excluded."""
    from gato.data.collect import recorded_seeds
    from gato.data.episodes import episode_returns

    returns = episode_returns(dataset)
    seeds = recorded_seeds(dataset)
    if seeds is not None and exclude_seeds:
        excluded = set(exclude_seeds)
        returns = np.where([s in excluded for s in seeds], -np.inf, returns)
        if not np.isfinite(returns).any():
            return None, None
    best = int(np.argmax(returns))
    return best, None if seeds is None else seeds[best]


def episode_steps(dataset: Any, index: int, count: int, from_end: bool = False) -> dict[str, Any]:
    """The first (or last) `count` steps of episode `index` of a JAT-schema dataset, decoding
    only those steps' images: {column: (k, ...) array, or a list of k strings for text}."""
    import datasets as hf
    from PIL import Image

    if "image_observations" in dataset.column_names:
        undecoded = hf.List(hf.Image(decode=False))
        dataset = dataset.cast_column("image_observations", undecoded)
    row = dataset.with_format(None)[index]
    steps = len(row["rewards"])
    window = slice(max(0, steps - count), steps) if from_end else slice(0, min(count, steps))
    out: dict[str, Any] = {}
    for column, values in row.items():
        if values is None or not isinstance(values, list):
            continue  # per-episode values (`terminated`, `truncated`) are no steps
        values = values[window]
        if column == "image_observations":
            frames = []
            for value in values:
                with Image.open(
                    io.BytesIO(value["bytes"]) if value["bytes"] else value["path"]
                ) as im:
                    frames.append(np.asarray(im))
            out[column] = np.stack(frames)
        elif column == "text_observations":
            out[column] = list(values)
        else:
            out[column] = np.asarray(values)
    return out

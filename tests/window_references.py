"""Slow references for `gato.tokens.windows`: whole training windows cut from in-memory sequences.

The mixture cuts the same windows from memory-mapped caches by index; the tests check that both
give the same tokens for the same generator draws.
"""

from __future__ import annotations

import numpy as np

from gato.tokens.batch import TokenSequence
from gato.tokens.windows import (
    PromptKind,
    prompt_window,
    random_window,
    sequence_bounds,
    take_steps,
)


def sample_window(sequence: TokenSequence, budget: int, rng: np.random.Generator) -> TokenSequence:
    """A random window of whole timesteps of at most `budget` tokens."""
    first, stop = random_window(sequence_bounds(sequence), budget, rng)
    return take_steps(sequence, first, stop)


def sample_prompt(
    sequence: TokenSequence, budget: int, kind: PromptKind, rng: np.random.Generator
) -> TokenSequence:
    """A prompt of whole timesteps of at most `budget` tokens from the end or anywhere."""
    first, stop = prompt_window(sequence_bounds(sequence), budget, kind, rng)
    return take_steps(sequence, first, stop)


def prompted_window(
    prompt_episode: TokenSequence,
    episode: TokenSequence,
    context: int,
    prompt_budget: int,
    kind: PromptKind,
    rng: np.random.Generator,
) -> TokenSequence:
    """Prompt (at most `prompt_budget` tokens) followed by a window filling the rest of `context`.

    The prompt is drawn first, so the window gets whatever the prompt left (at least
    `context - prompt_budget`).
    """
    prompt = sample_prompt(prompt_episode, prompt_budget, kind, rng)
    window = sample_window(episode, context - len(prompt), rng)
    return TokenSequence.concatenate([prompt, window])

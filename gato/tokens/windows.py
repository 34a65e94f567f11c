"""Timesteps -> training sequences: windows at timestep boundaries, prompts, text windows.

Everything here works on *step bounds*: for an episode of T timesteps and L tokens, the (T + 1,)
int64 array [s_0 = 0, s_1, ..., s_{T-1}, L] of each timestep's first token and the end. A window
is a half-open range of whole timesteps [first, stop), tokens [bounds[first], bounds[stop]). The
functions return indices, so the same code cuts a `TokenSequence` in memory (here) and a
memory-mapped token cache (`gato.data.token_cache`), and the two paths are tested equal (the
in-memory reference of a whole prompted window is `tests/window_references.py`).

Gato's sequences, which the sources of `gato.data.sources` assemble from these pieces:
- control: a random window of whole timesteps from one episode, as long as fits the budget; a
  timestep is never cut (a window that starts mid-observation would teach the model nonsense).
- prompted control (25% of control sequences in Gato): a prompt of whole timesteps from another
  episode of the same task, taken from that episode's end (half the prompts: goal conditioning)
  or from a uniformly random place (the other half), then a window of the episode, both within
  the context.
- vision-language: several image-text pairs (5 in Gato) back to back, as many as fit.
- text: a window of exactly the budget from a token stream read circularly, at a random offset.

A window starts uniformly among the starts whose window still fills the budget, so windows are
always full when the episode is long enough (no padding) and every timestep of a long episode is
covered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from gato.tokens.batch import TokenSequence
from gato.vocab import PATCH_ID

PromptKind = Literal["end", "uniform"]


def step_bounds(timestep_starts: np.ndarray, length: int) -> np.ndarray:
    """(T,) first token of each timestep, sequence length -> (T + 1,) int64 bounds.

    An empty `timestep_starts` (free text) is one timestep spanning the sequence.
    """
    starts = np.asarray(timestep_starts, dtype=np.int64)
    if starts.size == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return np.append(starts, np.int64(length))


def fit_stop(bounds: np.ndarray, first: int, budget: int) -> int:
    """Largest stop such that timesteps [first, stop) hold at most `budget` tokens (>= first)."""
    limit = bounds[first] + budget
    return max(first, int(np.searchsorted(bounds, limit, side="right")) - 1)


def latest_full_start(bounds: np.ndarray, budget: int) -> int:
    """Smallest first such that timesteps [first, T) fit the budget: the last useful start."""
    return int(np.searchsorted(bounds, bounds[-1] - budget, side="left"))


def random_window(bounds: np.ndarray, budget: int, rng: np.random.Generator) -> tuple[int, int]:
    """A uniformly placed window of whole timesteps within `budget` tokens: (first, stop).

    The start is uniform over [0, latest_full_start]; from there the window takes as many whole
    timesteps as fit. (first, first) means not even one timestep fits.
    """
    last = min(latest_full_start(bounds, budget), len(bounds) - 2)
    first = int(rng.integers(last + 1)) if last > 0 else 0
    return first, fit_stop(bounds, first, budget)


def end_window(bounds: np.ndarray, budget: int) -> tuple[int, int]:
    """The last whole timesteps of the episode within `budget` tokens: (first, T)."""
    num_steps = len(bounds) - 1
    first = latest_full_start(bounds, budget)
    return first, num_steps


def prompt_window(
    bounds: np.ndarray, budget: int, kind: PromptKind, rng: np.random.Generator
) -> tuple[int, int]:
    """A prompt's timesteps: the episode's end (`end`) or a random window (`uniform`)."""
    if kind == "end":
        return end_window(bounds, budget)
    if kind == "uniform":
        return random_window(bounds, budget, rng)
    raise ValueError(f"prompt kind must be 'end' or 'uniform', got {kind!r}")


def count_fitting(lengths: Sequence[int] | np.ndarray, budget: int) -> int:
    """How many leading parts of the given lengths fit the budget back to back."""
    totals = np.cumsum(np.asarray(lengths, dtype=np.int64))
    return int(np.searchsorted(totals, budget, side="right"))


def text_window_start(stream_length: int, budget: int, rng: np.random.Generator) -> int:
    """Start of a `budget`-token window in a token stream read circularly: uniform over all
    tokens, so every token is equally likely to be seen (no edge is under-sampled); 0 when the
    whole stream fits."""
    if stream_length <= budget:
        return 0
    return int(rng.integers(stream_length))


# ---------------------------------------------------------------------------------------------
# The same cuts on in-memory `TokenSequence`s (prompts at deployment, and the reference the token
# cache is tested against).
# ---------------------------------------------------------------------------------------------


def sequence_bounds(sequence: TokenSequence) -> np.ndarray:
    """(T + 1,) step bounds of a tokenized episode."""
    return step_bounds(sequence.timestep_starts, len(sequence))


def take_steps(sequence: TokenSequence, first: int, stop: int) -> TokenSequence:
    """Timesteps [first, stop) of a tokenized episode."""
    bounds = sequence_bounds(sequence)
    return sequence.slice(int(bounds[first]), int(bounds[stop]))


def truncate_pair(pair: TokenSequence, budget: int) -> TokenSequence:
    """Cut an image-text pair to `budget` tokens, dropping the tail of its text.

    Documented truncation for captions longer than the context: the image is kept whole (it is
    what the text is about) and the text's end is dropped; raises if the image alone is too long.
    """
    if len(pair) <= budget:
        return pair
    last_patch = int(np.flatnonzero(pair.ids == PATCH_ID)[-1]) if pair.patches.shape[0] else -1
    if last_patch + 2 > budget:  # patches and at least one text token must fit
        raise ValueError(
            f"an image of {pair.patches.shape[0]} patches does not fit a budget of {budget} "
            "tokens; give the source a smaller image_size"
        )
    return pair.slice(0, budget)

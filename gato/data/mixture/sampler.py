"""Weighted sampling: a recipe's sources, their token caches and one seeded sampler.

Each source is tokenized once into a memory-mapped cache (`gato.data.token_cache`). A batch is a
pure function of (seed, step): its generator is seeded with both, so batches come out identical
in any number of DataLoader workers, and resuming needs only the step (`MixtureLoader.state_dict`).
Sources are drawn with replacement by weight for every row; there are no epochs. A source with
`own_batches` fills whole batches: a step's batch is drawn first, then its rows. A source with
`from_step` / `until_step` in its recipe is drawn at those steps only (a curriculum), the
weights of the sources active at a step being its probabilities.

How a row is made is the source's `sample` (`gato.data.sources`, cuts in `gato.tokens.windows`):
- control: a random window of whole timesteps of a random episode, filling the context (or,
  with `control_window_steps` = N, windows of at most N timesteps of random episodes, as many
  as fit); with
  probability `prompt_probability` (0.25, Gato) it is preceded by a prompt from another episode
  of the task (half from that episode's end, half from a uniform place), the prompt taking at
  most `prompt_fraction` of the context. Prompt actions stay targets unless `prompt_loss` is off
  (Gato does not say; they are expert actions like any other).
- captions / vqa: `pairs_per_sequence` (5, Gato) random image-text pairs back to back, as many as
  fit; a single pair longer than the context keeps its image and loses its text's tail (counted
  and warned about when the mixture opens).
- text: a window of exactly the context length at a uniformly random offset of the split's token
  stream (BOS paragraph EOS ...) read circularly, so long paragraphs are spread over windows,
  never cut off, and every token is equally likely to be seen.
Rows shorter than the context are padded; padding never carries loss (`gato.tokens.batch.collate`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.data.mixture.loader import MixtureBatch, MixtureLoader
from gato.data.mixture.recipe import Recipe, ResolvedRecipe, resolve_recipe
from gato.data.sources import PROMPT_NONE, ControlSource, Source
from gato.data.token_cache import DEFAULT_CACHE_ROOT, TokenCache, build_cache
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.statistics import ObservationStatistics
from gato.tokens.tokenizer import GatoTokenizer


@dataclass(frozen=True)
class MixtureConfig:
    """How the mixture cuts and batches sequences."""

    context_length: int = 1024
    """Tokens per sequence: the model's `max_position_embeddings`."""
    batch_size: int = 8
    """Sequences per batch."""
    seed: int = 0
    """Seed of every draw; with the step it fixes a batch completely."""
    prompt_probability: float = 0.25
    """Share of control sequences preceded by a prompt from another episode (Gato: 25%)."""
    prompt_end_probability: float = 0.5
    """Share of prompts taken from the end of their episode; the rest are uniform (Gato: half)."""
    prompt_fraction: float = 0.5
    """Most of the context a prompt may take; the window fills the rest."""
    prompt_loss: bool = True
    """Train on the prompt's action tokens too (they are expert actions like any other); False
    makes the prompt pure context."""
    pairs_per_sequence: int = 5
    """Image-text pairs per vision-language sequence (Gato: 5), fewer when they do not fit;
    0 packs as many as fit the context (no padding waste with short captions)."""
    control_window_steps: int = 0
    """Control rows: at most this many timesteps per window, the row filled with further windows
    of the task's episodes, each drawn afresh, until no timestep fits (so the context is not
    padding). A clone shown a long history of its episode fits the expert better and acts worse
    (docs/control_learning.md); 0: one window as long as the context holds (Gato)."""
    isolate_packed: bool = False
    """A sequence packed into a row beside others (a control window, an image-text pair) attends
    only to itself and to the row's prompt, if it has one (`GatoBatch.segment_ids`), as it
    would at inference, where a context holds one. False: every token sees the whole row before
    it (Gato's rows; packed windows of unrelated episodes then sit in each other's context).
    Text rows are one sequence either way."""
    pad_to_context: bool = True
    """Pad every batch to (batch_size, context_length): one shape for compiled models."""
    split: str | None = None
    """Read this split of every source instead of the recipe's (e.g. 'validation')."""
    cache_root: str = str(DEFAULT_CACHE_ROOT)
    """Where token caches live."""

    def __post_init__(self) -> None:
        if self.context_length < 2 or self.batch_size < 1 or self.pairs_per_sequence < 0:
            raise ValueError(
                "MixtureConfig: context_length >= 2, batch_size >= 1 and pairs_per_sequence >= 0"
            )
        for name in ("prompt_probability", "prompt_end_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"MixtureConfig.{name} must be in [0, 1]")
        if not 0.0 <= self.prompt_fraction < 1.0:
            raise ValueError("MixtureConfig.prompt_fraction must be in [0, 1)")
        if not isinstance(self.isolate_packed, bool):
            raise ValueError(
                f"MixtureConfig.isolate_packed must be a bool, got {self.isolate_packed!r}"
            )
        steps = self.control_window_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(
                f"MixtureConfig.control_window_steps must be an int >= 0, got {steps!r}"
            )


@dataclass
class Sample:
    """One sequence and where it came from."""

    source: int
    """Index of the source in `Mixture.source_names`."""
    sequence: TokenSequence
    """At most `context_length` tokens."""
    prompt: int = PROMPT_NONE
    """PROMPT_NONE, PROMPT_END or PROMPT_UNIFORM."""


class Mixture:
    """Weighted sources behind one seeded sampler.

    Opening a mixture tokenizes every source that has no up-to-date cache (once; later runs map
    the files) and checks that every source can fill a sequence: a control timestep longer than
    the context is an error, a caption pair longer than the context a documented truncation.

    Args:
        recipe: the sources and weights: a `ResolvedRecipe` (what a run passes down), or a
            `Recipe`, recipe path or name (resolved here).
        config: context length, batch size, seed, prompting.
        tokenizer: used only to build missing caches; default `GatoTokenizer()`.
        progress: show progress bars while tokenizing.
        standardize: tokenize each control source's continuous observations standardised by
            its statistics (`GatoTokenizer.standardising`): those of `observation_statistics`
            where it has the source's name (a pretrained model's), else the source's own
            (`ControlSource.observation_statistics`). What was used is
            `self.observation_statistics` ({source name: statistics}).
        observation_statistics: {source name: statistics} to use (only with `standardize`).
    """

    def __init__(
        self,
        recipe: ResolvedRecipe | Recipe | str | Path,
        config: MixtureConfig = MixtureConfig(),
        tokenizer: GatoTokenizer | None = None,
        progress: bool = True,
        standardize: bool = False,
        observation_statistics: Mapping[str, ObservationStatistics] | None = None,
    ) -> None:
        if observation_statistics and not standardize:
            raise ValueError("Mixture: observation_statistics are only used with standardize=True")
        resolved = resolve_recipe(recipe, config.split)
        self.recipe = resolved.recipe
        self.config = config
        tokenizer = tokenizer or GatoTokenizer()
        self.sources: list[Source] = resolved.located()
        self.caches: list[TokenCache] = []
        self.observation_statistics: dict[str, ObservationStatistics] = {}
        known = dict(observation_statistics or {})
        for source in self.sources:
            dataset = source.load()
            stats = None
            if standardize and isinstance(source, ControlSource):
                stats = known.get(source.name) or source.observation_statistics(dataset)
                if stats is not None:
                    self.observation_statistics[source.name] = stats
            self.caches.append(
                build_cache(
                    source, tokenizer.standardising(stats), config.cache_root, dataset,
                    progress=progress,
                )
            )  # fmt: skip
        self.source_names = tuple(s.name for s in self.sources)
        self.probabilities = resolved.probabilities
        self.own_batches = np.array([e.own_batches for e in self.recipe.sources])
        """(S,) bool: the sources whose rows fill batches of their own."""
        for source, cache in zip(self.sources, self.caches, strict=True):
            source.check(cache, config)

    def sample(self, source: int, rng: np.random.Generator) -> Sample:
        """One sequence of the given source."""
        sequence, prompt = self.sources[source].sample(self.caches[source], self.config, rng)
        return Sample(source, sequence, prompt)

    def samples(self, step: int) -> list[Sample]:
        """The rows of batch `step`: a pure function of (seed, step)."""
        rng = np.random.default_rng([self.config.seed, step])
        p = self.recipe.probabilities_at(step)
        if self.own_batches.any():
            first = int(rng.choice(len(self.sources), p=p))
            if self.own_batches[first]:
                rows = self.recipe.sources[first].batch_rows or self.config.batch_size
                return [self.sample(first, rng) for _ in range(rows)]
            p = np.where(self.own_batches, 0.0, p)
            p = p / p.sum()
        sources = rng.choice(len(self.sources), size=self.config.batch_size, p=p)
        return [self.sample(int(s), rng) for s in sources]

    def batch(self, step: int) -> MixtureBatch:
        """Batch number `step`, padded to the context when `pad_to_context`."""
        samples = self.samples(step)
        context = self.config.context_length
        batch = collate(
            [s.sequence for s in samples],
            max_length=context,
            pad_to_multiple_of=context if self.config.pad_to_context else None,
            segments=self.config.isolate_packed,
        )
        return MixtureBatch(
            batch=batch,
            source_index=torch.tensor([s.source for s in samples], dtype=torch.int64),
            prompt_kind=torch.tensor([s.prompt for s in samples], dtype=torch.int64),
            source_names=self.source_names,
            step=step,
        )

    def fingerprint(self) -> str:
        """Hash of the recipe, the config and the caches: what a resumed run must match."""
        record = {
            "sources": [s.record() for s in self.sources],
            "weights": [e.weight for e in self.recipe.sources],
            **(
                {"steps": [[e.from_step, e.until_step] for e in self.recipe.sources]}
                if self.recipe.scheduled
                else {}
            ),
            # Only where a source has them: fingerprints recorded before the field stay valid.
            **({"own_batches": self.own_batches.tolist()} if self.own_batches.any() else {}),
            **(
                {"batch_rows": [e.batch_rows for e in self.recipe.sources]}
                if any(e.batch_rows for e in self.recipe.sources)
                else {}
            ),
            "caches": [c.meta["fingerprint"] for c in self.caches],
            # isolate_packed only when set: fingerprints recorded before the field stay valid.
            "config": {
                k: v
                for k, v in asdict(self.config).items()
                if k != "cache_root" and (k != "isolate_packed" or v)
            },
        }
        text = json.dumps(record, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def loader(self, start_step: int = 0, **kwargs: Any) -> MixtureLoader:
        """Batches from `start_step` on, optionally made by DataLoader workers (MixtureLoader)."""
        return MixtureLoader(self, start_step=start_step, **kwargs)

    def describe(self) -> str:
        """One line per source: weight share (at the first step it is drawn at, and those steps,
        for a scheduled recipe), episodes, tokens."""
        lines = []
        entries = self.recipe.sources
        for i, (entry, source, cache) in enumerate(
            zip(entries, self.sources, self.caches, strict=True)
        ):
            share = self.recipe.probabilities_at(entry.from_step)[i]
            steps = ""
            if self.recipe.scheduled:
                stop = "" if entry.until_step is None else f"{entry.until_step:,d}"
                steps = f" steps [{entry.from_step:,d}, {stop})"
            own = " own batches" if entry.own_batches else ""
            own += f" of {entry.batch_rows} rows" if entry.batch_rows else ""
            lines.append(
                f"{source.name:24s} {source.kind:8s} p={share:.3f}{steps}{own} "
                f"rows={cache.num_episodes:,d} tokens={cache.num_tokens:,d} "
                f"({source.path}, {source.split})"
            )
        return "\n".join(lines)


def open_mixture(
    recipe: str | Path | Recipe | ResolvedRecipe,
    context_length: int,
    batch_size: int,
    seed: int = 0,
    split: str | None = None,
    **kwargs: Any,
) -> Mixture:
    """Shortcut: `Mixture(recipe, MixtureConfig(context_length, batch_size, seed, ...))`."""
    names = {f.name for f in fields(MixtureConfig)}
    config_args = {k: v for k, v in kwargs.items() if k in names}
    other = {k: v for k, v in kwargs.items() if k not in names}
    config = MixtureConfig(
        context_length=context_length, batch_size=batch_size, seed=seed, split=split, **config_args
    )
    return Mixture(recipe, config, **other)

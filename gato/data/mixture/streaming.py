"""A mixture read as streams: datasets too large to download, tokenized in the loader's workers.

`Mixture` tokenizes every source once into a token cache and samples windows from it at random;
a hub config of hundreds of GB cannot be cached like that. `StreamingMixture` reads control
sources as streams instead (`load_episodes(..., streaming=True)`: Parquet files or a hub config
read shard by shard, nothing downloaded whole), tokenizes each episode where the batch is made
(in a DataLoader worker when there are workers) and cuts it into consecutive windows of whole
timesteps of at most the context; rows of a batch are drawn from the sources by weight.

Splitting without overlap: the stream of every source is split into `world_size * workers` parts
(`StreamingEpisodes.shard`: whole files when there are enough, else every n-th episode); part
`rank * workers + worker` belongs to one DataLoader worker of one training process. A torch
DataLoader hands batches out from its workers in turn, so batch `s` of a process comes from its
worker `s % workers`.

Resuming: every batch carries its worker's stream state after it (for each source: where its
stream stands before the episode being cut, how many windows of that episode were handed out,
the pass), and `StreamingLoader.state_dict()` keeps the latest state of each worker among the
batches handed out. A loader given that state continues each stream at the window where it
stopped: the batches after a resume are those an uninterrupted run would have made.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gato.data.mixture.loader import MixtureBatch
from gato.data.sources import PROMPT_NONE, ControlSource
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.tokens.windows import fit_stop, sequence_bounds, take_steps


def cut_windows(sequence: TokenSequence, context: int, where: str) -> list[TokenSequence]:
    """An episode cut into consecutive windows of whole timesteps, each at most `context` tokens.

    Raises `ValueError` naming `where` when one timestep alone is longer than the context.
    """
    bounds = sequence_bounds(sequence)
    longest = int(np.diff(bounds).max())
    if longest > context:
        raise ValueError(
            f"{where}: a timestep has {longest} tokens, more than the context of {context}; "
            "use a longer context or smaller observations"
        )
    windows, first, steps = [], 0, len(bounds) - 1
    while first < steps:
        stop = fit_stop(bounds, first, context)
        windows.append(take_steps(sequence, first, stop))
        first = stop
    return windows


@dataclass
class StreamBatch(MixtureBatch):
    """A `MixtureBatch` of a stream, with where its worker's streams stood after it."""

    part: int = 0
    """The stream part (process and worker) that made it."""
    stream_state: dict[str, Any] = field(default_factory=dict)
    """The worker's state after this batch (`_PartStream.state`)."""


class _SourceStream:
    """One source's part of the stream: episodes -> token windows, with a resumable position."""

    def __init__(self, source: ControlSource, part: int, parts: int, context: int,
                 tokenizer: GatoTokenizer) -> None:  # fmt: skip
        self.source = source
        self.context = context
        self.tokenizer = tokenizer
        episodes = source.stream()
        # The task's spec and the data's scale, as the token cache encodes them: raw JAT and
        # Minari actions mapped by the task's bounds (a policy decodes them so), mu-law too.
        self.action_spec, self.action_scale = source.action_encoding(episodes.dataset)
        self.episodes = episodes.shard(part, parts) if parts > 1 else episodes
        self.epoch = 0
        self._before: dict[str, Any] = self.episodes.state_dict()
        self._windows: list[TokenSequence] = []
        self._emitted = 0
        self._iterator: Iterator[dict[str, Any]] | None = None

    def state(self) -> dict[str, Any]:
        return {"stream": self._before, "emitted": self._emitted, "epoch": self.epoch}

    def load(self, state: dict[str, Any]) -> None:
        """Continue at the window where `state` stopped: re-read and re-cut its episode."""
        self.epoch = int(state["epoch"])
        self.episodes.restart()
        self.episodes.load_state_dict(state["stream"])
        self._before = state["stream"]
        self._iterator = None
        self._windows = []
        emitted = int(state["emitted"])
        if emitted:
            self._next_episode()
            del self._windows[:emitted]
            self._emitted = emitted

    def _next_episode(self) -> None:
        if self._iterator is None:
            self._iterator = iter(self.episodes)
        self._before = self.episodes.state_dict()
        try:
            row = next(self._iterator)
        except StopIteration:
            row = None
        if row is None:
            self.epoch += 1  # a new pass over this part
            self.episodes.restart()
            self._iterator = iter(self.episodes)
            self._before = self.episodes.state_dict()
            row = next(self._iterator, None)
            if row is None:
                raise ValueError(
                    f"{self.episodes.source}: this part of the stream holds no episode with "
                    "steps (more processes x workers than episodes?)"
                )
        where = f"{self.source.where()} episode {self.episodes.position - 1}"
        try:
            sequence = self.tokenizer.encode_jat_episode(row, self.action_spec, self.action_scale)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        self._windows = cut_windows(sequence, self.context, where)
        self._emitted = 0

    def next_window(self) -> TokenSequence:
        while not self._windows:
            self._next_episode()
        self._emitted += 1
        return self._windows.pop(0)


class _PartStream:
    """The batches of one part (one worker of one process): each a pure function of the part's
    streams and (seed, part, local batch index)."""

    def __init__(self, mixture: StreamingMixture, part: int, state: dict[str, Any] | None):
        parts = mixture.world_size * mixture.workers
        self.mixture = mixture
        self.part = part
        self.streams = [
            _SourceStream(s, part, parts, mixture.config.context_length, mixture.tokenizer)
            for s in mixture.sources
        ]
        self.index = 0
        if state is not None:
            self.index = int(state["index"])
            for stream, source_state in zip(self.streams, state["sources"], strict=True):
                stream.load(source_state)

    def state(self) -> dict[str, Any]:
        return {"index": self.index, "sources": [s.state() for s in self.streams]}

    def batch(self) -> StreamBatch:
        config = self.mixture.config
        rng = np.random.default_rng([config.seed, self.part, self.index])
        chosen = rng.choice(len(self.streams), size=config.batch_size, p=self.mixture.probabilities)
        sequences = [self.streams[int(s)].next_window() for s in chosen]
        context = config.context_length
        batch = collate(
            sequences,
            max_length=context,
            pad_to_multiple_of=context if config.pad_to_context else None,
            segments=config.isolate_packed,
        )
        self.index += 1
        return StreamBatch(
            batch=batch,
            source_index=torch.as_tensor(chosen, dtype=torch.int64),
            prompt_kind=torch.full((len(chosen),), PROMPT_NONE, dtype=torch.int64),
            source_names=self.mixture.source_names,
            part=self.part,
            stream_state=self.state(),
        )


class _StreamDataset(torch.utils.data.IterableDataset):
    """What each DataLoader worker runs: the endless batches of its part.

    Worker w runs part `(w + first) % workers` of this process: a DataLoader hands its first
    batch out from worker 0, and a resumed run's next batch belongs to part `step % workers`.
    """

    def __init__(self, mixture: StreamingMixture, states: dict[int, dict[str, Any]],
                 first: int = 0) -> None:  # fmt: skip
        self.mixture = mixture
        self.states = states
        self.first = first

    def __iter__(self) -> Iterator[StreamBatch]:
        info = torch.utils.data.get_worker_info()
        worker = ((info.id if info is not None else 0) + self.first) % self.mixture.workers
        part = self.mixture.rank * self.mixture.workers + worker
        stream = _PartStream(self.mixture, part, self.states.get(part))
        while True:
            yield stream.batch()


class StreamingMixture:
    """Weighted control sources, streamed and tokenized where batches are made.

    Args:
        sources: control sources (`gato.data.sources.ControlSource`: a local dataset, Parquet
            files or a hub id with its config).
        weights: sampling weight of each source (normalised here).
        config: context length, batch size, seed, padding (a `MixtureConfig`; prompting and
            caching settings do not apply to streams).
        tokenizer: default `GatoTokenizer()`.
        workers: DataLoader worker processes making batches (0: in the calling thread).
        rank, world_size: this training process among all (accelerate's process index and
            count); each process reads its own parts of every stream.
    """

    def __init__(self, sources: list[ControlSource], weights: list[float], config: Any,
                 tokenizer: GatoTokenizer | None = None, workers: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:  # fmt: skip
        if not sources or len(sources) != len(weights):
            raise ValueError("StreamingMixture needs one weight per source, and a source")
        refused = [f"{s.name!r} ({s.kind})" for s in sources if not isinstance(s, ControlSource)]
        if refused:
            raise ValueError(
                f"StreamingMixture streams control sources only; {', '.join(refused)} cannot be "
                "streamed: leave it out of the recipe, or train from the token cache (no "
                "--streaming)"
            )
        if min(weights) <= 0:
            raise ValueError(f"StreamingMixture: weights must be positive, got {weights}")
        if not 0 <= rank < world_size or workers < 0:
            raise ValueError(f"StreamingMixture: rank {rank} of {world_size}, workers {workers}")
        self.sources = list(sources)
        self.probabilities = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        self.config = config
        self.tokenizer = tokenizer or GatoTokenizer()
        self.num_workers = workers
        self.workers = max(1, workers)
        self.rank = rank
        self.world_size = world_size
        self.source_names = tuple(s.name for s in self.sources)
        for source in self.sources:
            # Fail before training starts, not in a worker: the columns, their types and the
            # first episode's widths and timesteps (one episode read per source).
            _SourceStream(source, 0, 1, config.context_length, self.tokenizer).next_window()

    @classmethod
    def from_recipe(cls, recipe: Any, config: Any, **kwargs: Any) -> StreamingMixture:
        """The streaming mixture of a recipe (name, path, `Recipe` or `ResolvedRecipe`) whose
        sources are all control tasks (their datasets local, or hub ids with a config)."""
        from gato.data.mixture.recipe import resolve_recipe

        resolved = resolve_recipe(recipe, config.split)
        if resolved.recipe.scheduled:
            raise ValueError(
                f"recipe {resolved.name!r}: from_step / until_step need the token-cache mixture; "
                "a stream draws by fixed weights (drop --streaming or the steps)"
            )
        own = [e.task for e in resolved.recipe.sources if e.own_batches]
        if own:
            raise ValueError(
                f"recipe {resolved.name!r}: own_batches ({', '.join(own)}) needs the token-cache "
                "mixture; a stream draws each row by fixed weights (drop --streaming or "
                "own_batches)"
            )
        sources = [s.located() if not s.is_missing() else s for s in resolved.sources]
        return cls(sources, list(resolved.probabilities), config, **kwargs)

    def loader(self, state: dict[str, Any] | None = None) -> StreamingLoader:
        """Endless batches; `state` (a `StreamingLoader.state_dict()`) resumes a stopped run."""
        loader = StreamingLoader(self)
        if state is not None:
            loader.load_state_dict(state)
        return loader

    def fingerprint(self) -> dict[str, Any]:
        """What a saved stream position is only valid for."""
        return {
            "sources": [s.record() for s in self.sources],
            "weights": self.probabilities.round(12).tolist(),
            "seed": self.config.seed,
            "context_length": self.config.context_length,
            "batch_size": self.config.batch_size,
            "parts": [self.rank, self.world_size, self.workers],
        }


class StreamingLoader:
    """Batches of a `StreamingMixture` in order, and the state that resumes them."""

    def __init__(self, mixture: StreamingMixture) -> None:
        self.mixture = mixture
        self.step = 0
        self.states: dict[int, dict[str, Any]] = {}
        self._iterator: Iterator[StreamBatch] | None = None

    def _make_iterator(self) -> Iterator[StreamBatch]:
        workers = self.mixture.workers
        dataset = _StreamDataset(self.mixture, self.states, first=self.step % workers)
        if self.mixture.num_workers == 0:
            return iter(dataset)
        return iter(
            torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=workers, collate_fn=_identity,
                prefetch_factor=2,
            )
        )  # fmt: skip

    def __iter__(self) -> StreamingLoader:
        return self

    def __next__(self) -> StreamBatch:
        if self._iterator is None:
            self._iterator = self._make_iterator()
        batch = next(self._iterator)
        batch.step = self.step
        self.states[batch.part] = batch.stream_state
        self.step += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """{'step', 'parts': the stream state of every part after the last batch handed out}."""
        return {
            "step": self.step,
            "parts": copy.deepcopy(self.states),
            "fingerprint": self.mixture.fingerprint(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the batches `state` had handed out (same sources, seed and split)."""
        if state.get("fingerprint") != self.mixture.fingerprint():
            raise ValueError(
                "the saved stream state belongs to other sources, weights, seed, sizes or "
                "another split of the stream over processes and workers"
            )
        self.close()
        self.step = int(state["step"])
        self.states = {int(k): v for k, v in state["parts"].items()}

    def close(self) -> None:
        """Stop the workers; the next batch restarts them where the stream stands."""
        self._iterator = None


def _identity(batch: StreamBatch) -> StreamBatch:
    return batch

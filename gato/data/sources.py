"""Data sources, one class per kind: control episodes, image-text pairs, text.

A source is one dataset of a mixture: where it lives (`path`, `split`, `hub_name`), how its data
is built when missing (`build`), read (`load`), turned into token sequences (`tokenize`, one per
row) and cut into training sequences from its token cache (`sample`). The kinds:

- `ControlSource` (kind "control"): episode rows in the JAT schema. A sequence is a random window
  of whole timesteps of one episode, preceded, with probability `prompt_probability`, by a prompt
  of whole timesteps from another episode of the task (its end or a uniform place).
- `PairsSource` (kind "captions"): rows `images` + `text` (optional `question`): captions and
  VQA. A sequence is `pairs_per_sequence` random pairs back to back, as many as fit.
- `TextSource` (kind "text"): rows `text`. A sequence is a window of exactly the context at a
  uniformly random offset of the split's token stream, read circularly.

`record()` is the source as the token cache and the mixture fingerprint see it; it is the dict
the token caches written before these classes existed recorded, so those caches stay valid.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from gato.data.token_cache import TokenCache
from gato.files import gato_home
from gato.tokens.batch import TokenSequence
from gato.tokens.tokenizer import GatoTokenizer
from gato.tokens.windows import (
    count_fitting,
    fit_stop,
    prompt_window,
    random_window,
    text_window_start,
    truncate_pair,
)
from gato.vocab import BOS_ID, EOS_ID, NO_LOCAL_POSITION

SOURCE_KINDS = ("control", "captions", "text")
BUILTIN_SOURCES = ("captions", "captions-single", "vqa", "text")
"""Sources the project builds itself; any other recipe task is a control task of the registry."""
COLLECT_COMMAND = "python -m gato.data collect --task {task} --episodes 100"
STATISTICS_EPISODES = 1000
"""Episodes a control source's observation statistics are taken from (the first ones: a hub
dataset of 10^5 episodes need not be read whole for a mean and a deviation)."""

PROMPT_NONE, PROMPT_END, PROMPT_UNIFORM = 0, 1, 2
"""Codes of a sample's prompt (`MixtureBatch.prompt_kind`)."""


@dataclass(frozen=True)
class BuildPlan:
    """How much of each kind of data to make when it is missing."""

    episodes: int = 60
    """Expert episodes collected per control task (before Gato's 80%-of-expert filter)."""
    atari_episodes: int = 64
    """Expert episodes per Atari game: Pong's frame-reading expert plays 64 games (~780,000
    timesteps) in about 5 minutes on two workers. Every Pong clone that played (the CNN
    specialist, the transformer alone and in the main job) trained on 64 or 128 games
    (docs/control_learning.md); fewer were not measured."""
    workers: int = 2
    """Processes collecting episodes in parallel."""
    scene_rows: int = 20_000
    """Training scenes per vision-language dataset (validation and held-out get 1,000 each)."""


class SamplingConfig(Protocol):
    """What `Source.sample` reads of the mixture's config (`MixtureConfig`)."""

    context_length: int
    prompt_probability: float
    prompt_end_probability: float
    prompt_fraction: float
    prompt_loss: bool
    pairs_per_sequence: int
    control_window_steps: int


@dataclass(frozen=True)
class Source:
    """A dataset of one kind; subclasses say how to build, load, tokenize and sample it."""

    kind: ClassVar[str]
    name: str
    """The recipe's task: a built-in source or a registry task id; also the cache folder and the
    name the source is logged under."""
    path: str
    """Dataset location: a `save_dataset` folder, Parquet file(s), or a hub id."""
    split: str = "train"
    """Split to read."""
    hub_name: str | None = None
    """Hub configuration (a JAT subset), if any."""
    image_size: int | None = None
    """Image-text pairs only: resize every image to this square side first (None: keep, rounded
    to multiples of the patch size by the tokenizer)."""
    buildable: bool = field(default=False, compare=False)
    """Whether `build` can make this source's data (built-in sources and registry tasks)."""

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"{self.name}: image_size must be positive, got {self.image_size}")

    def record(self) -> dict[str, Any]:
        """The source as token caches and mixture fingerprints record it."""
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "split": self.split,
            "hub_name": self.hub_name,
            "image_size": self.image_size,
        }

    # -- the dataset on disk -------------------------------------------------------------------

    @property
    def build_command(self) -> str:
        """The command that builds a missing dataset ("" when the project cannot build it)."""
        return ""

    def located(self) -> Source:
        """This source with a local `path` made absolute; `FileNotFoundError` naming the
        command that builds it when a local dataset is missing.

        A relative path is tried against the working directory, then the home
        (`gato.files.gato_home`: the checkout when the package runs from one).
        """
        path = self.path
        local = Path(path)
        home = gato_home()
        if not local.is_absolute() and (home / local).exists() and not local.exists():
            local = home / local
        looks_local = local.is_absolute() or path.startswith(".") or path.count("/") != 1
        if looks_local and not local.exists() and not any(ch in path for ch in "*?["):
            command = self.build_command
            hint = f"; build it with `{command}`" if command else ""
            raise FileNotFoundError(f"source {self.name!r}: no dataset at {local}{hint}")
        if local.exists():
            return replace(self, path=str(local.resolve()))
        return self

    def is_missing(self) -> bool:
        """Whether the source's local dataset does not exist (yet) or is `stale`."""
        try:
            self.located()
        except FileNotFoundError:
            return True
        return self.stale() is not None

    def stale(self) -> str | None:
        """Why the dataset at `path` is not what `build` makes today; None when it is, or when
        the project cannot tell."""
        return None

    def warn_if_stale(self) -> None:
        """Warn, naming the command that rebuilds it, when the dataset is `stale` (called as
        it is loaded: reading stale data is allowed, only not silently)."""
        reason = self.stale()
        if reason is not None:
            warnings.warn(
                f"source {self.name!r} at {self.path}: {reason}; rebuild it with "
                f"`{self.build_command}` (the main job rebuilds it unless --build_data false)",
                stacklevel=4,  # the caller of `load`
            )

    def build(self, plan: BuildPlan = BuildPlan()) -> float:
        """Make the source's dataset at `path`; returns the seconds it took."""
        start = time.perf_counter()
        if not self.buildable:
            raise ValueError(
                f"source {self.name!r} ({self.kind} at {self.path}): the project does not know "
                "how to build it; put a dataset there"
            )
        self._build(plan)
        return time.perf_counter() - start

    def _build(self, plan: BuildPlan) -> None:
        raise NotImplementedError

    # -- rows and tokens -----------------------------------------------------------------------

    def where(self) -> str:
        """How errors name the source: 'name (path, split s)'."""
        return f"{self.name} ({self.path}, split {self.split})"

    def load(self):
        """The source's split as a `datasets.Dataset`, its columns checked for the kind."""
        dataset = self._load()
        if len(dataset) == 0:
            raise ValueError(f"{self.where()} has no rows")
        return dataset

    def _load(self):
        raise NotImplementedError

    def tokenize(self, dataset, tokenizer: GatoTokenizer) -> Iterator[TokenSequence]:
        """One `TokenSequence` per row (an episode, an image-text pair, a text)."""
        raise NotImplementedError

    def uses_text(self, columns: list[str]) -> bool:
        """Whether the tokens depend on the SentencePiece model (its bytes join the cache key)."""
        return True

    # -- training sequences --------------------------------------------------------------------

    def check(self, cache: TokenCache, config: SamplingConfig) -> None:
        """Raise (or warn) when the source cannot fill sequences of the context."""

    def sample(
        self, cache: TokenCache, config: SamplingConfig, rng: np.random.Generator
    ) -> tuple[TokenSequence, int]:
        """One training sequence of at most `config.context_length` tokens, and its prompt code
        (PROMPT_NONE, PROMPT_END or PROMPT_UNIFORM)."""
        raise NotImplementedError


@dataclass(frozen=True)
class ControlSource(Source):
    """Episodes of a control task (JAT schema); built by collecting expert episodes."""

    kind: ClassVar[str] = "control"

    @property
    def build_command(self) -> str:
        return COLLECT_COMMAND.format(task=self.name) if self.buildable else ""

    def _build(self, plan: BuildPlan) -> None:
        from gato.data.collect import CollectConfig, collect
        from gato.tasks.registry import get_task

        atari = get_task(self.name).suite == "atari"
        collect(
            CollectConfig(
                task=self.name,
                episodes=plan.atari_episodes if atari else plan.episodes,
                output=self.path,
                workers=plan.workers,
            )
        )

    def stale(self) -> str | None:
        """Why the episodes at the task's registry location were not collected as the registry
        says to collect them today (its expert, the expert's parameters, the noise; None when
        they were, or when the project cannot tell).

        Only the registry's own folder (`TaskSpec.dataset_path`) can be stale, and only by the
        settings its collection recorded; a folder a recipe names with `path` is the user's
        and is read as it is.
        """
        from gato.data.collect import changed_settings, recorded_collection

        task = self.task()
        if not self.buildable or task is None or task.expert is None:
            return None
        default = task.dataset_path
        try:
            path = Path(self.located().path)
        except FileNotFoundError:
            return None
        if not isinstance(default, Path) or path.resolve() != default.resolve():
            return None
        metadata = recorded_collection(path)
        changed = [] if metadata is None else changed_settings(task, metadata)
        if changed:
            return f"it was collected with other settings ({', '.join(changed)})"
        return None

    def _load(self):
        from gato.data.episodes import load_episodes

        self.warn_if_stale()
        # Checks the JAT schema (columns, types, step counts) and, for a registry task, its
        # columns and widths, before anything is decoded or cached.
        return load_episodes(self.path, task=self.task(), split=self.split, name=self.hub_name)

    def stream(self):
        """The split as a `gato.data.streaming.StreamingEpisodes` (read shard by shard)."""
        from gato.data.episodes import load_episodes

        return load_episodes(
            self.path, task=self.task(), split=self.split, streaming=True, name=self.hub_name
        )

    def action_encoding(self, dataset) -> tuple[Any, str]:
        """(the task's action spec or None, how `dataset` stores continuous actions): what
        `GatoTokenizer.encode_jat_episode` needs to put actions on the policy's scale."""
        from gato.data.action_scale import dataset_action_scale

        return _task_action(self.name), dataset_action_scale(dataset)

    def observation_statistics(self, dataset, max_episodes: int = STATISTICS_EPISODES):
        """The per-dimension statistics of the first `max_episodes` episodes' continuous
        observations (`gato.tokens.statistics.ObservationStatistics`); None when the episodes
        have none (image, discrete or text observations only)."""
        from gato.tokens.statistics import ObservationStatistics

        column = "continuous_observations"
        if column not in dataset.column_names:
            return None
        rows = dataset.select_columns([column]).with_format("numpy")
        count = min(len(rows), max_episodes)
        try:
            return ObservationStatistics.of_episodes(rows[i] for i in range(count))
        except ValueError as err:
            raise ValueError(f"{self.where()}: {err}") from None

    def task(self):
        """The registry task of this source (None for a control source outside the registry)."""
        from gato.tasks.registry import UnknownTaskError, get_task

        try:
            return get_task(self.name)
        except (UnknownTaskError, FileNotFoundError):
            return None

    def tokenize(self, dataset, tokenizer: GatoTokenizer) -> Iterator[TokenSequence]:
        spec, scale = self.action_encoding(dataset)
        rows = dataset.with_format("numpy")  # (load_episodes formats so already; a no-op then)
        for index in range(len(rows)):
            where = f"{self.where()} episode {index}"
            try:
                row = rows[index]
            except Exception as err:  # a broken image fails inside datasets' decoder
                raise ValueError(f"{where}: cannot be read or decoded ({err})") from None
            try:
                yield tokenizer.encode_jat_episode(row, spec, scale)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None

    def uses_text(self, columns: list[str]) -> bool:
        return "text_observations" in columns

    def prompt_budget(self, cache: TokenCache, config: SamplingConfig) -> int:
        """Most tokens a prompt may take: it leaves room for one of the longest timesteps."""
        context = config.context_length
        return min(int(context * config.prompt_fraction), context - cache.max_step_tokens)

    def check(self, cache: TokenCache, config: SamplingConfig) -> None:
        longest, context = cache.max_step_tokens, config.context_length
        if longest > context:
            raise ValueError(
                f"task {self.name!r}: a timestep has {longest} tokens, more than the "
                f"context of {context}; use a longer context or smaller observations"
            )

    def sample(
        self, cache: TokenCache, config: SamplingConfig, rng: np.random.Generator
    ) -> tuple[TokenSequence, int]:
        context = config.context_length
        episodes = cache.num_episodes
        episode = int(rng.integers(episodes))
        head: TokenSequence | None = None  # the prompt
        prompt = PROMPT_NONE
        if rng.random() < config.prompt_probability:
            kind = "end" if rng.random() < config.prompt_end_probability else "uniform"
            other = int(rng.integers(episodes - 1)) if episodes > 1 else episode
            other += int(episodes > 1 and other >= episode)  # another episode when there is one
            budget = self.prompt_budget(cache, config)
            first, stop = prompt_window(cache.bounds(other), budget, kind, rng)
            if stop > first:
                head = cache.read_steps(other, first, stop)
                if not config.prompt_loss:
                    head.loss_mask[:] = False
                prompt = PROMPT_END if kind == "end" else PROMPT_UNIFORM
        budget = context - (len(head) if head is not None else 0)
        limit = config.control_window_steps
        if not limit:
            first, stop = random_window(cache.bounds(episode), budget, rng)
            windows = [cache.read_steps(episode, first, stop)]
        else:
            windows = [cache.read_windows(*self._short_windows(cache, episode, budget, limit, rng))]
        # Packed windows are independent sequences; a prompt is the row's shared prefix, which
        # prompts every window after it.
        if head is not None:
            return TokenSequence.pack([head, *windows], shared_first=True), prompt
        sequence = windows[0] if len(windows) == 1 else TokenSequence.pack(windows)
        return sequence, prompt

    @staticmethod
    def _short_windows(
        cache: TokenCache, episode: int, budget: int, limit: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows of at most `limit` whole timesteps within `budget` tokens: the first of
        `episode`, each next one of a random episode, until the next would not fit one
        timestep (the first is always taken, as the context's single window would be).
        Returns (episodes, firsts, stops), read by `TokenCache.read_windows`.

        Only the `limit + 1` step bounds a window can use are read, not its episode's: a Pong
        game has thousands of timesteps and a row draws nine windows.
        """
        episode_steps, episode_tokens, step_starts = (
            cache.episode_steps,
            cache.episode_tokens,
            cache.maps["step_starts"],
        )
        chosen: list[tuple[int, int, int]] = []
        while budget > 0:
            if chosen:
                episode = int(rng.integers(cache.num_episodes))
            lo, hi = int(episode_steps[episode]), int(episode_steps[episode + 1])
            first = int(rng.integers(max(1, hi - lo + 1 - limit)))  # a full window's starts
            # Bounds of timesteps first .. first + limit (the episode's end where it comes).
            near = np.asarray(step_starts[lo + first : min(lo + first + limit + 1, hi)], np.int64)
            if lo + first + limit + 1 > hi:
                near = np.append(near, episode_tokens[episode + 1])
            stop = first + min(fit_stop(near, 0, budget), limit)
            if stop == first and chosen:
                break  # not one more timestep fits
            chosen.append((episode, first, stop))
            if stop == first:
                break  # not even one: an empty window, as `random_window` gives
            budget -= int(near[stop - first] - near[0])
        return tuple(np.array(column, np.int64) for column in zip(*chosen, strict=True))


@dataclass(frozen=True)
class PairsSource(Source):
    """Image-text pairs (captions, VQA); the built-in ones are procedural scenes."""

    kind: ClassVar[str] = "captions"

    @property
    def build_command(self) -> str:
        from gato.data.corpora import vision_language

        return vision_language.BUILD_COMMAND if self.buildable else ""

    def _build(self, plan: BuildPlan) -> None:
        from gato.data.corpora import vision_language as vl

        # The built-in pair sources are named after the scene dataset they hold.
        vl.build_dataset(self.name, self.path, vl.BuildSizes(plan.scene_rows, 1000, 1000))

    def stale(self) -> str | None:
        """Why the procedural scenes at the built-in location are not what a build makes today
        (None when they are; the seed is the user's).

        Only the default folder (`builtin_source`) can be stale: it is stale when it records
        other scene settings or none (built before datasets recorded them). Anything else a
        recipe points to is the user's data, perhaps built with other settings on purpose, and
        is read as it is.
        """
        from gato.data.corpora import vision_language as vl

        if not self.buildable or self.name not in vl.TASKS:
            return None
        try:
            path = Path(self.located().path)
        except FileNotFoundError:
            return None
        if path.resolve() != builtin_source(self.name)[1].resolve():
            return None
        recorded = vl.recorded_build(path)
        today = vl.build_record(self.name, 0, vl.SceneConfig())
        if recorded is None:
            return "it records no scene settings (built before datasets recorded them)"
        was, now = recorded.get("config") or {}, today["config"]
        changed = sorted(key for key in set(was) | set(now) if was.get(key) != now.get(key))
        if changed:
            return f"it was built with other scene settings ({', '.join(changed)})"
        return None

    def _load(self):
        from gato.data.corpora.vision_language import load_captions

        self.warn_if_stale()
        return load_captions(self.path, self.split, self.hub_name)

    def tokenize(self, dataset, tokenizer: GatoTokenizer) -> Iterator[TokenSequence]:
        from gato.data.corpora.vision_language import iter_captions

        for example in iter_captions(dataset, self.where(), image_size=self.image_size):
            yield tokenizer.encode_caption(example.image, example.text, example.question)

    def check(self, cache: TokenCache, config: SamplingConfig) -> None:
        context = config.context_length
        if cache.max_step_tokens <= context:
            return
        most_patches = int(np.diff(cache.episode_patches).max())
        if most_patches + 2 > context:  # the image, BOS and one text token must fit
            raise ValueError(
                f"source {self.name!r}: an image has {most_patches} patches, too many for "
                f"the context of {context}; set image_size for it in the recipe"
            )
        lengths = cache.episode_lengths()
        warnings.warn(
            f"source {self.name!r}: {int((lengths > context).sum())} of {len(lengths)} "
            f"image-text pairs exceed the context of {context} tokens; their text is cut",
            stacklevel=3,
        )

    def sample(
        self, cache: TokenCache, config: SamplingConfig, rng: np.random.Generator
    ) -> tuple[TokenSequence, int]:
        context = config.context_length
        # With pairs_per_sequence 0, draw enough of the shortest pairs to overflow the context.
        wanted = config.pairs_per_sequence or context // cache.min_episode_tokens + 1
        rows = rng.integers(cache.num_episodes, size=wanted)
        lengths = cache.episode_tokens[rows + 1] - cache.episode_tokens[rows]
        count = count_fitting(lengths, context)
        if count == 0:
            return truncate_pair(cache.episode(int(rows[0])), context), PROMPT_NONE
        return cache.read_episodes(rows[:count]), PROMPT_NONE


@dataclass(frozen=True)
class TextSource(Source):
    """Text rows; the built-in one is the English corpus split into train and validation."""

    kind: ClassVar[str] = "text"

    @property
    def build_command(self) -> str:
        from gato.data.corpora import text

        return text.BUILD_COMMAND if self.buildable else ""

    def _build(self, plan: BuildPlan) -> None:
        from gato.data.corpora import text, text_corpus

        if not Path(text_corpus.DEFAULT_CORPUS_PATH).exists():
            text_corpus.build_corpus(text_corpus.DEFAULT_CORPUS_PATH)
        text.build_text_dataset(out=self.path)

    def _load(self):
        from gato.data.corpora.text import load_texts

        return load_texts(self.path, self.split, self.hub_name)

    def tokenize(self, dataset, tokenizer: GatoTokenizer) -> Iterator[TokenSequence]:
        """BOS text EOS per row, as `GatoTokenizer.encode_text_sequence`, encoded in batches."""
        from gato.data.corpora.text import iter_texts

        no_patches = tokenizer._no_patches()
        for texts in iter_texts(dataset, self.where()):
            for ids in tokenizer.text_model.encode(texts):
                array = np.empty(len(ids) + 2, dtype=np.int64)
                array[0], array[-1] = BOS_ID, EOS_ID
                array[1:-1] = ids
                loss = np.ones(len(array), dtype=bool)
                loss[0] = False
                yield TokenSequence(
                    ids=array,
                    local_positions=np.full(len(array), NO_LOCAL_POSITION, dtype=np.int64),
                    loss_mask=loss,
                    patches=no_patches,
                    timestep_starts=np.zeros(1, np.int64),
                )

    def sample(
        self, cache: TokenCache, config: SamplingConfig, rng: np.random.Generator
    ) -> tuple[TokenSequence, int]:
        context = config.context_length
        total = cache.num_tokens
        start = text_window_start(total, context, rng)
        if start + context <= total or total <= context:
            return cache.read(start, min(start + context, total)), PROMPT_NONE
        # The stream is read circularly: the window wraps from the last text to the first.
        wrapped = [cache.read(start, total), cache.read(0, start + context - total)]
        return TokenSequence.concatenate(wrapped), PROMPT_NONE


SOURCE_CLASSES: dict[str, type[Source]] = {
    cls.kind: cls for cls in (ControlSource, PairsSource, TextSource)
}


def _task_action(task_id: str):
    """The registry's action spec of a control source's task; None for a task it lacks."""
    from gato.tasks.registry import UnknownTaskError, get_task

    try:
        return get_task(task_id).action
    except UnknownTaskError:
        return None


def make_source(kind: str, name: str, path: str | Path, **fields: Any) -> Source:
    """A source of the named kind ("control", "captions" or "text")."""
    if kind not in SOURCE_CLASSES:
        raise ValueError(f"{name}: kind must be one of {SOURCE_KINDS}, got {kind!r}")
    return SOURCE_CLASSES[kind](name, str(path), **fields)


def builtin_source(name: str) -> tuple[type[Source], Path]:
    """A built-in source's class and default dataset location."""
    from gato.data.corpora import text, vision_language

    builtins: dict[str, tuple[type[Source], Path]] = {
        "captions": (PairsSource, vision_language.CAPTIONS_PATH),
        "captions-single": (PairsSource, vision_language.CAPTIONS_SINGLE_PATH),
        "vqa": (PairsSource, vision_language.VQA_PATH),
        "text": (TextSource, text.TEXT_DATASET_PATH),
    }
    return builtins[name]

"""The training mixture: a recipe of weighted sources, sampled into fixed-length batches.

A recipe (TOML, `data/mixtures/*.toml`) lists sources and sampling weights:

    name = "demo"
    [[sources]]
    task = "captions"        # a built-in source: captions, vqa, text
    weight = 1.0
    [[sources]]
    task = "<task id>"       # anything else is a control task of the registry (data/tasks.toml)
    weight = 2.0

A recipe may also take every registry task whose episodes are on disk, sharing one weight
equally among them (the recipe then follows the data as it is collected):

    [control]
    select = "with-data"     # the only selection so far
    weight = 85.0            # split equally among the selected tasks
    suites = ["babyai"]      # optional: only these suites

Optional per source: `split` (default "train"), `path` (a dataset folder, Parquet files or hub id,
overriding the built-in or registry location), `hub_name` (a hub configuration), `kind`
("control", "captions" or "text"; needed with `path` for a source that is neither built-in nor
registered), `image_size` (captions: resize images to this square side). Unknown keys, unknown
tasks and weights <= 0 are errors; nothing is dropped silently.

Each source is tokenized once into a memory-mapped cache (`gato.data.token_cache`). A batch is a
pure function of (seed, step): its generator is seeded with both, so batches come out identical
in any number of DataLoader workers, and resuming needs only the step (`MixtureLoader.state_dict`).
Sources are drawn with replacement by weight for every row; there are no epochs.

How a row is made (see `gato.tokens.windows` for the cuts):
- control: a random window of whole timesteps of a random episode, filling the context; with
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
import itertools
import json
import queue
import threading
import tomllib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.data.token_cache import (
    DEFAULT_CACHE_ROOT,
    SOURCE_KINDS,
    CacheSource,
    TokenCache,
    build_cache,
    load_source,
)
from gato.files import REPO_ROOT
from gato.tokens.batch import GatoBatch, TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.tokens.windows import (
    count_fitting,
    prompt_window,
    random_window,
    text_window_start,
    truncate_pair,
)

MIXTURES_DIR = REPO_ROOT / "data" / "mixtures"
COLLECT_COMMAND = "python -m gato.data collect --task {task} --episodes 100"

PROMPT_NONE, PROMPT_END, PROMPT_UNIFORM = 0, 1, 2
"""Codes of `MixtureBatch.prompt_kind`."""


def _builtin_sources() -> dict[str, tuple[str, Path, str]]:
    """Built-in source name -> (kind, default dataset location, command that builds it)."""
    from gato.data.corpora import text, vision_language

    return {
        "captions": ("captions", vision_language.CAPTIONS_PATH, vision_language.BUILD_COMMAND),
        "vqa": ("captions", vision_language.VQA_PATH, vision_language.BUILD_COMMAND),
        "text": ("text", text.TEXT_DATASET_PATH, text.BUILD_COMMAND),
    }


BUILTIN_SOURCES = ("captions", "vqa", "text")


# ---------------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceEntry:
    """One source of a recipe."""

    task: str
    """Built-in source (captions, vqa, text) or a control task id of the registry; also the name
    the source is logged under."""
    weight: float
    """Relative sampling weight (> 0); probabilities are weights over their sum."""
    split: str = "train"
    """Dataset split to read."""
    path: str | None = None
    """Dataset location overriding the built-in or registry one."""
    hub_name: str | None = None
    """Hub configuration of `path` (e.g. a JAT subset)."""
    kind: str | None = None
    """control, captions or text; inferred for built-in and registry tasks."""
    image_size: int | None = None
    """Captions: resize images to this square side before tokenizing."""

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"a recipe source needs a task name, got {self.task!r}")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"source {self.task!r}: weight must be a number > 0, got {weight!r}")
        if not np.isfinite(weight):
            raise ValueError(f"source {self.task!r}: weight must be finite, got {weight!r}")
        if self.kind is not None and self.kind not in SOURCE_KINDS:
            raise ValueError(f"source {self.task!r}: kind must be one of {SOURCE_KINDS}")


@dataclass(frozen=True)
class Recipe:
    """Named, weighted sources."""

    name: str
    sources: tuple[SourceEntry, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError(f"recipe {self.name!r} lists no sources")
        names = [s.task for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"recipe {self.name!r} lists {duplicates} more than once")

    @property
    def probabilities(self) -> np.ndarray:
        """(S,) float64 sampling probabilities."""
        weights = np.array([s.weight for s in self.sources], dtype=np.float64)
        return weights / weights.sum()


_ENTRY_KEYS = {f.name for f in fields(SourceEntry)}


def parse_recipe(data: dict[str, Any], name: str = "recipe") -> Recipe:
    """A recipe from parsed TOML; unknown keys are errors (a typo must not drop a setting)."""
    unknown = sorted(set(data) - {"name", "description", "sources", "control"})
    if unknown:
        raise ValueError(f"{name}: unknown top-level keys {unknown}")
    sources = data.get("sources", [] if "control" in data else None)
    if not isinstance(sources, list):
        raise ValueError(f"{name}: expected [[sources]] tables")
    if "control" in data:
        sources = _select_control(data["control"], name) + list(sources)
    entries = []
    for i, entry in enumerate(sources):
        if not isinstance(entry, dict) or "task" not in entry or "weight" not in entry:
            raise ValueError(f"{name}: source {i} needs `task` and `weight`, got {entry!r}")
        bad = sorted(set(entry) - _ENTRY_KEYS)
        if bad:
            raise ValueError(f"{name}: source {entry['task']!r} has unknown keys {bad}")
        entries.append(SourceEntry(**entry))
    return Recipe(str(data.get("name", name)), tuple(entries), str(data.get("description", "")))


def _select_control(table: Any, name: str) -> list[dict[str, Any]]:
    """The `[control]` table: one source per registry task with data, sharing `weight`."""
    if not isinstance(table, dict):
        raise ValueError(f"{name}: [control] must be a table")
    bad = sorted(set(table) - {"select", "weight", "suites"})
    if bad:
        raise ValueError(f"{name}: [control] has unknown keys {bad}")
    if table.get("select") != "with-data":
        raise ValueError(
            f"{name}: [control] select must be 'with-data', got {table.get('select')!r}"
        )
    weight = table.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise ValueError(f"{name}: [control] weight must be a number > 0, got {weight!r}")
    from gato.tasks.registry import load_registry

    registry = load_registry()
    suites = table.get("suites", registry.suites)
    unknown = sorted(set(suites) - set(registry.suites))
    if unknown:
        raise ValueError(f"{name}: [control] unknown suites {unknown}; suites: {registry.suites}")
    tasks = [t.id for t in registry.values() if t.suite in suites and t.has_data()]
    if not tasks:
        raise ValueError(
            f"{name}: [control] selects the tasks with data, and no task of {list(suites)} has "
            "data on disk; collect some first: python -m gato.data collect --suite SUITE"
        )
    return [{"task": task, "weight": weight / len(tasks)} for task in tasks]


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe file; a bare name ('demo') means `data/mixtures/<name>.toml`."""
    path = Path(path)
    if not path.exists() and path.suffix == "" and (MIXTURES_DIR / f"{path}.toml").exists():
        path = MIXTURES_DIR / f"{path}.toml"
    if not path.exists():
        known = sorted(p.stem for p in MIXTURES_DIR.glob("*.toml"))
        raise FileNotFoundError(f"{path}: no such recipe; recipes in {MIXTURES_DIR}: {known}")
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    return parse_recipe(data, name=path.stem)


def _control_location(task: str) -> tuple[str, str | None]:
    """(dataset location, hub configuration) of a registry task; errors list the known names."""
    try:
        from gato.tasks.registry import get_task
    except ImportError:
        raise ValueError(
            f"unknown source {task!r}: not a built-in source {BUILTIN_SOURCES}, and the task "
            "registry (gato.tasks.registry) is not available"
        ) from None
    try:
        spec = get_task(task)
    except (KeyError, ValueError) as err:
        message = err.args[0] if err.args else str(err)
        raise ValueError(
            f"unknown source {task!r}: not a built-in source {BUILTIN_SOURCES}; {message}"
        ) from None
    return str(spec.dataset_path), spec.dataset_config


def resolve_source(entry: SourceEntry, split: str | None = None) -> CacheSource:
    """Where a recipe entry's data lives and how to tokenize it.

    Raises `FileNotFoundError` naming the command that builds a missing local dataset.
    """
    split = split or entry.split
    builtins = _builtin_sources()
    if entry.task in builtins and entry.kind in (None, builtins[entry.task][0]):
        kind, default, command = builtins[entry.task]
        path = entry.path or str(default)
        hub_name = entry.hub_name
    elif entry.path is not None and entry.kind is not None:
        kind, path, command, hub_name = entry.kind, entry.path, "", entry.hub_name
    else:
        kind = "control"
        path, hub_name = _control_location(entry.task)
        path, hub_name = entry.path or path, entry.hub_name or hub_name
        command = COLLECT_COMMAND.format(task=entry.task)
    local = Path(path)
    if not local.is_absolute() and (REPO_ROOT / local).exists() and not local.exists():
        local = REPO_ROOT / local
    looks_local = local.is_absolute() or str(path).startswith(".") or str(path).count("/") != 1
    if looks_local and not local.exists() and not any(ch in str(path) for ch in "*?["):
        hint = f"; build it with `{command}`" if command else ""
        raise FileNotFoundError(f"source {entry.task!r}: no dataset at {local}{hint}")
    return CacheSource(
        name=entry.task,
        kind=kind,  # type: ignore[arg-type]
        path=str(local.resolve()) if local.exists() else str(path),
        split=split,
        hub_name=hub_name,
        image_size=entry.image_size,
    )


def _resolve_all(recipe: Recipe, split: str | None) -> list[CacheSource]:
    """Resolve every source; missing datasets are reported together, with their commands."""
    sources, missing = [], []
    for entry in recipe.sources:
        try:
            sources.append(resolve_source(entry, split))
        except FileNotFoundError as err:
            missing.append(str(err))
    if missing:
        raise FileNotFoundError(
            f"recipe {recipe.name!r}: {len(missing)} source(s) have no data:\n  "
            + "\n  ".join(missing)
        )
    return sources


# ---------------------------------------------------------------------------------------------
# Configuration, samples and batches
# ---------------------------------------------------------------------------------------------


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


@dataclass
class Sample:
    """One sequence and where it came from."""

    source: int
    """Index of the source in `Mixture.source_names`."""
    sequence: TokenSequence
    """At most `context_length` tokens."""
    prompt: int = PROMPT_NONE
    """PROMPT_NONE, PROMPT_END or PROMPT_UNIFORM."""


@dataclass
class MixtureBatch:
    """A `GatoBatch` plus, per row, the source it was drawn from (for per-task losses).

    Attributes:
        batch: the padded batch; `batch.as_dict()` goes to the model.
        source_index: (B,) int64 index into `source_names`.
        prompt_kind: (B,) int64 PROMPT_NONE / PROMPT_END / PROMPT_UNIFORM.
        source_names: the mixture's source names.
        step: the step this batch belongs to.
    """

    batch: GatoBatch
    source_index: torch.Tensor
    prompt_kind: torch.Tensor
    source_names: tuple[str, ...] = field(default_factory=tuple)
    step: int = 0

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MixtureBatch:
        return replace(
            self,
            batch=self.batch.to(device, non_blocking=non_blocking),
            source_index=self.source_index.to(device, non_blocking=non_blocking),
            prompt_kind=self.prompt_kind.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> MixtureBatch:
        return replace(
            self,
            batch=self.batch.pin_memory(),
            source_index=self.source_index.pin_memory(),
            prompt_kind=self.prompt_kind.pin_memory(),
        )

    @property
    def num_tokens(self) -> int:
        return self.batch.num_tokens


# ---------------------------------------------------------------------------------------------
# The mixture
# ---------------------------------------------------------------------------------------------


class Mixture:
    """Weighted sources behind one seeded sampler.

    Opening a mixture tokenizes every source that has no up-to-date cache (once; later runs map
    the files) and checks that every source can fill a sequence: a control timestep longer than
    the context is an error, a caption pair longer than the context a documented truncation.

    Args:
        recipe: the sources and weights (or a recipe path or name).
        config: context length, batch size, seed, prompting.
        tokenizer: used only to build missing caches; default `GatoTokenizer()`.
        progress: show progress bars while tokenizing.
    """

    def __init__(
        self,
        recipe: Recipe | str | Path,
        config: MixtureConfig = MixtureConfig(),
        tokenizer: GatoTokenizer | None = None,
        progress: bool = True,
    ) -> None:
        self.recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        self.config = config
        tokenizer = tokenizer or GatoTokenizer()
        self.sources = _resolve_all(self.recipe, config.split)
        self.caches: list[TokenCache] = []
        for source in self.sources:
            dataset = load_source(source)
            self.caches.append(
                build_cache(source, tokenizer, config.cache_root, dataset, progress=progress)
            )
        self.source_names = tuple(s.name for s in self.sources)
        self.probabilities = self.recipe.probabilities
        self._prompt_budgets = [
            self._check(s, c) for s, c in zip(self.sources, self.caches, strict=True)
        ]
        self._shortest = [int(c.episode_lengths().min()) for c in self.caches]

    def _check(self, source: CacheSource, cache: TokenCache) -> int:
        """Validate a source against the context; return its prompt budget (control)."""
        context = self.config.context_length
        longest = cache.max_step_tokens
        if source.kind == "control":
            if longest > context:
                raise ValueError(
                    f"task {source.name!r}: a timestep has {longest} tokens, more than the "
                    f"context of {context}; use a longer context or smaller observations"
                )
            # A prompt leaves room for at least one of the task's longest timesteps.
            return min(int(context * self.config.prompt_fraction), context - longest)
        if source.kind == "captions" and longest > context:
            most_patches = int(np.diff(cache.episode_patches).max())
            if most_patches + 2 > context:  # the image, BOS and one text token must fit
                raise ValueError(
                    f"source {source.name!r}: an image has {most_patches} patches, too many for "
                    f"the context of {context}; set image_size for it in the recipe"
                )
            lengths = cache.episode_lengths()
            warnings.warn(
                f"source {source.name!r}: {int((lengths > context).sum())} of {len(lengths)} "
                f"image-text pairs exceed the context of {context} tokens; their text is cut",
                stacklevel=3,
            )
        return 0

    # -- sampling ------------------------------------------------------------------------------

    def _control(self, index: int, rng: np.random.Generator) -> Sample:
        cache, context = self.caches[index], self.config.context_length
        episodes = cache.num_episodes
        episode = int(rng.integers(episodes))
        parts: list[TokenSequence] = []
        prompt = PROMPT_NONE
        if rng.random() < self.config.prompt_probability:
            kind = "end" if rng.random() < self.config.prompt_end_probability else "uniform"
            other = int(rng.integers(episodes - 1)) if episodes > 1 else episode
            other += int(episodes > 1 and other >= episode)  # another episode when there is one
            first, stop = prompt_window(cache.bounds(other), self._prompt_budgets[index], kind, rng)
            if stop > first:
                parts.append(cache.read_steps(other, first, stop))
                if not self.config.prompt_loss:
                    parts[0].loss_mask[:] = False
                prompt = PROMPT_END if kind == "end" else PROMPT_UNIFORM
        budget = context - (len(parts[0]) if parts else 0)
        first, stop = random_window(cache.bounds(episode), budget, rng)
        parts.append(cache.read_steps(episode, first, stop))
        sequence = parts[0] if len(parts) == 1 else TokenSequence.concatenate(parts)
        return Sample(index, sequence, prompt)

    def _pairs(self, index: int, rng: np.random.Generator) -> Sample:
        cache, context = self.caches[index], self.config.context_length
        # With pairs_per_sequence 0, draw enough of the shortest pairs to overflow the context.
        wanted = self.config.pairs_per_sequence or context // self._shortest[index] + 1
        rows = rng.integers(cache.num_episodes, size=wanted)
        lengths = cache.episode_tokens[rows + 1] - cache.episode_tokens[rows]
        count = count_fitting(lengths, context)
        if count == 0:
            return Sample(index, truncate_pair(cache.episode(int(rows[0])), context))
        return Sample(index, cache.read_episodes(rows[:count]))

    def _text(self, index: int, rng: np.random.Generator) -> Sample:
        cache, context = self.caches[index], self.config.context_length
        total = cache.num_tokens
        start = text_window_start(total, context, rng)
        if start + context <= total or total <= context:
            return Sample(index, cache.read(start, min(start + context, total)))
        # The stream is read circularly: the window wraps from the last text to the first.
        wrapped = [cache.read(start, total), cache.read(0, start + context - total)]
        return Sample(index, TokenSequence.concatenate(wrapped))

    def sample(self, source: int, rng: np.random.Generator) -> Sample:
        """One sequence of the given source."""
        kind = self.sources[source].kind
        if kind == "control":
            return self._control(source, rng)
        if kind == "captions":
            return self._pairs(source, rng)
        return self._text(source, rng)

    def samples(self, step: int) -> list[Sample]:
        """The rows of batch `step`: a pure function of (seed, step)."""
        rng = np.random.default_rng([self.config.seed, step])
        sources = rng.choice(len(self.sources), size=self.config.batch_size, p=self.probabilities)
        return [self.sample(int(s), rng) for s in sources]

    def batch(self, step: int) -> MixtureBatch:
        """Batch number `step`, padded to the context when `pad_to_context`."""
        samples = self.samples(step)
        context = self.config.context_length
        batch = collate(
            [s.sequence for s in samples],
            max_length=context,
            pad_to_multiple_of=context if self.config.pad_to_context else None,
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
            "sources": [asdict(s) for s in self.sources],
            "weights": [e.weight for e in self.recipe.sources],
            "caches": [c.meta["fingerprint"] for c in self.caches],
            "config": {k: v for k, v in asdict(self.config).items() if k != "cache_root"},
        }
        text = json.dumps(record, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def loader(self, start_step: int = 0, **kwargs: Any) -> MixtureLoader:
        """Batches from `start_step` on, optionally made by DataLoader workers (MixtureLoader)."""
        return MixtureLoader(self, start_step=start_step, **kwargs)

    def describe(self) -> str:
        """One line per source: weight share, episodes, tokens."""
        lines = []
        for name, p, source, cache in zip(
            self.source_names, self.probabilities, self.sources, self.caches, strict=True
        ):
            lines.append(
                f"{name:24s} {source.kind:8s} p={p:.3f} rows={cache.num_episodes:,d} "
                f"tokens={cache.num_tokens:,d} ({source.path}, {source.split})"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Loading batches, resuming
# ---------------------------------------------------------------------------------------------


class _StepDataset(torch.utils.data.Dataset):
    """Map-style view of a mixture: item `step` is batch `step`."""

    def __init__(self, mixture: Mixture) -> None:
        self.mixture = mixture

    def __getitem__(self, step: int) -> MixtureBatch:
        return self.mixture.batch(step)


class _CountFrom(torch.utils.data.Sampler):
    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _identity(batch: MixtureBatch) -> MixtureBatch:
    return batch


class _Prefetcher:
    """Makes batches start, start + 1, ... in a background thread, `depth` ahead, in order.

    A thread rather than a process: batches are mostly memory copies that need no pickling to
    reach the training loop, and numpy releases the GIL while copying large arrays.
    """

    def __init__(self, make: Any, start: int, depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make, start), daemon=True)
        self._thread.start()

    def _run(self, make: Any, step: int) -> None:
        while not self._stop.is_set():
            try:
                item = make(step)
            except BaseException as err:  # handed to the consumer, raised there
                item = err
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            step += 1

    def __iter__(self) -> _Prefetcher:
        return self

    def __next__(self) -> MixtureBatch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class MixtureLoader:
    """An endless iterator of `MixtureBatch`es that knows where to resume.

    `state_dict()` records the next step to hand out (batches made ahead but not yet handed out
    do not count), so after `load_state_dict` the loader yields exactly the batches an
    uninterrupted run would have. Batches are made in the calling thread (`prefetch=0`,
    `num_workers=0`), `prefetch` batches ahead in a background thread (the default: enough to
    keep an accelerator fed from a warm cache), or by a torch DataLoader with `num_workers`
    processes (for sources slow enough to need several cores). All three give the same batches.

    Usage in a training loop::

        loader = mixture.loader()
        loader.load_state_dict(checkpoint["data"])  # when resuming
        for batch in loader:
            out = model(**batch.batch.to(device).as_dict())
            ...
            checkpoint["data"] = loader.state_dict()
    """

    def __init__(
        self,
        mixture: Mixture,
        start_step: int = 0,
        num_workers: int = 0,
        prefetch: int = 4,
        pin_memory: bool = False,
    ) -> None:
        self.mixture = mixture
        self.step = start_step
        self.num_workers = num_workers
        self.prefetch = prefetch
        self.pin_memory = pin_memory
        self._iterator: Iterator[MixtureBatch] | None = None

    def _make(self, step: int) -> MixtureBatch:
        batch = self.mixture.batch(step)
        return batch.pin_memory() if self.pin_memory else batch

    def _make_iterator(self) -> Iterator[MixtureBatch]:
        if self.num_workers > 0:
            loader = torch.utils.data.DataLoader(
                _StepDataset(self.mixture),
                batch_size=None,
                sampler=_CountFrom(self.step),
                num_workers=self.num_workers,
                collate_fn=_identity,
                pin_memory=self.pin_memory,
                prefetch_factor=max(1, self.prefetch),
                worker_init_fn=_worker_init,
            )
            return iter(loader)
        if self.prefetch > 0:
            return _Prefetcher(self._make, self.step, self.prefetch)
        return map(self._make, itertools.count(self.step))

    def __iter__(self) -> MixtureLoader:
        return self

    def __next__(self) -> MixtureBatch:
        if self._iterator is None:
            self._iterator = self._make_iterator()
        batch = next(self._iterator)
        if batch.step != self.step:  # cannot happen with in-order loading; guards resumption
            raise RuntimeError(f"expected batch {self.step}, got batch {batch.step}")
        self.step += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """{'step': next step, 'seed', 'fingerprint'}: enough to resume exactly."""
        return {
            "step": self.step,
            "seed": self.mixture.config.seed,
            "fingerprint": self.mixture.fingerprint(),
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue from a saved state. With `strict`, a different recipe, config, seed or
        dataset is an error (the batches would not be those of the saved run)."""
        if strict:
            if state.get("seed") != self.mixture.config.seed:
                raise ValueError(
                    f"the saved data state has seed {state.get('seed')}, this mixture "
                    f"{self.mixture.config.seed}"
                )
            if state.get("fingerprint") != self.mixture.fingerprint():
                raise ValueError(
                    "the saved data state belongs to another recipe, config or dataset version; "
                    "pass strict=False to continue anyway with this mixture's batches"
                )
        self.close()
        self.step = int(state["step"])

    def close(self) -> None:
        """Stop the thread or workers; the next batch restarts them from `step`."""
        if isinstance(self._iterator, _Prefetcher):
            self._iterator.close()
        self._iterator = None


def open_mixture(
    recipe: str | Path | Recipe,
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


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m gato.data.mixture RECIPE`: build missing caches and describe the mixture."""
    from dataclasses import dataclass, field

    from gato.cli import parse

    @dataclass
    class Options:
        recipe: str = field(metadata={"positional": True})
        """Recipe file or name in data/mixtures/."""
        context: int = 1024
        """Tokens per sequence."""
        batch_size: int = 8
        """Sequences per batch."""
        split: str | None = None
        """Dataset split of every source (default: each source's own, from the recipe)."""

    args = parse(Options, argv, prog="python -m gato.data.mixture", description=main.__doc__)
    mixture = open_mixture(args.recipe, args.context, args.batch_size, split=args.split)
    print(mixture.describe())


if __name__ == "__main__":
    main()

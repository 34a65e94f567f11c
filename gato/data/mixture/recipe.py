"""Mixture recipes: the TOML format, and resolving a recipe's tasks into data sources.

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
registered), `image_size` (captions: resize images to this square side), `from_step` and
`until_step` (the source is drawn only at optimizer steps in [from_step, until_step): a
curriculum; the weights of the sources active at a step are its probabilities, and every step
must have one), `own_batches` (true: the source's rows come in whole batches of their own, a
step's batch drawn first by the weights; see `SourceEntry.own_batches`), `batch_rows` (with
`own_batches`: the rows of each of its batches, default the run's batch size).

A Minari dataset is a control source of a registry task: `path = "minari:<dataset id>"` (the
local Minari root, MINARI_DATASETS_PATH; nothing is downloaded), `"minari:<folder>"`, or the path
of a Minari dataset folder (`gato.data.minari_source`).

Unknown keys, unknown tasks and weights <= 0 are errors; nothing is dropped silently.

A run reads and resolves its recipe once (`resolve_recipe`: the TOML, the `[control]` selection,
the registry's dataset locations) and hands the `ResolvedRecipe` to building, training and
evaluation; whether each dataset exists is asked of its source when it is needed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from gato.data.minari_source import MinariSource, is_minari_path
from gato.data.sources import (
    BUILTIN_SOURCES,
    SOURCE_KINDS,
    ControlSource,
    Source,
    builtin_source,
    make_source,
)
from gato.files import ASSETS_DIR

MIXTURES_DIR = ASSETS_DIR / "data" / "mixtures"


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
    from_step: int = 0
    """First optimizer step at which the source is drawn."""
    until_step: int | None = None
    """The source is drawn at steps before this one only (None: to the end)."""
    own_batches: bool = False
    """Its rows fill whole batches of their own: a step first draws one active source by the
    weights; a source with own batches then gives every row, any other means the rows are drawn
    among the sources without. Each source keeps its share of rows (weight over the sum); what
    changes is that the own-batch source's short rows are not padded to another source's longer
    ones (Atari frame groups: 27 positions a row where a caption row has 256)."""
    batch_rows: int | None = None
    """With `own_batches`: the rows of each of the source's batches (None: the run's batch
    size). A step's fixed costs (the optimizer, the gradient norm over every weight) are then
    shared by more of its short rows: a Pong step of 32 rows costs about a third less a frame
    than one of 16 on a 2-core CPU (docs/control_learning.md). Its share of the steps is still
    its weight's; its share of the rows grows with them."""

    def active(self, step: int) -> bool:
        """Whether the source is drawn at optimizer step `step`."""
        return self.from_step <= step and (self.until_step is None or step < self.until_step)

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
        for name in ("from_step", "until_step"):
            value = getattr(self, name)
            if value is None and name == "until_step":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"source {self.task!r}: {name} must be an integer >= 0, got {value!r}"
                )
        if self.until_step is not None and self.until_step <= self.from_step:
            raise ValueError(
                f"source {self.task!r}: until_step={self.until_step} must be after "
                f"from_step={self.from_step}"
            )
        if not isinstance(self.own_batches, bool):
            raise ValueError(
                f"source {self.task!r}: own_batches must be true or false, got {self.own_batches!r}"
            )
        rows = self.batch_rows
        if rows is not None:
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
                raise ValueError(
                    f"source {self.task!r}: batch_rows must be an integer >= 1, got {rows!r}"
                )
            if not self.own_batches:
                raise ValueError(
                    f"source {self.task!r}: batch_rows needs own_batches = true (a source "
                    "sharing its batches has no batch of its own to size)"
                )


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

        # The draw's sources change only where one starts or stops: a step with none is at 0
        # or at some source's until_step.
        for step in sorted({0, *(e.until_step for e in self.sources if e.until_step)}):
            if not any(e.active(step) for e in self.sources):
                raise ValueError(
                    f"recipe {self.name!r}: no source is drawn at step {step} (from_step / "
                    "until_step leave a gap)"
                )

    @property
    def scheduled(self) -> bool:
        """Whether any source is drawn at some steps only (`from_step`, `until_step`)."""
        return any(e.from_step or e.until_step is not None for e in self.sources)

    @property
    def settled_step(self) -> int:
        """The first optimizer step from which the draw no longer changes (0 without a
        schedule)."""
        bounds = [e.from_step for e in self.sources]
        bounds += [e.until_step for e in self.sources if e.until_step is not None]
        return max(bounds)

    @property
    def probabilities(self) -> np.ndarray:
        """(S,) float64 sampling probabilities: the weights as written, over every source."""
        weights = np.array([s.weight for s in self.sources], dtype=np.float64)
        return weights / weights.sum()

    def probabilities_at(self, step: int) -> np.ndarray:
        """(S,) float64 sampling probabilities at optimizer step `step`: the weights of the
        sources active then, zero for the others."""
        weights = np.array(
            [e.weight if e.active(step) else 0.0 for e in self.sources], dtype=np.float64
        )
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


def resolve_entry(entry: SourceEntry, split: str | None = None) -> Source:
    """The source of a recipe entry: its kind, dataset location and builder.

    A `path` of "minari:<dataset id or folder>" (or a Minari dataset folder) is a
    `MinariSource` of the registry task `task`. Raises `ValueError` for a task that is neither
    built-in nor in the registry (unless the entry gives `kind` and `path`); does not read the
    data (see `Source.located`).
    """
    fields_ = dict(split=split or entry.split, hub_name=entry.hub_name, image_size=entry.image_size)
    if entry.task in BUILTIN_SOURCES:
        cls, default = builtin_source(entry.task)
        if entry.kind in (None, cls.kind):
            return cls(entry.task, entry.path or str(default), buildable=True, **fields_)
    if is_minari_path(entry.path) and entry.kind in (None, "control"):
        if entry.hub_name is not None:
            raise ValueError(
                f"source {entry.task!r}: hub_name does not apply to a Minari dataset ({entry.path})"
            )
        return MinariSource(entry.task, entry.path, **fields_)
    if entry.path is not None and entry.kind is not None:
        return make_source(entry.kind, entry.task, entry.path, **fields_)
    path, hub_name = _control_location(entry.task)
    fields_["hub_name"] = entry.hub_name or hub_name
    return ControlSource(entry.task, entry.path or path, buildable=True, **fields_)


def resolve_source(entry: SourceEntry, split: str | None = None) -> Source:
    """Where a recipe entry's data lives and how to tokenize it.

    Raises `FileNotFoundError` naming the command that builds a missing local dataset.
    """
    return resolve_entry(entry, split).located()


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe with every entry resolved to its `Source`: what a run passes around."""

    recipe: Recipe
    """The parsed recipe (names, weights, entries as written)."""
    sources: tuple[Source, ...]
    """One source per entry, in recipe order."""

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def probabilities(self) -> np.ndarray:
        """(S,) float64 sampling probabilities: the weights as written, over every source."""
        return self.recipe.probabilities

    def probabilities_at(self, step: int) -> np.ndarray:
        """(S,) float64 sampling probabilities at optimizer step `step` (`Recipe.
        probabilities_at`)."""
        return self.recipe.probabilities_at(step)

    @property
    def control_from_step(self) -> int | None:
        """The first optimizer step at which a control source is drawn (None: the recipe has
        no control source)."""
        starts = [
            entry.from_step
            for entry, source in zip(self.recipe.sources, self.sources, strict=True)
            if source.kind == "control"
        ]
        return min(starts) if starts else None

    def with_split(self, split: str | None) -> ResolvedRecipe:
        """Every source reading `split` instead of its own (None: unchanged)."""
        if split is None:
            return self
        return replace(self, sources=tuple(replace(s, split=split) for s in self.sources))

    def missing(self) -> list[Source]:
        """The sources whose local dataset does not exist or is stale (`Source.stale`)."""
        return [source for source in self.sources if source.is_missing()]

    def located(self) -> list[Source]:
        """Every source with its dataset found; missing datasets are reported together, with the
        commands that build them."""
        sources, missing = [], []
        for source in self.sources:
            try:
                sources.append(source.located())
            except FileNotFoundError as err:
                missing.append(str(err))
        if missing:
            raise FileNotFoundError(
                f"recipe {self.name!r}: {len(missing)} source(s) have no data:\n  "
                + "\n  ".join(missing)
            )
        return sources


def resolve_recipe(
    recipe: str | Path | Recipe | ResolvedRecipe, split: str | None = None
) -> ResolvedRecipe:
    """The one way a recipe (a name in data/mixtures/, a path, a `Recipe`) becomes sources;
    a `ResolvedRecipe` passes through (with `split`, when given, replacing its sources')."""
    if isinstance(recipe, ResolvedRecipe):
        return recipe.with_split(split)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    return ResolvedRecipe(recipe, tuple(resolve_entry(entry, split) for entry in recipe.sources))

"""Build whatever data a mixture recipe lacks: expert episodes, procedural scenes, text.

`python -m gato.data.build demo` (or `build_missing("demo")`, or `build_missing(resolved)` with
the run's `ResolvedRecipe`) makes every source of the recipe loadable, so a fresh machine goes
from nothing to a trainable mixture with one call. Each source builds its own kind of data
(`Source.build`); sources that already have data are left alone; each builder writes atomically,
so an interrupted build is simply run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gato.cli import parse
from gato.data.mixture.recipe import Recipe, ResolvedRecipe, SourceEntry, resolve_recipe
from gato.data.sources import BuildPlan, Source

DEFAULT_PLAN = BuildPlan()


def missing_sources(recipe: str | Path | Recipe | ResolvedRecipe) -> list[Source]:
    """The recipe's sources without a dataset."""
    return resolve_recipe(recipe).missing()


def build_source(source: Source | SourceEntry | str, plan: BuildPlan = DEFAULT_PLAN) -> float:
    """Build one built-in source or collect one registry task (at the source's `path`); returns
    the seconds it took."""
    if not isinstance(source, Source):
        entry = SourceEntry(source, 1.0) if isinstance(source, str) else source
        source = resolve_recipe(Recipe(entry.task, (entry,))).sources[0]
    return source.build(plan)


def build_missing(
    recipe: str | Path | Recipe | ResolvedRecipe, plan: BuildPlan = DEFAULT_PLAN
) -> dict[str, float]:
    """Build every missing source of a recipe; returns {source: seconds}."""
    recipe = resolve_recipe(recipe)
    built = {}
    for source in recipe.missing():
        reason = source.stale()
        print(f"building {source.name}{f' anew: {reason}' if reason else ''} ...", flush=True)
        built[source.name] = source.build(plan)
        print(f"built {source.name} in {built[source.name]:.1f} s", flush=True)
    still = [source.name for source in recipe.missing()]
    if still:
        raise RuntimeError(f"recipe {recipe.name!r}: building left {still} without data")
    return built


@dataclass(frozen=True)
class Target:
    """Which recipe to build."""

    recipe: str = field(default="demo", metadata={"positional": True})
    """Recipe name or path."""


def main(argv: Sequence[str] | None = None) -> None:
    target, plan = parse(
        (Target, BuildPlan),
        argv,
        prog="python -m gato.data.build",
        description="Build the missing data of a mixture recipe.",
    )
    build_missing(target.recipe, plan)


if __name__ == "__main__":
    main()

"""Build whatever data a mixture recipe lacks: expert episodes, procedural scenes, text.

`python -m gato.data.build demo` (or `build_missing("demo")`) makes every source of the recipe
loadable, so a fresh machine goes from nothing to a trainable mixture with one call. Sources that
already have data are left alone; each builder writes atomically, so an interrupted build is
simply run again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gato.data.mixture import Recipe, SourceEntry, load_recipe, resolve_source


@dataclass(frozen=True)
class BuildPlan:
    """How much of each kind of data to make when it is missing."""

    episodes: int = 60
    """Expert episodes collected per control task (before Gato's 80%-of-expert filter)."""
    atari_episodes: int = 8
    """Expert episodes per Atari game: a won game of Pong is ~6,000 agent steps, and the
    planning expert plays ~800 steps/s, so 8 games are ~1 minute and 50k timesteps."""
    workers: int = 2
    """Processes collecting episodes in parallel."""
    scene_rows: int = 20_000
    """Training scenes per vision-language dataset (validation and held-out get 1,000 each)."""


def missing_sources(recipe: Recipe) -> list[SourceEntry]:
    """The recipe's sources without a dataset."""
    missing = []
    for entry in recipe.sources:
        try:
            resolve_source(entry)
        except FileNotFoundError:
            missing.append(entry)
    return missing


def build_source(entry: SourceEntry | str, plan: BuildPlan = BuildPlan()) -> float:
    """Build one built-in source or collect one registry task (at the entry's `path` when it
    names one); returns the seconds it took."""
    entry = SourceEntry(entry, 1.0) if isinstance(entry, str) else entry
    name = entry.task
    start = time.perf_counter()
    if name in ("captions", "vqa"):
        from gato.data.corpora import vision_language as vl

        sizes = vl.BuildSizes(plan.scene_rows, 1000, 1000)
        path = entry.path or (vl.CAPTIONS_PATH if name == "captions" else vl.VQA_PATH)
        vl.build_dataset(name, path, sizes)
    elif name == "text":
        from gato.data.corpora import text, text_corpus

        if not Path(text_corpus.DEFAULT_CORPUS_PATH).exists():
            text_corpus.build_corpus(text_corpus.DEFAULT_CORPUS_PATH)
        text.build_text_dataset(out=entry.path or text.TEXT_DATASET_PATH)
    else:
        from gato.data.collect import CollectConfig, collect
        from gato.tasks.registry import get_task

        atari = get_task(name).suite == "atari"
        collect(
            CollectConfig(
                task=name,
                episodes=plan.atari_episodes if atari else plan.episodes,
                output=entry.path,
                workers=plan.workers,
            )
        )
    return time.perf_counter() - start


def build_missing(recipe: str | Path | Recipe, plan: BuildPlan = BuildPlan()) -> dict[str, float]:
    """Build every missing source of a recipe; returns {source: seconds}."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    built = {}
    for entry in missing_sources(recipe):
        print(f"building {entry.task} ...", flush=True)
        built[entry.task] = build_source(entry, plan)
        print(f"built {entry.task} in {built[entry.task]:.1f} s", flush=True)
    still = [entry.task for entry in missing_sources(recipe)]
    if still:
        raise RuntimeError(f"recipe {recipe.name!r}: building left {still} without data")
    return built


@dataclass(frozen=True)
class Target:
    """Which recipe to build."""

    recipe: str = field(default="demo", metadata={"positional": True})
    """Recipe name or path."""


def main(argv: Sequence[str] | None = None) -> None:
    from gato.cli import parse

    target, plan = parse(
        (Target, BuildPlan),
        argv,
        prog="python -m gato.data.build",
        description="Build the missing data of a mixture recipe.",
    )
    build_missing(target.recipe, plan)


if __name__ == "__main__":
    main()

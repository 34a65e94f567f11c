"""Data pipeline throughput: tokens/s and batch latency of a mixture, read from its token caches.

    python benchmarks/data_pipeline.py [--recipe demo] [--context 1024] [--batch-size 8]
        [--batches 300] [--modes main thread proc1 proc2] [--synthetic-control]

Opens the mixture (tokenizing any source whose cache is missing, timed separately), then for each
loader mode (in the loop's thread, a prefetch thread, 1 or 2 worker processes) draws batches and
prints: real tokens/s (padding excluded), positions/s (padding
included: what the model sees), patches/s and the median and 95th-percentile time between
batches. `--synthetic-control` stands in random episodes with the registry's shapes (84x84x4
frames for Atari, the state vectors of the others; 8 episodes of up to 500 steps) for every
control task whose episodes are not collected yet, so the pipeline can be measured before the
data exists; the token counts per step, and so the speed, are those of the real tasks.
Goal: >= 1M tokens/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from gato.data.mixture import (  # noqa: E402
    Mixture,
    MixtureConfig,
    Recipe,
    load_recipe,
    resolve_source,
)


def synthetic_episodes(task, path: Path, episodes: int = 8, max_steps: int = 500) -> None:
    """Random episodes with a registry task's shapes (JAT schema), saved at `path`."""
    import datasets

    from gato.data.episodes import encode_png, episode_features

    rng = np.random.default_rng(0)
    steps = min(task.episode_limit, max_steps)
    rows: dict[str, list] = {}
    for column, spec in task.observation.items():
        if column == "image_observations":
            # Sparse frames (a few bright blocks) compress like game screens, unlike noise.
            def frame(shape=spec.shape):
                image = np.zeros(shape, np.uint8)
                for _ in range(6):
                    r, c = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
                    image[r : r + 8, c : c + 8] = rng.integers(0, 256, shape[2], dtype=np.uint8)
                return {"bytes": encode_png(image), "path": None}

            rows[column] = [[frame() for _ in range(steps)] for _ in range(episodes)]
        elif column == "text_observations":
            rows[column] = [["go to the red door"] * steps for _ in range(episodes)]
        else:
            rows[column] = [rng.normal(size=(steps, *spec.shape)) for _ in range(episodes)]
    if task.action.kind == "discrete":
        actions = [rng.integers(0, task.action.num_values, steps) for _ in range(episodes)]
    else:
        actions = [rng.uniform(-1, 1, (steps, *task.action.shape)) for _ in range(episodes)]
    rows[task.action.column] = actions
    rows["rewards"] = [np.zeros(steps, np.float32) for _ in range(episodes)]
    dataset = datasets.Dataset.from_dict(rows, features=episode_features(rows))
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(path))


def with_synthetic_control(recipe: Recipe, root: Path) -> Recipe:
    """The recipe with every control task that has no data replaced by synthetic episodes."""
    from gato.tasks.registry import get_task

    sources = []
    for entry in recipe.sources:
        try:
            resolve_source(entry)
        except FileNotFoundError:
            path = root / entry.task
            if not path.exists():
                synthetic_episodes(get_task(entry.task), path)
            print(f"{entry.task}: no collected episodes; using synthetic ones of its shapes")
            entry = replace(entry, path=str(path), kind="control")
        sources.append(entry)
    return replace(recipe, sources=tuple(sources))


MODES = {"main": (0, 0), "thread": (0, 8), "proc1": (1, 8), "proc2": (2, 8)}
"""Loader mode -> (worker processes, batches made ahead)."""


def measure(mixture: Mixture, batches: int, mode: str) -> dict[str, float]:
    workers, prefetch = MODES[mode]
    loader = mixture.loader(num_workers=workers, prefetch=prefetch)
    for _ in range(3 + 2 * workers):  # warm up: page cache, workers
        next(loader)
    real = positions = patches = 0
    gaps = []
    start = last = time.perf_counter()
    for _ in range(batches):
        out = next(loader)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
        real += out.num_tokens
        positions += out.batch.input_ids.numel()
        patches += out.batch.patches.shape[0]
    elapsed = time.perf_counter() - start
    loader.close()
    gaps.sort()
    return {
        "tokens_per_s": real / elapsed,
        "positions_per_s": positions / elapsed,
        "patches_per_s": patches / elapsed,
        "p50_ms": 1000 * statistics.median(gaps),
        "p95_ms": 1000 * gaps[int(0.95 * (len(gaps) - 1))],
        "fill": real / positions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo", help="recipe file or name in data/mixtures/")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(MODES),
        choices=list(MODES),
        help="main: batches made in the loop's thread; thread: in a prefetch thread; "
        "procN: by N DataLoader worker processes",
    )
    parser.add_argument("--pairs", type=int, default=5, help="image-text pairs per sequence")
    parser.add_argument("--synthetic-control", action="store_true")
    parser.add_argument("--synthetic-dir", default=None, help="where synthetic episodes go")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    if args.synthetic_control:
        root = Path(args.synthetic_dir or tempfile.gettempdir()) / "gato-benchmark-episodes"
        root.mkdir(parents=True, exist_ok=True)
        recipe = with_synthetic_control(recipe, root)
    config = MixtureConfig(
        context_length=args.context, batch_size=args.batch_size, pairs_per_sequence=args.pairs
    )
    start = time.perf_counter()
    mixture = Mixture(recipe, config, progress=True)
    print(
        f"opened mixture {recipe.name!r} in {time.perf_counter() - start:.1f} s "
        "(includes tokenizing sources without a cache)"
    )
    print(mixture.describe())
    print(
        f"\ncontext {args.context}, batch {args.batch_size}, {args.batches} batches, "
        f"{os.cpu_count()} cores\n"
    )
    header = (
        "| loader | tokens/s | positions/s | patches/s | fill | p50 ms | p95 ms |\n"
        "| ------ | -------- | ----------- | --------- | ---- | ------ | ------ |"
    )
    print(header)
    for mode in args.modes:
        r = measure(mixture, args.batches, mode)
        print(
            f"| {mode} | {r['tokens_per_s'] / 1e6:.2f}M | {r['positions_per_s'] / 1e6:.2f}M "
            f"| {r['patches_per_s'] / 1e3:.0f}k | {r['fill']:.2f} | {r['p50_ms']:.2f} "
            f"| {r['p95_ms']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

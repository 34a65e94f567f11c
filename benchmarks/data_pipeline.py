"""Data pipeline throughput: tokens/s and batch latency of a mixture, from caches or streamed.

    python benchmarks/data_pipeline.py [--recipe demo] [--context 1024] [--batch-size 8]
        [--batches 300] [--modes main thread proc1 proc2] [--synthetic-control]
        [--streaming --shards 8 --stream-modes main proc1 proc2] [--train-step tiny]

Opens the mixture (tokenizing any source whose cache is missing, timed separately), then for each
loader mode (in the loop's thread, a prefetch thread, 1 or 2 worker processes) draws batches and
prints: real tokens/s (padding excluded), positions/s (padding
included: what the model sees), patches/s and the median and 95th-percentile time between
batches. `--synthetic-control` stands in random episodes with the registry's shapes (84x84x4
frames for Atari, the state vectors of the others; 8 episodes of up to 500 steps) for every
control task whose episodes are not collected yet, so the pipeline can be measured before the
data exists; the token counts per step, and so the speed, are those of the real tasks.
Goal: >= 1M tokens/s on 2 cores.

`--streaming` measures the streaming path as well: the recipe's control sources are written as
local Parquet shards in the hub's converted layout (`<task>/train/0000.parquet`, `--shards`
files per task) and read through `StreamingMixture`, the code that streams a hub config: each
batch is read, decoded and tokenized from the shards as it is made (in the main thread or in
DataLoader workers), nothing cached. `--train-step PRESET` times a training step (forward,
backward, AdamW) of that model preset on the same batches and adds its tokens/s to the table,
with each loader's tokens/s as a multiple of it: a loader keeps up when the multiple is >= 1.
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
    StreamingMixture,
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


def parquet_shards(recipe: Recipe, root: Path, shards: int) -> list:
    """The recipe's control sources written as Parquet shards (hub layout) under `root`, as
    `ControlSource`s reading them; other sources are left out (streams are control only)."""
    import datasets

    from gato.data.io import load_rows
    from gato.data.sources import ControlSource

    sources = []
    for entry in recipe.sources:
        source = resolve_source(entry)
        if source.kind != "control":
            print(f"{entry.task}: {source.kind} source, not streamed")
            continue
        folder = root / entry.task / "train"
        if not folder.exists():
            rows = load_rows(source.path, source.split, name=source.hub_name)
            count = min(shards, len(rows))
            folder.mkdir(parents=True)
            for index in range(count):
                part = rows.shard(count, index, contiguous=True)
                part.to_parquet(str(folder / f"{index:04d}.parquet"))
        sources.append((ControlSource(entry.task, str(folder.parent)), entry.weight))
    datasets.disable_progress_bars()
    return sources


MODES = {"main": (0, 0), "thread": (0, 8), "proc1": (1, 8), "proc2": (2, 8)}
"""Loader mode -> (worker processes, batches made ahead)."""
STREAM_MODES = {"main": 0, "proc1": 1, "proc2": 2, "proc4": 4, "proc8": 8}
"""Streaming loader mode -> DataLoader worker processes (0: the loop's thread)."""


def measure(mixture: Mixture, batches: int, mode: str) -> dict[str, float]:
    workers, prefetch = MODES[mode]
    # Past a curriculum's first lessons: the batches of the whole mixture.
    start = mixture.recipe.settled_step
    loader = mixture.loader(start_step=start, num_workers=workers, prefetch=prefetch)
    return measure_loader(loader, batches, warmup=3 + 2 * workers)


def measure_stream(recipe_sources: list, config: MixtureConfig, batches: int, mode: str):
    sources, weights = zip(*recipe_sources, strict=True)
    mixture = StreamingMixture(list(sources), list(weights), config, workers=STREAM_MODES[mode])
    return measure_loader(mixture.loader(), batches, warmup=2 + 2 * STREAM_MODES[mode])


def train_step_tokens_per_s(preset: str, loader, steps: int = 5) -> float:
    """Real tokens/s of a training step (forward, backward, AdamW) of a model preset on the
    loader's batches, on CUDA when there is one."""
    import torch

    from gato.modeling.config import GatoConfig
    from gato.modeling.model import GatoModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = next(loader).batch
    model = GatoModel(
        GatoConfig.from_preset(preset, max_position_embeddings=batch.input_ids.shape[1])
    )
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs = batch.to(device).as_dict()
    real = 0
    for step in range(steps + 1):
        if step == 1:  # the first step warms up (allocations, kernels)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            real = 0
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        real += batch.num_tokens
    if device == "cuda":
        torch.cuda.synchronize()
    return real / (time.perf_counter() - start)


def measure_loader(loader, batches: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):  # warm up: page cache, workers
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
    parser.add_argument(
        "--streaming", action="store_true", help="measure the streaming path over Parquet shards"
    )
    parser.add_argument("--shards", type=int, default=8, help="Parquet files per streamed task")
    parser.add_argument(
        "--stream-modes",
        nargs="+",
        default=["main", "proc1", "proc2"],
        choices=list(STREAM_MODES),
        help="main: batches streamed in the loop's thread; procN: by N DataLoader workers",
    )
    parser.add_argument(
        "--train-step", default=None, metavar="PRESET",
        help="also time a training step of this model preset (tiny, 79m, ...) on these batches",
    )  # fmt: skip
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
    step_rate = None
    if args.train_step:
        loader = mixture.loader(start_step=mixture.recipe.settled_step, prefetch=0)
        step_rate = train_step_tokens_per_s(args.train_step, loader)
        print(f"training step ({args.train_step}): {step_rate / 1e6:.3f}M real tokens/s\n")
    header = (
        "| loader | tokens/s | positions/s | patches/s | fill | p50 ms | p95 ms | x step |\n"
        "| ------ | -------- | ----------- | --------- | ---- | ------ | ------ | ------ |"
    )
    print(header)

    def row(name: str, r: dict[str, float]) -> None:
        ratio = f"{r['tokens_per_s'] / step_rate:.1f}" if step_rate else "-"
        print(
            f"| {name} | {r['tokens_per_s'] / 1e6:.2f}M | {r['positions_per_s'] / 1e6:.2f}M "
            f"| {r['patches_per_s'] / 1e3:.0f}k | {r['fill']:.2f} | {r['p50_ms']:.2f} "
            f"| {r['p95_ms']:.2f} | {ratio} |",
            flush=True,
        )

    for mode in args.modes:
        row(mode, measure(mixture, args.batches, mode))
    if args.streaming:
        root = Path(args.synthetic_dir or tempfile.gettempdir()) / "gato-benchmark-parquet"
        sources = parquet_shards(recipe, root / recipe.name, args.shards)
        for mode in args.stream_modes:
            row(f"stream-{mode}", measure_stream(sources, config, args.batches, mode))


if __name__ == "__main__":
    main()

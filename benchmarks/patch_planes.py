"""A token cache's patches as distinct planes against whole patches: bytes, build, reads.

For a control dataset with images (Atari's frame stacks), this builds the token cache (patches
kept as each sequence's distinct planes and per-channel indices, `gato.data.planes`), writes the
same patches whole beside it as the previous layout kept them (one (P, C, S, S) uint8 file), and
prints:

* the bytes of each layout's patches (planes and indices against whole patches) and the ratio;
* the time to build the cache (tokenizing included) and the share of it the planes' split took;
* the time to read a batch of windows (random episodes and steps, as the trainer draws them)
  from each layout, interleaved in one process so the ratio survives a shared machine (median
  milliseconds a batch).

    python benchmarks/patch_planes.py --data /tmp/pong_frames64 --episodes 8
    python benchmarks/patch_planes.py --data DIR --task atari-breakout --windows 16 --steps 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import gato.data.token_cache as token_cache
from gato.data import planes as planes_module
from gato.data.sources import make_source
from gato.data.token_cache import build_cache
from gato.tokens.tokenizer import GatoTokenizer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a control dataset folder with images")
    parser.add_argument("--task", default="atari-pong", help="its task id (default atari-pong)")
    parser.add_argument("--episodes", type=int, default=8, help="its first N episodes (0: all)")
    parser.add_argument("--windows", type=int, default=64, help="windows a batch (default 64)")
    parser.add_argument("--steps", type=int, default=1, help="timesteps a window (default 1)")
    parser.add_argument("--batches", type=int, default=50, help="batches timed a layout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", help="where to build (default: a temporary folder)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    for name in ("windows", "steps", "batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.episodes < 0:
        parser.error(f"--episodes must be 0 (all) or more, got {args.episodes}")
    return args


def build_timed(source, tokenizer, root: Path, dataset) -> tuple:
    """Build the cache; return it, the seconds it took and the seconds the planes' split took."""
    split: list[float] = []

    def timed(patches):
        start = time.perf_counter()
        out = planes_module.unique_planes(patches)
        split.append(time.perf_counter() - start)
        return out

    token_cache.unique_planes = timed
    try:
        start = time.perf_counter()
        cache = build_cache(source, tokenizer, root, dataset=dataset)
        return cache, time.perf_counter() - start, sum(split)
    finally:
        token_cache.unique_planes = planes_module.unique_planes


def write_whole_patches(cache, path: Path, chunk: int = 1 << 15) -> np.memmap:
    """The cache's patches written whole, (P, C, S, S) uint8: the earlier layout."""
    shape = (cache.num_patches, *cache.meta["patch_shape"])
    whole = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    for start in range(0, cache.num_patches, chunk):
        whole[start : start + chunk] = cache.patches_at(slice(start, start + chunk))
    whole.flush()
    return np.load(path, mmap_mode="r")


def draw_windows(cache, windows: int, steps: int, rng: np.random.Generator) -> list[tuple]:
    """(first patch, patch count) of `windows` random windows of `steps` timesteps."""
    lengths = np.diff(cache.episode_steps)
    out = []
    for _ in range(windows):
        episode = int(rng.choice(np.flatnonzero(lengths >= steps)))
        first = int(rng.integers(0, lengths[episode] - steps + 1))
        lo = int(cache.episode_steps[episode]) + first
        starts = cache.maps["step_patch_starts"]
        begin = int(starts[lo])
        end = int(starts[lo + steps]) if lo + steps < len(starts) else cache.num_patches
        out.append((begin, end - begin))
    return out


def read_planes(cache, cuts) -> int:
    got = [cache.patches_at(slice(a, a + n)) for a, n in cuts]
    return sum(int(p[:, :, 0, 0].sum()) for p in got)


def read_whole(whole, cuts) -> int:
    got = [np.array(whole[a : a + n]) for a, n in cuts]
    return sum(int(p[:, :, 0, 0].sum()) for p in got)


def run(args: argparse.Namespace) -> dict:
    tokenizer = GatoTokenizer()
    source = make_source("control", args.task, args.data)
    dataset = source.load()
    if args.episodes:
        if args.episodes > len(dataset):
            raise SystemExit(f"--episodes {args.episodes}: {args.data} holds {len(dataset)}")
        dataset = dataset.select(range(args.episodes))
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        cache, build_s, split_s = build_timed(source, tokenizer, Path(tmp) / "tokens", dataset)
        if not cache.num_patches:
            raise SystemExit(f"{args.data}: its episodes have no images")
        whole = write_whole_patches(cache, Path(tmp) / "whole.npy")
        channels, side = cache.meta["patch_shape"][0], cache.meta["patch_shape"][1]
        whole_bytes = cache.num_patches * channels * side * side
        plane_bytes = (cache.path / "planes.bin").stat().st_size
        index_bytes = (cache.path / "patch_planes.bin").stat().st_size
        rng = np.random.default_rng(args.seed)
        times: dict[str, list[float]] = {"planes": [], "whole": []}
        for _ in range(args.batches):
            cuts = draw_windows(cache, args.windows, args.steps, rng)
            for name in ("planes", "whole") if rng.integers(2) else ("whole", "planes"):
                start = time.perf_counter()
                total = read_planes(cache, cuts) if name == "planes" else read_whole(whole, cuts)
                times[name].append(time.perf_counter() - start)
                assert total >= 0
        # The layouts must read the same bytes: one batch compared in full.
        cuts = draw_windows(cache, args.windows, args.steps, rng)
        for a, n in cuts:
            np.testing.assert_array_equal(cache.patches_at(slice(a, a + n)), whole[a : a + n])
        result = {
            "episodes": cache.num_episodes,
            "timesteps": int(cache.meta["num_steps"]),
            "patches": cache.num_patches,
            "planes": int(cache.meta["num_planes"]),
            "whole_bytes": whole_bytes,
            "plane_bytes": plane_bytes,
            "index_bytes": index_bytes,
            "ratio": whole_bytes / (plane_bytes + index_bytes),
            "build_s": build_s,
            "split_s": split_s,
            "read_ms": {k: 1000 * statistics.median(v) for k, v in times.items()},
            "windows": args.windows,
            "steps": args.steps,
        }
    return result


def print_table(r: dict) -> None:
    gib = 2**30
    print(
        f"{r['episodes']} episodes, {r['timesteps']:,d} timesteps, {r['patches']:,d} patches, "
        f"{r['planes']:,d} distinct planes"
    )
    print("| layout | patch bytes | read a batch (median ms) |")
    print("| --- | --- | --- |")
    whole = r["whole_bytes"] / gib
    print(f"| whole patches (P, C, S, S) | {whole:.3f} GiB | {r['read_ms']['whole']:.2f} |")
    stored = (r["plane_bytes"] + r["index_bytes"]) / gib
    print(
        f"| planes and indices | {stored:.3f} GiB ({r['plane_bytes'] / gib:.3f} + "
        f"{r['index_bytes'] / gib:.3f}) | {r['read_ms']['planes']:.2f} |"
    )
    print(
        f"\n{r['ratio']:.1f}x fewer bytes; a batch of {r['windows']} windows of {r['steps']} "
        f"step(s). Build {r['build_s']:.1f} s, of which the planes' split "
        f"{r['split_s']:.1f} s."
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

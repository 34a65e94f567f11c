"""Short control windows read one by one against one gather: milliseconds a row.

A control row of the main job (`--control_window_steps K`) packs windows of at most K timesteps
of random episodes until the context is full: nine one-timestep windows of 27 tokens in a Pong
row of 256. This times, on a control dataset's token cache, drawing such rows two ways,
interleaved in one process so the ratio survives a shared machine:

* `per window`: each window's episode bounds read whole, then the window read alone
  (`TokenCache.bounds`, `read_steps`), the windows packed (`TokenSequence.pack`): how rows
  were drawn before `TokenCache.read_windows`;
* `one gather`: the sampler's draw (`ControlSource._short_windows`, reading only the bounds a
  window can use) and one `TokenCache.read_windows`.

Both draw the same windows from the same generator; every row is checked equal. Prints the
median milliseconds a row, the windows a row and the ratio.

    python benchmarks/window_reads.py --data data/cache/episodes/atari-pong --episodes 16
    python benchmarks/window_reads.py --data DIR --task gym-pendulum --window-steps 1 --context 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gato.data.sources import ControlSource, make_source
from gato.data.token_cache import TokenCache, build_cache
from gato.tokens.batch import TokenSequence
from gato.tokens.tokenizer import GatoTokenizer
from gato.tokens.windows import fit_stop


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a control dataset folder")
    parser.add_argument("--task", default="atari-pong", help="its task id (default atari-pong)")
    parser.add_argument("--episodes", type=int, default=16, help="its first N episodes (0: all)")
    parser.add_argument("--context", type=int, default=256, help="tokens a row (default 256)")
    parser.add_argument("--window-steps", type=int, default=1, help="K, timesteps a window")
    parser.add_argument("--rows", type=int, default=400, help="rows timed each way")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", help="where to build the cache (default: a temporary folder)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    for name in ("context", "window_steps", "rows"):
        if getattr(args, name) < 1:
            flag = name.replace("_", "-")
            parser.error(f"--{flag} must be at least 1, got {getattr(args, name)}")
    if args.episodes < 0:
        parser.error(f"--episodes must be 0 (all) or more, got {args.episodes}")
    return args


def per_window(
    cache: TokenCache, episode: int, budget: int, limit: int, rng: np.random.Generator
) -> TokenSequence:
    """The row drawn window by window: each episode's bounds read whole, each window alone."""
    windows: list[TokenSequence] = []
    while budget > 0:
        if windows:
            episode = int(rng.integers(cache.num_episodes))
        bounds = cache.bounds(episode)
        first = int(rng.integers(max(1, len(bounds) - limit)))
        stop = min(fit_stop(bounds, first, budget), first + limit)
        if stop == first and windows:
            break
        windows.append(cache.read_steps(episode, first, stop))
        if stop == first:
            break
        budget -= len(windows[-1])
    return windows[0] if len(windows) == 1 else TokenSequence.pack(windows)


def one_gather(
    cache: TokenCache, episode: int, budget: int, limit: int, rng: np.random.Generator
) -> TokenSequence:
    """The row as the sampler draws it now."""
    return cache.read_windows(*ControlSource._short_windows(cache, episode, budget, limit, rng))


def same(a: TokenSequence, b: TokenSequence) -> bool:
    names = ("ids", "local_positions", "loss_mask", "patches", "patch_positions")
    names += ("timestep_starts", "segment_starts")
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in names)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    source = make_source("control", args.task, args.data)
    dataset = source.load()
    if args.episodes:
        if args.episodes > len(dataset):
            raise SystemExit(
                f"--episodes {args.episodes}: {args.data} holds {len(dataset)} episodes"
            )
        dataset = dataset.select(range(args.episodes))
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        cache = build_cache(source, GatoTokenizer(), Path(tmp), dataset, progress=False)
        if cache.max_step_tokens > args.context:
            raise SystemExit(
                f"--context {args.context}: a timestep of {args.task} has "
                f"{cache.max_step_tokens} tokens"
            )
        ways = {"per window": per_window, "one gather": one_gather}
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        windows = []
        for row in range(args.rows):
            made = {}
            for name, draw in ways.items():  # interleaved, the same draws each way
                rng = np.random.default_rng([args.seed, row])
                episode = int(rng.integers(cache.num_episodes))
                start = time.perf_counter()
                made[name] = draw(cache, episode, args.context, args.window_steps, rng)
                seconds[name].append(time.perf_counter() - start)
            if not same(*made.values()):
                raise SystemExit(f"row {row}: the two ways read different rows")
            windows.append(len(made["one gather"].segment_starts) + 1)
        ms = {name: 1e3 * statistics.median(values) for name, values in seconds.items()}
    result = {
        "task": args.task,
        "episodes": cache.num_episodes,
        "timesteps": int(cache.episode_steps[-1]),
        "window_steps": args.window_steps,
        "context": args.context,
        "windows_per_row": float(np.mean(windows)),
        "per_window_ms": ms["per window"],
        "one_gather_ms": ms["one gather"],
        "ratio": ms["per window"] / ms["one gather"],
    }
    print(
        f"{args.task}: {result['episodes']} episodes, {result['timesteps']:,d} timesteps; rows "
        f"of {args.context} tokens, windows of at most {args.window_steps} timesteps "
        f"({result['windows_per_row']:.1f} a row); median of {args.rows} rows each way"
    )
    print("| draw | ms a row |\n| --- | --- |")
    print(f"| per window (bounds read whole, a read a window) | {ms['per window']:.3f} |")
    print(f"| one gather (`read_windows`) | {ms['one gather']:.3f} |")
    print(f"per window / one gather: {result['ratio']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

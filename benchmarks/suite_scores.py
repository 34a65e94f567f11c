"""Every offline expert against the random policy: measure, verify, optionally store the scores.

    python benchmarks/suite_scores.py --suite babyai metaworld [--expert-episodes 10]
        [--random-episodes 10] [--write] [--missing-only] [--json results.jsonl]
    python benchmarks/suite_scores.py --table --json results.jsonl   # the table, from results

For each task of the chosen suites (or `--task` ids) whose expert runs offline, plays the expert
and the random policy on the same seeds (1,000,000 and up, never the collection seeds) and
reports the expert's mean return, its Gato score (best windowed mean), the random policy's mean
and best return. A task is **verified** when the expert's mean return exceeds the random
policy's by more than three standard errors of the difference (Welch's; one-sided, a chance
below 0.2% for a normal difference): a lucky random episode (a BabyAI goal next to the start)
does not fail a task, a lucky expert average does not pass one.

`--write` stores the scores in the registry (`scores = {...}` with the episode counts), the
same as `python -m gato.data score --write`; `--missing-only` skips tasks that already have
scores (resuming an interrupted run). `--json` appends one line per task with every return, and
`--table` prints the Markdown table of docs/tasks.md from those lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402


def verified(expert_returns: list[float], random_returns: list[float]) -> bool:
    """Expert mean above the random mean by more than 3 standard errors of the difference."""
    e = np.asarray(expert_returns, dtype=np.float64)
    r = np.asarray(random_returns, dtype=np.float64)
    gap = e.mean() - r.mean()
    error = (
        np.sqrt(e.var(ddof=1) / e.size + r.var(ddof=1) / r.size) if min(e.size, r.size) > 1 else 0
    )
    return bool(gap > 0 and gap > 3.0 * error)


def row(result: dict) -> str:
    e, r = np.asarray(result["expert_returns"]), np.asarray(result["random_returns"])
    ok = "yes" if verified(result["expert_returns"], result["random_returns"]) else "NO"
    return (
        f"| {result['task']} | {result['expert']} | {e.mean():.4g} ± {e.std():.3g} ({e.size}) | "
        f"{result['expert_score']:.4g} | {r.mean():.4g} ± {r.std():.3g} ({r.size}) | "
        f"{r.max():.4g} | {ok} |"
    )


HEADER = (
    "| task | expert | expert mean ± std (N) | expert score | random mean ± std (N) | "
    "best random | verified |\n| --- | --- | ---: | ---: | ---: | ---: | :---: |"
)


def measure(args: argparse.Namespace) -> int:
    from gato.data.collect import measure_scores
    from gato.tasks.envs import missing_package
    from gato.tasks.registry import load_registry, write_scores

    registry = load_registry(args.registry)
    if args.task:
        tasks = [registry[t] for t in args.task]
    else:
        suites = args.suite or registry.suites
        tasks = [t for t in registry.values() if t.suite in suites]
    tasks = [t for t in tasks if t.has_offline_expert]
    if args.missing_only:
        tasks = [t for t in tasks if t.scores is None]
    for suite in sorted({t.suite for t in tasks}):
        if missing_package(suite):
            print(f"skipping suite {suite!r}: needs {missing_package(suite)}", file=sys.stderr)
    tasks = [t for t in tasks if missing_package(t.suite) is None]
    print(HEADER, flush=True)
    failed = 0
    for task in tasks:
        start = time.perf_counter()
        report = measure_scores(
            task, args.expert_episodes, args.random_episodes, args.seed, progress=False
        )
        result = {
            "task": task.id,
            "suite": task.suite,
            "expert": task.expert,
            "expert_score": report.scores.expert,
            "random_score": report.scores.random,
            "expert_returns": report.expert_returns,
            "random_returns": report.random_returns,
            "seed": args.seed,
            "seconds": time.perf_counter() - start,
        }
        print(row(result), flush=True)
        failed += not verified(report.expert_returns, report.random_returns)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(result) + "\n")
        if args.write:
            write_scores(registry.path, task.id, report.scores)
    print(f"\n{len(tasks) - failed}/{len(tasks)} experts verified against random", flush=True)
    return 0


def table(args: argparse.Namespace) -> int:
    results: dict[str, dict] = {}
    for line in Path(args.json).read_text().splitlines():
        if line.strip():
            result = json.loads(line)
            results[result["task"]] = result  # the latest measurement of a task wins
    print(HEADER)
    for result in results.values():
        print(row(result))
    ok = sum(verified(r["expert_returns"], r["random_returns"]) for r in results.values())
    print(f"\n{ok}/{len(results)} experts verified against random")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", default=None, help="task registry (data/tasks.toml)")
    parser.add_argument("--suite", nargs="+", default=None, help="suites (default: all)")
    parser.add_argument("--task", nargs="+", default=None, help="task ids instead of suites")
    parser.add_argument("--expert-episodes", type=int, default=10)
    parser.add_argument("--random-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1_000_000, help="first episode seed")
    parser.add_argument("--write", action="store_true", help="store the scores in the registry")
    parser.add_argument("--missing-only", action="store_true", help="only tasks without scores")
    parser.add_argument("--json", default=None, help="append per-task results to this file")
    parser.add_argument("--table", action="store_true", help="print the table from --json")
    args = parser.parse_args(argv)
    if args.table:
        if not args.json:
            parser.error("--table needs --json")
        return table(args)
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())

"""The data command line: `python -m gato.data <command> ...`.

Commands:
    tasks    list the registry's tasks with their scores and whether their data is on disk
    collect  roll a task's expert out and write its episodes (JAT schema) to a dataset folder
    score    measure a task's expert and random scores (and write them into the registry)

A command is an entry of `COMMANDS`: a help line, a function adding its arguments to an
`argparse` parser, and a function running it with the parsed arguments (returning an exit code).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import NamedTuple

from gato.data.registry import UnknownTaskError, load_registry, write_scores


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=None, help="task registry file (data/tasks.toml)")


# -- tasks ------------------------------------------------------------------------------------


def _tasks_arguments(parser: argparse.ArgumentParser) -> None:
    _add_registry(parser)
    parser.add_argument("--suite", default=None, help="only this suite's tasks")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _tasks(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry)
    tasks = [t for t in registry.values() if args.suite in (None, t.suite)]
    rows = [
        {
            "id": t.id,
            "suite": t.suite,
            "expert": t.expert or "-",
            "expert_score": t.scores.expert if t.scores else None,
            "random_score": t.scores.random if t.scores else None,
            "data": "yes" if t.has_data() else "no",
        }
        for t in tasks
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("id", "suite", "expert", "expert score", "random score", "data")
    table = [header] + [
        (r["id"], r["suite"], r["expert"], _fmt(r["expert_score"]), _fmt(r["random_score"]),
         r["data"])
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {3, 4}
    for k, row in enumerate(table):
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=True))]  # fmt: skip
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\n{len(rows)} tasks")
    return 0


# -- collect ----------------------------------------------------------------------------------


def _collect_arguments(parser: argparse.ArgumentParser) -> None:
    _add_registry(parser)
    parser.add_argument("--task", required=True, help="task id (see `tasks`)")
    parser.add_argument("--episodes", type=int, required=True, help="episodes to play")
    parser.add_argument("--output", default=None, help="dataset folder (default: the registry's)")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--policy", default=None, help="expert name (default the task's)")
    parser.add_argument("--no-filter", action="store_true", help="keep episodes below 80%%")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _collect(args: argparse.Namespace) -> int:
    from gato.data.collect import CollectConfig, collect

    result = collect(
        CollectConfig(
            task=args.task,
            episodes=args.episodes,
            output=args.output,
            seed=args.seed,
            policy=args.policy,
            workers=args.workers,
            filter=not args.no_filter,
            progress=not args.quiet,
            registry=args.registry,
        )
    )
    kept = f"{result.num_kept}/{len(result.returns)} episodes"
    if result.threshold is not None:
        kept += f" (returns >= {result.threshold:.4g})"
    print(
        f"{args.task}: wrote {kept} to {result.path}; mean return "
        f"{result.metadata['mean_return']:.4g}, {result.steps} steps at "
        f"{result.steps_per_second:.0f} steps/s"
    )
    return 0


# -- score ------------------------------------------------------------------------------------


def _score_arguments(parser: argparse.ArgumentParser) -> None:
    _add_registry(parser)
    parser.add_argument("--task", required=True, nargs="+", help="task ids, or 'all'")
    parser.add_argument("--expert-episodes", type=int, default=100)
    parser.add_argument("--random-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1_000_000, help="first episode seed")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--write", action="store_true", help="store the scores in the registry")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _score(args: argparse.Namespace) -> int:
    from gato.data.collect import measure_scores

    registry = load_registry(args.registry)
    ids = list(registry) if args.task == ["all"] else args.task
    tasks = [registry[i] for i in ids]  # unknown ids fail before any episode is played
    for task in tasks:
        report = measure_scores(
            task,
            args.expert_episodes,
            args.random_episodes,
            args.seed,
            workers=args.workers,
            registry_path=registry.path,
            progress=not args.quiet,
        )
        print(report.summary(), flush=True)
        if args.write:
            write_scores(registry.path, task.id, report.scores)
    return 0


COMMANDS: dict[str, Command] = {
    "tasks": Command("list tasks, scores and data", _tasks_arguments, _tasks),
    "collect": Command("record expert episodes of a task", _collect_arguments, _collect),
    "score": Command("measure expert and random scores", _score_arguments, _score),
}
"""Subcommand name -> `Command`; add an entry to add a command."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gato.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except UnknownTaskError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

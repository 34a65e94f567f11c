"""The data command line: `python -m gato.data <command> ...`.

Commands:
    tasks    list the registry's tasks: suite, expert, scores, whether their data is on disk
    collect  roll a task's expert out and write its episodes (JAT schema) to a dataset folder;
             --suite / --all: every task with an offline expert, resumable task by task
    score    measure a task's expert and random scores (and write them into the registry)
    count    episodes, timesteps and tokens per config of a dataset: exact for local data,
             estimated from a sample for a hub dataset

A command is an entry of `COMMANDS`: a help line and the dataclass of its options (read by
`gato.cli`), and an entry of `RUNS`: a function running it with the parsed options (returning an
exit code).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from gato.cli import Command, parse_command
from gato.tasks.registry import UnknownTaskError, load_registry, write_scores


class _UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


# -- tasks ------------------------------------------------------------------------------------


@dataclass
class Tasks:
    """List tasks, scores and data."""

    registry: str | None = None
    """Task registry file (default data/tasks.toml)."""
    suite: list[str] | None = None
    """Only these suites' tasks."""
    json: bool = False
    """Print JSON instead of a table."""


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _task_row(t) -> dict:
    return {
        "id": t.id,
        "suite": t.suite,
        "expert": t.expert or "-",
        "offline_expert": t.has_offline_expert,
        "expert_score": t.scores.expert if t.scores else None,
        "random_score": t.scores.random if t.scores else None,
        "expert_episodes": t.scores.expert_episodes if t.scores else 0,
        "random_episodes": t.scores.random_episodes if t.scores else 0,
        "reference_random": t.reference.random if t.reference else None,
        "reference_human": t.reference.human if t.reference else None,
        "data": t.has_data(),
        "dataset": str(t.dataset_path),
    }


def _suites_or_fail(registry, suites: list[str] | None) -> list[str]:
    if suites is None:
        return registry.suites
    unknown = sorted(set(suites) - set(registry.suites))
    if unknown:
        raise _UsageError(f"unknown suites {unknown}; suites: {', '.join(registry.suites)}")
    return suites


def _tasks(args: Tasks) -> int:
    registry = load_registry(args.registry)
    suites = _suites_or_fail(registry, args.suite)
    rows = [_task_row(t) for t in registry.values() if t.suite in suites]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("id", "suite", "expert", "offline", "expert score", "random score", "human", "data")
    table = [header]
    for r in rows:
        # A published random score stands in where none was measured; the mark says so.
        random = _fmt(r["random_score"])
        if r["random_score"] is None and r["reference_random"] is not None:
            random = _fmt(r["reference_random"]) + "*"
        table.append(
            (r["id"], r["suite"], r["expert"], "yes" if r["offline_expert"] else "no",
             _fmt(r["expert_score"]), random, _fmt(r["reference_human"]),
             "yes" if r["data"] else "no")
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {4, 5, 6}
    for k, row in enumerate(table):
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=True))]  # fmt: skip
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    if any(r["random_score"] is None and r["reference_random"] is not None for r in rows):
        print("\n* published random score (reference; not measured here); human: published")
    print()
    for suite in suites:
        of = [r for r in rows if r["suite"] == suite]
        print(
            f"{suite}: {len(of)} tasks, {sum(r['offline_expert'] for r in of)} with an offline "
            f"expert, {sum(r['expert_score'] is not None for r in of)} scored, "
            f"{sum(r['data'] for r in of)} with data"
        )
    print(f"{len(rows)} tasks")
    return 0


# -- collect ----------------------------------------------------------------------------------


@dataclass
class Collect:
    """Record expert episodes of a task (--task), of suites (--suite) or of all (--all)."""

    registry: str | None = None
    """Task registry file (default data/tasks.toml)."""
    task: str | None = None
    """One task id (see `tasks`)."""
    suite: list[str] | None = None
    """Every task of these suites with an offline expert."""
    all: bool = False
    """Every task with an offline expert."""
    episodes: int = 100
    """Episodes per task."""
    output: str | None = None
    """Dataset folder (--task only)."""
    seed: int = 0
    """Episode i uses seed + i."""
    workers: int = 1
    """Parallel processes."""
    policy: str | None = None
    """Expert name (--task only)."""
    filter: bool = True
    """Drop episodes below 80% of the expert score (Gato)."""
    action_noise: float | None = None
    """Noise on the expert's played actions: a std on [-1, 1] (continuous) or the probability
    of a random action (discrete); default: the task's, from the registry."""
    dart: float | None = None
    """DART: play with this noise (as --action_noise) but record the expert's own action in
    each state reached; default: the task's `dart`, from the registry."""
    start_noise: float | None = None
    """Wider start states: noise of this std on every joint position after the task's reset
    (dm-control tasks); default: the task's `start_noise`, from the registry."""
    learner: str | None = None
    """DAgger: a saved learner (`benchmarks/control_learning.py --save-learners`) plays and the
    expert's action in each state reached is recorded (--task only; with --filter false)."""
    expert_mix: float = 0.0
    """With --learner: the probability that a step plays the expert's action instead."""
    atari_protocol: str | None = None
    """Atari: play under this protocol (data, jat, sticky: sticky actions 0.25); default: the
    registry's env (--task only)."""
    atari_options: list[str] | None = None
    """key=value changes to the Atari protocol (sticky_actions=0.1, noop_max=0)."""
    expert_params: list[str] | None = None
    """key=value parameters of the policy played (values as TOML: horizon=6); over the
    registry's when it is the task's expert."""
    overwrite: bool = False
    """Suites: redo tasks with data."""
    estimate_only: bool = False
    """Suites: estimate and stop."""
    quiet: bool = False
    """No progress bar."""

    def __post_init__(self) -> None:
        if sum((self.task is not None, self.suite is not None, self.all)) != 1:
            raise ValueError("collect needs exactly one of --task, --suite, --all")


def _collect(args: Collect) -> int:
    from gato.data.collect import CollectConfig, collect

    if args.task is None:
        if args.output or args.policy:
            raise _UsageError("--output and --policy go with --task, not with --suite or --all")
        given = [f"--{name}" for name in ("action_noise", "dart", "start_noise", "learner",
                 "atari_protocol", "atari_options", "expert_params")
                 if getattr(args, name) is not None]  # fmt: skip
        given += ["--expert_mix"] if args.expert_mix else []
        if given:
            raise _UsageError(
                f"{', '.join(given)} go with --task; --suite and --all collect each task with "
                "its registry settings"
            )
        return _collect_suites(args)
    try:
        config = CollectConfig(
            task=args.task,
            episodes=args.episodes,
            output=args.output,
            seed=args.seed,
            policy=args.policy,
            workers=args.workers,
            filter=args.filter,
            progress=not args.quiet,
            registry=args.registry,
            action_noise=args.action_noise,
            dart=args.dart,
            start_noise=args.start_noise,
            learner=args.learner,
            expert_mix=args.expert_mix,
            atari_protocol=args.atari_protocol,
            atari_options=args.atari_options or [],
            expert_params=args.expert_params or [],
        )
    except (ValueError, FileNotFoundError) as err:  # a setting the config refuses
        raise _UsageError(str(err)) from None
    result = collect(config)
    kept = f"{result.num_kept}/{len(result.returns)} episodes"
    if result.threshold is not None:
        kept += f" (returns >= {result.threshold:.4g})"
    print(
        f"{args.task}: wrote {kept} to {result.path}; mean return "
        f"{result.metadata['mean_return']:.4g}, {result.steps} steps at "
        f"{result.steps_per_second:.0f} steps/s"
    )
    return 0


def _size(num_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if num_bytes < 1000:
            return f"{num_bytes:.0f} {unit}"
        num_bytes /= 1000
    return f"{num_bytes:.1f} TB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _collect_suites(args: Collect) -> int:
    from tqdm.auto import tqdm

    from gato.data.collect import SuiteCollectConfig, collect_suites, estimate_task, plan_suites

    if not args.all:
        _suites_or_fail(load_registry(args.registry), args.suite)
    config = SuiteCollectConfig(
        suites=None if args.all else args.suite,
        episodes=args.episodes,
        seed=args.seed,
        workers=args.workers,
        filter=args.filter,
        overwrite=args.overwrite,
        progress=not args.quiet,
        registry=args.registry,
    )
    plan = plan_suites(config)
    print(
        f"{len(plan.todo)} tasks to collect, {len(plan.present)} already on disk (skipped; "
        f"--overwrite redoes them), {len(plan.no_expert)} without an offline expert"
    )
    if not plan.todo:
        return 0
    # One recorded expert episode per task, extrapolated: the estimate is only as good as the
    # episode is typical, but it costs about 1% of a 100-episode collection.
    seconds = size = 0.0
    lines = []
    for task in tqdm(plan.todo, desc="estimating", unit="task", disable=args.quiet):
        estimate = estimate_task(task, args.seed)
        t, b = estimate.total(args.episodes)
        seconds, size = seconds + t, size + b
        lines.append(f"  {task.id}: ~{estimate.steps} steps/episode, ~{_duration(t)}, ~{_size(b)}")
    print("\n".join(lines))
    workers = f" with {args.workers} workers" if args.workers > 1 else ""
    print(
        f"estimate for {len(plan.todo)} tasks x {args.episodes} episodes: "
        f"~{_duration(seconds / args.workers)}{workers}, ~{_size(size)} on disk "
        "(before filtering)",
        flush=True,
    )
    if args.estimate_only:
        return 0
    results = collect_suites(config, plan)
    failed = {k: v for k, v in results.items() if isinstance(v, Exception)}
    for task_id, result in results.items():
        if not isinstance(result, Exception):
            print(f"{task_id}: {result.num_kept}/{len(result.returns)} episodes -> {result.path}")
    for task_id, err in failed.items():
        print(f"{task_id}: FAILED: {err}", file=sys.stderr)
    print(f"collected {len(results) - len(failed)}/{len(results)} tasks")
    return 1 if failed else 0


# -- score ------------------------------------------------------------------------------------


@dataclass
class Score:
    """Measure expert and random scores."""

    task: list[str]
    """Task ids, or 'all'."""
    registry: str | None = None
    """Task registry file (default data/tasks.toml)."""
    expert_episodes: int = 100
    """Expert episodes measured per task."""
    random_episodes: int = 100
    """Random-policy episodes measured per task."""
    seed: int = 1_000_000
    """First episode seed."""
    workers: int = 1
    """Parallel processes."""
    write: bool = False
    """Store the scores in the registry."""
    quiet: bool = False
    """No progress bar."""
    policy: str | None = None
    """Score this policy as the expert (default: each task's expert)."""
    atari_protocol: str | None = None
    """Atari: play under this protocol (data, jat, sticky); default: the registry's env."""
    atari_options: list[str] | None = None
    """key=value changes to the Atari protocol (sticky_actions=0.1, noop_max=0)."""
    expert_params: list[str] | None = None
    """key=value parameters of the policy scored (values as TOML: horizon=6)."""


def _score(args: Score) -> int:
    from gato.data.collect import measure_scores, played_as

    registry = load_registry(args.registry)
    ids = list(registry) if args.task == ["all"] else args.task
    tasks = [registry[i] for i in ids]  # unknown ids fail before any episode is played
    settings = (args.policy, args.atari_protocol, args.atari_options or [],
                args.expert_params or [])  # fmt: skip
    if any(settings) and args.write:
        raise _UsageError(
            "--write stores the registry's own scores; --policy, --atari_protocol, "
            "--atari_options and --expert_params measure other settings"
        )
    if any(settings):  # bad settings fail before anything is played
        tasks = [played_as(task, *settings) for task in tasks]
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


# -- count ------------------------------------------------------------------------------------


@dataclass
class Count:
    """Count episodes, timesteps and tokens per config: exact for local data; for a hub id,
    estimated from the first --sample rows of each config (labelled as an estimate)."""

    source: str = field(metadata={"positional": True})
    """A dataset folder, Parquet files, a local mirror of a hub dataset, or a hub id."""
    name: list[str] | None = None
    """Configs to count (default: every config of the source)."""
    split: list[str] | None = None
    """Splits to count (default: train and, where there is one, test)."""
    sample: int | None = None
    """Rows per config to estimate from (default: every row of local data; 200 for a hub id)."""
    json: bool = False
    """Print JSON instead of a table."""


HUB_SAMPLE = 200
"""Rows per config a hub dataset is estimated from unless --sample says otherwise."""


def _count(args: Count) -> int:
    from pathlib import Path

    from gato.data.count import configs_of, count_config, format_counts
    from gato.tokens.tokenizer import GatoTokenizer

    local = Path(args.source).exists()
    if not local and args.source.count("/") != 1:
        raise _UsageError(f"{args.source}: no such dataset folder or file, nor a hub id")
    sample = args.sample if args.sample is not None or local else HUB_SAMPLE
    tokenizer = GatoTokenizer()
    counts = []
    for name in configs_of(args.source, args.name):
        for split in args.split or ["train", "test"]:
            try:
                counts.append(count_config(args.source, name, split, sample, tokenizer))
            except ValueError as err:
                if args.split is None and split != "train" and "no split" in str(err):
                    continue  # no held-out split: count what there is
                raise _UsageError(str(err)) from None
    print(json.dumps([c.as_dict() for c in counts]) if args.json else format_counts(counts))
    return 0


COMMANDS: dict[str, Command] = {
    "tasks": Command("list tasks, scores and data", (Tasks,)),
    "collect": Command("record expert episodes of a task", (Collect,), description=Collect.__doc__),
    "score": Command("measure expert and random scores", (Score,)),
    "count": Command("count episodes, timesteps and tokens", (Count,), description=Count.__doc__),
}
"""Subcommand name -> `Command`; add an entry here and in `RUNS` to add a command."""
RUNS = {"tasks": _tasks, "collect": _collect, "score": _score, "count": _count}


def main(argv: list[str] | None = None) -> int:
    command, (args,) = parse_command(
        COMMANDS, argv, prog="python -m gato.data", description=__doc__.split("\n")[0]
    )
    from gato.data.collect import SettingsError
    from gato.tasks.envs import MissingPackageError

    try:
        return RUNS[command](args)
    except (UnknownTaskError, MissingPackageError, SettingsError, _UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

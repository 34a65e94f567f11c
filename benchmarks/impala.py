"""IMPALA throughput: environment steps per second of the whole actor-learner against the raw
vectorised step rate of the same task, on the same cores, measured in the same run.

    .venv/bin/python benchmarks/impala.py --task gym-cartpole --seconds 20 --repeats 3

Contenders (each measured `--repeats` times, interleaved, so load changes hit all alike; the
table shows the median):

- raw, 1 process: one process steps `--envs` environment adapters (`gato.tasks.envs.make_env`, what
  the actors step) round robin with random actions: a synchronous vectorised environment.
- raw, 2 processes: two such processes at once, one per core: the most the 2 cores can step.
- impala: `gato.rl.impala.train` with 2 actor processes of `--envs` environments each and the
  learner in this process (3 processes on the 2 cores), counted from the end of the first
  update to the end of the last (the steady state, as the raw loops are timed after their
  environments are made; the actors' start-up, a few seconds of importing torch and making
  environments, is left out, and shown apart in the "in all" figure); every step counted was
  learnt from. Once per `--hidden` setting.

The goal: impala >= 80% of the 2-process raw rate on a cheap task (the actors, not the learner,
set the pace). Environment frames = steps x frame skip (1 for gymnasium tasks).

Each contender's CPU time per step is measured too (the raw workers' process time; for impala,
the learner's process time plus both actors' /proc CPU time between the first and the last
update): on a machine shared with other jobs the wall-clock rates say how much of the machine
each contender got, the CPU time per step what a step costs it. "raw CPU / its CPU" is the share
of the actor-learner's CPU time that goes into stepping environments.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _raw_worker(args: tuple) -> int:
    """Step `num_envs` adapters with random actions for `seconds`; returns the steps."""
    registry, task_id, num_envs, seconds, seed = args
    from gato.tasks.envs import make_env
    from gato.tasks.registry import get_task

    task = get_task(task_id, registry)
    envs = [make_env(task) for _ in range(num_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    rng = np.random.default_rng(seed)
    steps = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for env in envs:
            step = env.step(env.sample_action(rng))
            if step.terminated or step.truncated:
                env.reset()
        steps += num_envs
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    for env in envs:
        env.close()
    return steps / elapsed * seconds, cpu / steps  # steps at the common duration, CPU s/step


def raw_rate(registry: str | None, task_id: str, num_envs: int, seconds: float, procs: int):
    """(steps per second, CPU microseconds per step) of `procs` processes stepping at once."""
    with mp.get_context("forkserver").Pool(procs) as pool:
        pool.map(_raw_worker, [(registry, task_id, 1, 0.2, 0)] * procs)  # warm the workers
        jobs = [(registry, task_id, num_envs, seconds, 1000 * i) for i in range(procs)]
        out = pool.map(_raw_worker, jobs)
    return sum(steps for steps, _ in out) / seconds, 1e6 * float(np.mean([c for _, c in out]))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def impala_rate(args: argparse.Namespace, hidden: list[int], budget_steps: int) -> dict:
    """Train for about `args.seconds` seconds; the learning loop's steps per second."""
    from gato.rl.impala import ImpalaConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        config = ImpalaConfig.from_preset(
            "classic",
            task=args.task,
            registry=args.registry,
            output_dir=str(Path(tmp) / "run"),
            total_steps=budget_steps,
            num_actors=2,
            envs_per_actor=args.envs,
            batch_size=args.envs * args.unrolls_per_batch,
            unroll_length=args.unroll_length,
            hidden=hidden,
            checkpoint_every=10**12,
            progress=False,
        )
        marks: list[tuple[int, float, float, float]] = []

        def cpu_mark(state: dict) -> None:
            # Wall time and the CPU time of the learner and both actors after every update.
            actors = sum(_cpu_seconds(p.pid) for p in state["actors"].processes)
            marks.append((state["steps"], time.perf_counter(), time.process_time(), actors))

        result = train(config, on_update=cpu_mark)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    steps = marks[-1][0] - marks[0][0]
    learner_us = 1e6 * (marks[-1][2] - marks[0][2]) / steps
    actors_us = 1e6 * (marks[-1][3] - marks[0][3]) / steps
    return {
        "steps_per_second": steps / (marks[-1][1] - marks[0][1]),
        "steps_per_second_in_all": summary["steps_per_second_this_call"],
        "cpu_us_per_step": learner_us + actors_us,
        "learner_us": learner_us,
        "actors_us": actors_us,
        "steps": result.steps,
        "seconds": result.seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="gym-cartpole")
    parser.add_argument("--registry", default=None)
    # 128 environments per process, batches of 2 unrolls (256 columns): much of the learner's
    # work is paid per update (receiving unrolls, publishing weights, logging, the update's many
    # small operations), so a batch of 256 columns cut its CPU per CartPole step from 1.37 to
    # 0.88 us against 128 (benchmarks/RESULTS.md, IMPALA).
    parser.add_argument("--envs", type=int, default=128, help="environments per process")
    parser.add_argument("--unroll-length", type=int, default=20)
    parser.add_argument("--unrolls-per-batch", type=int, default=2)
    parser.add_argument("--hidden", default="64,64;32", help="';'-separated MLP widths to try")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    hiddens = [[int(w) for w in h.split(",")] for h in args.hidden.split(";")]

    cores = len(os.sched_getaffinity(0))
    print(f"task {args.task}, {cores} cores, {args.envs} envs per process, "
          f"{args.seconds:.0f} s per measurement, {args.repeats} repeats")  # fmt: skip
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for procs in (1, 2):
            rate, cpu_us = raw_rate(args.registry, args.task, args.envs, args.seconds, procs)
            name = f"raw, {procs} process{'es' if procs > 1 else ''}"
            results.setdefault(name, []).append(rate)
            cpu.setdefault(name, []).append(cpu_us)
            print(f"  [{repeat}] {name}: {rate:,.0f} steps/s, {cpu_us:.1f} CPU us/step", flush=True)
        budget = int(results["raw, 2 processes"][-1] * args.seconds)
        for hidden in hiddens:
            out = impala_rate(args, hidden, budget)
            name = f"impala, 2 actors + learner, MLP {'x'.join(map(str, hidden))}"
            results.setdefault(name, []).append(out["steps_per_second"])
            cpu.setdefault(name, []).append(out["cpu_us_per_step"])
            print(
                f"  [{repeat}] {name}: {out['steps_per_second']:,.0f} steps/s, "
                f"{out['cpu_us_per_step']:.1f} CPU us/step (actors {out['actors_us']:.1f}, "
                f"learner {out['learner_us']:.1f}; in all {out['steps']:,} steps in "
                f"{out['seconds']:.1f} s with start-up: {out['steps_per_second_in_all']:,.0f}/s)",
                flush=True,
            )

    reference = statistics.median(results["raw, 2 processes"])
    raw_cpu = statistics.median(cpu["raw, 2 processes"])
    print()
    print(
        "| contender | steps/s (median) | runs | vs raw 2 processes | CPU us/step "
        "| raw CPU / its CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rates in results.items():
        median = statistics.median(rates)
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        cpu_us = statistics.median(cpu[name])
        print(
            f"| {name} | {median:,.0f} | {runs} | {median / reference:.2f} | {cpu_us:.1f} | "
            f"{raw_cpu / cpu_us:.2f} |"
        )


if __name__ == "__main__":
    main()

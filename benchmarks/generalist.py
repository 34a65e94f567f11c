"""One generalist on many control tasks: train within a time budget, then score every task.

    python benchmarks/generalist.py --preset 79m --minutes 4 --out runs/generalist   # a GPU
    python benchmarks/generalist.py --tiny                                           # CPU smoke

One model is trained with the real `Trainer` on a recipe (default `control`: every registry task
whose episodes are on disk, equal weights) for as many optimizer steps as fit in `--minutes` of
training: after `--skip` warm-up steps, `--calibrate` steps are timed and the run's step count is
set from their pace (the cosine schedule's length follows it; the calibration ends inside the
linear warmup, whose values do not depend on the length, so no step sees a schedule other than
the final one). Every task of the recipe is then played closed loop on held-out start states
(`gato.evaluation.evaluate_control`: the evaluation seed range, prompts from other episodes) and
printed as it is scored, then all beside their random and expert returns and the cached
specialist's score, with the IQM over tasks. `--eval-minutes` starts no task but the first after
that long (those left are named as not scored: a long suite still reports what it measured).
Writes into `--out`: the run (checkpoint, metrics), `control.json|md|png` and `generalist.json`
(timings, throughput, the plan, the tasks not scored).

The data: collect each task first (`python -m gato.data collect --task <id>`; `--suite babyai`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

TINY = dict(preset="tiny", minutes=0.3, skip=2, calibrate=3, warmup=10, global_batch=4, context=256)


def plan_steps(
    budget_s: float, elapsed_s: float, done: int, step_s: float, max_steps: int, min_steps: int
) -> int:
    """The run's total step count: `done` plus as many steps of `step_s` seconds as fit in what
    is left of `budget_s`, at least `min_steps` and at most `max_steps`."""
    if step_s <= 0 or not math.isfinite(step_s):
        raise ValueError(f"a step's time must be a positive number of seconds, got {step_s}")
    if budget_s <= 0:
        raise ValueError(f"the time budget must be positive, got {budget_s} s")
    if min_steps > max_steps:
        raise ValueError(f"min_steps={min_steps} is above max_steps={max_steps}")
    more = int(max(0.0, budget_s - elapsed_s) // step_s)
    return int(min(max_steps, max(min_steps, done + more)))


class BudgetedData:
    """The trainer's batches, passed through; times steps `skip` .. `skip + calibrate` and then
    sets the trainer's step count (read by its loop and its schedule at every step) to fit the
    budget. `plan` records what was measured and decided."""

    def __init__(
        self, trainer: Any, budget_s: float, skip: int, calibrate: int, report_every: int = 0
    ) -> None:
        if skip < 0 or calibrate < 1:
            raise ValueError(f"skip must be >= 0 and calibrate >= 1, got {skip} and {calibrate}")
        self.trainer, self.inner = trainer, trainer.data
        self.budget_s, self.skip, self.calibrate = budget_s, skip, calibrate
        self.report_every = report_every
        self.started: float | None = None
        self.timed_from: float | None = None
        self.plan: dict[str, Any] = {}

    def __iter__(self) -> BudgetedData:
        return self

    def __next__(self) -> Any:
        now, done = time.perf_counter(), self.trainer.step
        if self.started is None:
            self.started = now
        if done == self.skip:
            self.timed_from = now
        if done == self.skip + self.calibrate and self.timed_from is not None:
            step_s = (now - self.timed_from) / self.calibrate
            elapsed = now - self.started
            config = self.trainer.config
            total = plan_steps(self.budget_s, elapsed, done, step_s, config.steps, done + 1)
            self.plan = {"step_seconds": step_s, "elapsed_at_plan": elapsed, "steps": total}
            config.steps = total
            print(f"plan: {step_s:.3f} s a step -> {total} steps", flush=True)
        if self.report_every and done and done % self.report_every == 0:
            total, elapsed = self.trainer.config.steps, now - self.started
            print(f"step {done}/{total}: {elapsed:.0f} s", flush=True)
        return next(self.inner)

    def state_dict(self) -> Any:
        return self.inner.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.inner.load_state_dict(state)

    def close(self) -> None:
        if hasattr(self.inner, "close"):
            self.inner.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from gato.checkpoints import latest_checkpoint
    from gato.data.mixture import resolve_recipe
    from gato.evaluation import evaluate_control
    from gato.evaluation.control import TaskResult, control_report
    from gato.evaluation.loading import load_model
    from gato.evaluation.report import control_table, write_control_report, write_json
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    timed = args.skip + args.calibrate
    if args.warmup < timed:
        raise ValueError(
            f"--warmup {args.warmup} must cover --skip + --calibrate ({timed}): the step count "
            "is set during the warmup, where the schedule does not depend on it"
        )
    recipe = resolve_recipe(args.mixture)
    tasks = [s.task for s in recipe.recipe.sources if s.kind in (None, "control")]
    out = Path(args.out)
    config = TrainConfig(
        preset=args.preset,
        mixture=args.mixture,
        steps=args.max_steps,
        warmup_steps=args.warmup,
        global_batch=args.global_batch,
        context=args.context,
        learning_rate=args.lr,
        seed=args.seed,
        output_dir=str(out),
        checkpoint_every=args.max_steps + 1,
        keep_checkpoints=1,
        log_every=max(1, args.calibrate),
        # docs/generalist.md's run: the main job's defaults of its day, kept so it reproduces.
        encoding="grouped",
        block_lr_scale=1.0,
        control_window_steps=8,
        lr_schedule="cosine",
    )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    trainer = Trainer(config, recipe=recipe, command=" ".join([sys.argv[0], *sys.argv[1:]]))
    timings["setup"] = time.perf_counter() - start
    budget = BudgetedData(trainer, 60.0 * args.minutes, args.skip, args.calibrate, 100)
    trainer.data = budget
    start = time.perf_counter()
    logs = trainer.train()
    timings["train"] = time.perf_counter() - start
    tokens = sum(log.tokens for log in logs)
    step_seconds = [log.seconds for log in logs[args.skip :]] or [log.seconds for log in logs]
    checkpoint = latest_checkpoint(trainer.output_dir)
    start = time.perf_counter()

    loaded = load_model(checkpoint)[:2]  # once, for every task
    results, skipped, record = [], [], None
    for task in tasks:
        spent = time.perf_counter() - start
        if results and args.eval_minutes and spent > 60.0 * args.eval_minutes:
            skipped.append(task)  # past the evaluation budget: named, not scored
            continue
        report = evaluate_control(
            loaded,
            [task],
            episodes=args.episodes,
            num_envs=args.episodes,
            max_steps=args.eval_max_steps,
            progress=False,
        )
        result = TaskResult(**report["tasks"][0])
        results.append(result)
        record = report["config"]
        score = result.normalized_score
        print(
            f"{task}: {'-' if score is None else f'{100 * score:.1f}%'} of expert (return "
            f"{result.mean_return:.4g}, {time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    control = {**control_report(results, record or {}, checkpoint), "skipped": skipped}
    timings["evaluate"] = time.perf_counter() - start
    write_control_report(control, out / "control.json")
    summary = {
        "tasks": tasks,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "config": config.to_dict(),
        "plan": budget.plan,
        "steps": trainer.step,
        "tokens": tokens,
        "tokens_per_second": tokens / max(1e-9, sum(log.seconds for log in logs)),
        "median_step_seconds": sorted(step_seconds)[len(step_seconds) // 2],
        "final_loss": logs[-1].loss if logs else None,
        "peak_gpu_memory_gib": (
            torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        ),
        "timings": timings,
        "summary": control["summary"],
        "skipped": skipped,
    }
    write_json(summary, out / "generalist.json")
    print(control_table(control))
    if skipped:
        print(f"not scored (past --eval-minutes {args.eval_minutes}): {', '.join(skipped)}")
    print(
        f"{len(tasks)} tasks, {summary['parameters'] / 1e6:.1f}M parameters on "
        f"{summary['device']}: "
        f"{trainer.step} steps, {tokens / 1e6:.1f}M tokens at {summary['tokens_per_second']:,.0f}"
        f" tokens/s (median step {summary['median_step_seconds']:.3f} s), final loss "
        f"{summary['final_loss']:.3f}; setup {timings['setup']:.0f} s, training "
        f"{timings['train']:.0f} s, evaluation {timings['evaluate']:.0f} s"
    )
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="79m")
    parser.add_argument("--mixture", default="control")
    parser.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--skip", type=int, default=5, help="steps before timing starts")
    parser.add_argument("--calibrate", type=int, default=20, help="steps timed to plan the run")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=None, help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per task")
    parser.add_argument("--eval-max-steps", type=int, default=None)
    parser.add_argument(
        "--eval-minutes", type=float, default=0.0,
        help="start no task's evaluation after this long (0: score every task)",
    )  # fmt: skip
    parser.add_argument("--out", default="runs/generalist")
    parser.add_argument(
        "--tiny", action="store_true", help="a CPU smoke configuration (flags given still win)"
    )
    if "--tiny" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(**TINY)
    args = parser.parse_args(argv)
    summary = run(args)
    print(json.dumps({k: summary[k] for k in ("steps", "tokens", "plan")}, default=str))
    return summary


if __name__ == "__main__":
    main()

"""benchmarks/generalist.py: the step plan, the budgeted data, and a tiny run end to end."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import datasets
import pytest

from gato.data.collect import CollectConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generalist  # noqa: E402


def test_plan_steps_fills_the_budget_within_bounds():
    # 60 s budget, 10 s gone after 20 steps, 0.5 s a step: 100 more.
    assert generalist.plan_steps(60, 10, 20, 0.5, 10_000, 21) == 120
    assert generalist.plan_steps(60, 10, 20, 0.5, 50, 21) == 50  # capped
    assert generalist.plan_steps(60, 70, 20, 0.5, 10_000, 21) == 21  # over budget: the minimum
    for bad, match in (
        ((60, 0, 0, 0.0, 10, 1), "positive number of seconds"),
        ((60, 0, 0, math.nan, 10, 1), "positive number of seconds"),
        ((0, 0, 0, 1.0, 10, 1), "budget must be positive"),
        ((60, 0, 0, 1.0, 10, 11), "min_steps=11 is above max_steps=10"),
    ):
        with pytest.raises(ValueError, match=match):
            generalist.plan_steps(*bad)


class FakeTrainer:
    """What `BudgetedData` reads of a trainer: its step, its config's steps, its data."""

    def __init__(self, steps: int) -> None:
        self.step = 0
        self.config = type("Config", (), {"steps": steps})()
        self.data = iter(range(10**6))


def test_budgeted_data_sets_the_step_count_once_after_calibration(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    monkeypatch.setattr(generalist.time, "perf_counter", lambda: next(clock))
    trainer = FakeTrainer(steps=1000)
    data = generalist.BudgetedData(trainer, budget_s=20.0, skip=1, calibrate=2)
    batches = []
    for _ in range(4):  # steps 0..3 start at t = 0..3
        batches.append(next(data))
        trainer.step += 1
    # Timing from step 1 (t = 1) to step 3 (t = 3): 1 s a step; 17 s left -> 3 + 17 steps.
    assert data.plan == {"step_seconds": 1.0, "elapsed_at_plan": 3.0, "steps": 20}
    assert trainer.config.steps == 20 and batches == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="calibrate >= 1"):
        generalist.BudgetedData(trainer, 20.0, skip=0, calibrate=0)


def test_warmup_must_cover_the_calibration(tmp_path):
    with pytest.raises(ValueError, match="must cover --skip \\+ --calibrate"):
        generalist.main(["--tiny", "--warmup", "4", "--out", str(tmp_path / "run")])


def test_tiny_run_trains_one_model_and_scores_every_task(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GATO_HOME", str(tmp_path))  # the `control` recipe selects what is here
    datasets.disable_progress_bars()
    for task in ("gym-cartpole", "gym-pendulum"):
        collect(CollectConfig(task, 3, progress=False, filter=False))
    datasets.enable_progress_bars()
    out = tmp_path / "run"
    argv = ["--tiny", "--minutes", "0.05", "--episodes", "1", "--eval-max-steps", "5"]
    summary = generalist.main([*argv, "--out", str(out)])
    assert sorted(summary["tasks"]) == ["gym-cartpole", "gym-pendulum"]
    written = json.loads((out / "generalist.json").read_text())
    assert written["steps"] == written["plan"]["steps"] >= generalist.TINY["skip"] + 3
    assert written["tokens"] > 0 and written["config"]["preset"] == "tiny"
    control = json.loads((out / "control.json").read_text())
    assert sorted(t["task"] for t in control["tasks"]) == ["gym-cartpole", "gym-pendulum"]
    assert all(math.isfinite(t["normalized_score"]) for t in control["tasks"])
    printed = capsys.readouterr().out
    assert "gym-cartpole: " in printed and "gym-pendulum: " in printed  # rows as they came
    assert written["skipped"] == [] and control["skipped"] == []

    # An evaluation budget already spent after the first task: the second is named, not scored.
    later = generalist.main([*argv, "--eval-minutes", "1e-9", "--out", str(tmp_path / "later")])
    assert len(later["skipped"]) == 1 and later["skipped"][0] in later["tasks"]
    scored = json.loads((tmp_path / "later" / "control.json").read_text())["tasks"]
    assert [t["task"] for t in scored] == [t for t in later["tasks"] if t not in later["skipped"]]
    assert "not scored (past --eval-minutes" in capsys.readouterr().out

"""The main job end to end with a shortened budget: build, train, evaluate, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_main_job_builds_trains_evaluates_and_reports(small_recipe, tmp_path):
    folder = small_recipe.parent
    recipe = tmp_path / "job.toml"
    # A registry task whose data does not exist yet: the job must collect it first.
    recipe.write_text(
        'name = "job"\n'
        f'[[sources]]\ntask = "gym-cartpole"\nweight = 2.0\npath = "{tmp_path / "cartpole"}"\n'
        f'[[sources]]\ntask = "captions"\nweight = 1.0\npath = "{folder / "captions"}"\n'
        f'[[sources]]\ntask = "text"\nweight = 1.0\npath = "{folder / "text"}"\n'
    )
    out = tmp_path / "run"
    args = [
        "--mixture", str(recipe), "--steps", "3", "--global_batch", "4", "--context", "128",
        "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
        "--build_episodes", "3", "--eval_episodes", "2", "--eval_max_steps", "20",
        "--caption_limit", "4",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "cartpole").exists(), "the missing control data was not collected"

    report = json.loads((out / "report.json").read_text())
    tasks = report["control"]["tasks"]
    assert [t["task"] for t in tasks] == ["gym-cartpole"]
    assert tasks[0]["episodes"] == 2
    # Its prompt comes from the episodes the recipe points it at (the registry's place is empty).
    assert tasks[0]["prompt_tokens"] > 0 and tasks[0]["prompt_seed"] is not None
    assert 0.0 <= report["captions"]["exact_match"] <= 1.0 and report["captions"]["count"] == 4
    assert isinstance(report["chat"]["answer"], str)
    assert report["train"]["steps"] == 3
    assert set(report["timings"]) >= {"build_data", "train", "evaluate", "total"}
    markdown = (out / "report.md").read_text()
    assert "gym-cartpole" in markdown and "exact match" in markdown
    assert (out / "control.png").stat().st_size > 0
    assert "captions (held-out" in done.stdout


def test_a_run_reads_and_resolves_its_recipe_once(small_recipe, tmp_path, monkeypatch):
    """Building, the Trainer and the Mixture share the recipe the job resolved at its start."""
    from gato.data.mixture import recipe as recipe_module
    from gato.training import pipeline

    calls = {"parse": 0, "entries": 0}
    parse, resolve_entry = recipe_module.parse_recipe, recipe_module.resolve_entry

    def counted_parse(*args, **kwargs):
        calls["parse"] += 1
        return parse(*args, **kwargs)

    def counted_entry(*args, **kwargs):
        calls["entries"] += 1
        return resolve_entry(*args, **kwargs)

    monkeypatch.setattr(recipe_module, "parse_recipe", counted_parse)
    monkeypatch.setattr(recipe_module, "resolve_entry", counted_entry)
    result = pipeline.main(
        [
            "--mixture", str(small_recipe), "--steps", "1", "--global_batch", "2",
            "--context", "128", "--output_dir", str(tmp_path / "run"),
            "--cache_dir", str(tmp_path / "cache"), "--checkpoint_every", "1",
            "--mixed_precision", "no", "--evaluate", "false",
        ]
    )  # fmt: skip
    assert result["steps"] == 1
    assert calls == {"parse": 1, "entries": 3}  # one TOML read, one resolution per source


def test_pipeline_config_refuses_a_negative_video_count():
    from gato.training.pipeline import PipelineConfig

    assert PipelineConfig().video_episodes == 1
    with pytest.raises(ValueError, match="video_episodes must be 0 or more, got -1"):
        PipelineConfig(video_episodes=-1)


def test_a_recipe_without_control_tasks_is_evaluated_on_what_it_has(small_recipe, tmp_path):
    """Captions alone: no control evaluation (there is no task to play), captions scored."""
    from gato.training import pipeline

    recipe = tmp_path / "captions.toml"
    captions = small_recipe.parent / "captions"
    recipe.write_text(
        f'name = "c"\n[[sources]]\ntask = "captions"\nweight = 1.0\npath = "{captions}"\n'
    )
    out = tmp_path / "run"
    result = pipeline.main(
        [
            "--mixture", str(recipe), "--steps", "1", "--global_batch", "2",
            "--context", "128", "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
            "--mixed_precision", "no", "--build_data", "false", "--caption_limit", "2",
        ]
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert "control" not in report and report["captions"]["count"] == 2
    assert result["report"]["captions"]["count"] == 2
    assert "No control task in the recipe." in (out / "report.md").read_text()

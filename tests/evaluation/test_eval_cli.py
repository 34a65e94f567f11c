"""eval.py: control, caption and chat on a tiny checkpoint, and clear errors on bad input."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_config, tensorboard_scalars

from gato.evaluation.cli import main
from gato.modeling.model import GatoModel
from gato.tokens.text_model import default_text_model_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder as `gato.training.trainer` writes it: model with its text model, manifest,
    latest."""
    torch.manual_seed(0)
    model = GatoModel(make_config())
    run = tmp_path_factory.mktemp("cli") / "run"
    step = run / "checkpoints" / "step-00000003"
    model.save_pretrained(step / "model")
    shutil.copy2(default_text_model_path(), step / "model" / default_text_model_path().name)
    files = {
        str(p.relative_to(step)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(step.rglob("*"))
        if p.is_file()
    }
    manifest = {"format": 1, "files": files, "step": 3, "config": {"mixture": "demo"}}
    (step / "MANIFEST.json").write_text(json.dumps(manifest))
    (run / "checkpoints" / "latest").write_text(step.name)
    return run


def bad_input(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    return err


@pytest.mark.filterwarnings("ignore:task .* has no episodes")
def test_control_writes_table_json_markdown_chart_and_video(run_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["control", "--checkpoint", str(run_dir), "--task", "gym-pendulum"]
    argv += ["--episodes", "3", "--num-envs", "2", "--max-steps", "5", "--no-progress"]
    argv += ["--json", str(out), "--video", str(tmp_path / "videos")]
    report = main([*argv, "--report_to", "tensorboard"])
    printed = capsys.readouterr().out
    assert "gym-pendulum" in printed and "at or above 50% of expert" in printed
    assert json.loads(out.read_text())["tasks"][0]["lengths"] == [5, 5, 5]
    assert out.with_suffix(".md").exists() and out.with_suffix(".png").exists()
    assert "expert-normalised, all tasks (1 tasks x 3 episodes): iqm" in printed
    written = json.loads(out.read_text())
    assert written["summary"]["aggregates"]["all"]["iqm"]["value"] == pytest.approx(
        report["summary"]["aggregates"]["all"]["iqm"]["value"]
    )
    assert len(written["tasks"][0]["normalized_scores"]) == 3
    # --report_to: the scores at the checkpoint's training step, beside the report.
    logged = tensorboard_scalars(tmp_path / "eval_logs" / "control")
    iqm = report["summary"]["aggregates"]["all"]["iqm"]
    assert logged["eval/aggregate/all/iqm"] == {3: pytest.approx(iqm["value"])}
    assert logged["eval/aggregate/all/iqm_high"] == {3: pytest.approx(iqm["high"])}
    task = report["tasks"][0]
    assert logged["eval/gym-pendulum/mean_return"] == {3: pytest.approx(task["mean_return"])}
    assert logged["eval/gym-pendulum/normalized_score"] == {
        3: pytest.approx(task["normalized_score"])
    }
    if task["video"] is not None:  # classic control renders only with pygame installed
        import imageio.v2 as imageio

        video = tmp_path / "videos" / "gym-pendulum.mp4"
        # The 3 episodes side by side: the reset frame and 5 steps each.
        assert imageio.get_reader(video).count_frames() == 6
    else:
        assert "cannot render" in task["note"]


@pytest.mark.slow
def test_control_compiled_on_the_cpu_scores_what_the_eager_policy_scores(run_dir, capsys):
    argv = ["control", "--checkpoint", str(run_dir), "--task", "gym-pendulum"]
    argv += ["--episodes", "2", "--num-envs", "2", "--max-steps", "6", "--no-progress"]
    eager = main(argv)["tasks"][0]
    compiled = main([*argv, "--compile"])["tasks"][0]
    assert compiled["returns"] == eager["returns"] and len(eager["returns"]) == 2
    assert compiled["lengths"] == eager["lengths"] == [6, 6]


def test_caption_an_image_and_score_a_split(run_dir, tmp_path, capsys):
    from PIL import Image

    from gato.data.corpora import vision_language as vl

    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(image)
    result = main(["caption", "--checkpoint", str(run_dir), "--image", str(image)])
    assert isinstance(result["text"], str)
    assert capsys.readouterr().out.strip() == result["text"].strip()

    vl.build_dataset("vqa", tmp_path / "vqa", vl.BuildSizes(2, 2, 3))
    out = tmp_path / "captions.json"
    argv = ["caption", "--checkpoint", str(run_dir), "--source", str(tmp_path / "vqa")]
    argv += ["--limit", "2", "--max-new-tokens", "3", "--no-progress", "--json", str(out)]
    logs = tmp_path / "logs"
    report = main([*argv, "--report_to", "tensorboard", "--log_dir", str(logs)])
    assert report["count"] == 2 and report["examples"][0]["question"]
    logged = tensorboard_scalars(logs / "caption")
    assert logged["eval/vqa/heldout/exact_match"] == {3: pytest.approx(report["exact_match"])}
    assert logged["eval/vqa/heldout/bleu"] == {3: pytest.approx(report["bleu"])}
    assert not (tmp_path / "eval_logs").exists()
    assert "exact match" in capsys.readouterr().out
    assert json.loads(out.read_text())["split"] == "heldout"


def test_chat_one_shot_and_interactive(run_dir, capsys, monkeypatch):
    result = main(
        ["chat", "--checkpoint", str(run_dir), "--prompt", "Hello", "--max-new-tokens", "4"]
    )
    assert isinstance(result["answer"], str)
    monkeypatch.setattr(sys, "stdin", io.StringIO("first line\nsecond line\n\n"))
    result = main(["chat", "--checkpoint", str(run_dir), "--max-new-tokens", "3"])
    assert [t["prompt"] for t in result["turns"]] == ["first line", "second line"]


def test_bad_input_ends_with_one_clear_error(run_dir, tmp_path, capsys):
    err = bad_input(["chat", "--checkpoint", str(tmp_path / "nope"), "--prompt", "x"], capsys)
    assert "does not exist" in err
    err = bad_input(["control", "--checkpoint", str(run_dir), "--task", "gym-pendullum"], capsys)
    assert "unknown task 'gym-pendullum'" in err and "did you mean 'gym-pendulum'" in err
    err = bad_input(["control", "--checkpoint", str(run_dir), "--task", "atari-breakout"], capsys)
    assert "not trained for" in err and "discrete(4)" in err
    err = bad_input(["control", "--checkpoint", str(run_dir)], capsys)
    assert "no control task" in err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    err = bad_input(["caption", "--checkpoint", str(run_dir), "--image", str(broken)], capsys)
    assert "cannot be decoded" in err
    err = bad_input(["caption", "--checkpoint", str(run_dir), "--image", str(tmp_path)], capsys)
    assert "no image file" in err
    # Refused as the command line is read, before any model loads.
    with pytest.raises(SystemExit) as exit_info:
        main(["caption", "--checkpoint", str(run_dir), "--report_to", "mlflow"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "report_to must be one of ['tensorboard', 'wandb', 'none'], got 'mlflow'" in err


def test_eval_script_runs_as_a_program():
    result = subprocess.run(
        [sys.executable, str(REPO / "eval.py"), "control", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--episodes" in result.stdout and "--mixture" in result.stdout


@pytest.mark.filterwarnings("ignore:task .* has no episodes")
def test_progress_scores_every_checkpoint_against_tokens(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    later = run / "checkpoints" / "step-00000006"
    shutil.copytree(run / "checkpoints" / "step-00000003", later)
    manifest = json.loads((later / "MANIFEST.json").read_text())
    (later / "MANIFEST.json").write_text(json.dumps({**manifest, "step": 6}))
    (run / "checkpoints" / "step-00000009").mkdir()  # interrupted: no manifest, skipped
    lines = [json.dumps({"step": s, "loss": 1.0, "tokens": 100 * s}) for s in range(1, 7)]
    lines.append(json.dumps({"step": 6, "loss": 1.0, "tokens": 1000}))  # a resumed run's repeat
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    recipe = tmp_path / "pendulum.toml"
    recipe.write_text('name = "p"\n[[sources]]\ntask = "gym-pendulum"\nweight = 1.0\n')
    argv = ["progress", "--run", str(run), "--mixture", str(recipe), "--episodes", "1"]
    report = main([*argv, "--max-steps", "3", "--no-progress", "--report_to", "tensorboard"])
    steps = [(r["step"], r["tokens"]) for r in report["checkpoints"]]
    # --report_to: one point per checkpoint at its training step, in the run folder.
    logged = tensorboard_scalars(run / "eval_logs" / "progress")
    assert logged["eval/tokens"] == {3: 600.0, 6: 2500.0}
    assert logged["eval/gym-pendulum/normalized_score"] == {
        r["step"]: pytest.approx(r["control"]["gym-pendulum"]) for r in report["checkpoints"]
    }
    assert steps == [(3, 600), (6, 600 + 400 + 500 + 1000)]
    assert set(report["checkpoints"][0]["control"]) == {"gym-pendulum"}
    saved = json.loads((run / "progress.json").read_text())
    assert len(saved["checkpoints"]) == 2
    assert (run / "progress.png").stat().st_size > 0
    assert "| 6 | 0.0 |" in (run / "progress.md").read_text()
    err = bad_input(["progress", "--run", str(tmp_path / "empty")], capsys)
    assert "no checkpoints/ folder" in err
    err = bad_input([*argv, "--steps", "4"], capsys)
    assert "no checkpoint at steps [4]" in err


def test_progress_of_a_run_without_control_tasks(run_dir, tmp_path, capsys):
    """A run of captions alone is scored on its captions only; one with nothing to score fails."""
    from gato.data.corpora import vision_language as vl

    vl.build_dataset("captions", tmp_path / "captions", vl.BuildSizes(2, 2, 3))
    recipe = tmp_path / "captions.toml"
    recipe.write_text(
        'name = "c"\n[[sources]]\ntask = "captions"\nweight = 1.0\n'
        f'path = "{tmp_path / "captions"}"\n'
    )
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3, "loss": 1.0, "tokens": 30}) + "\n")
    argv = ["progress", "--run", str(run), "--mixture", str(recipe), "--caption-limit", "2"]
    report = main([*argv, "--no-progress", "--out", str(tmp_path / "out")])
    (row,) = report["checkpoints"]
    assert row["control"] == {} and set(row["captions"]) == {"validation", "heldout"}
    assert "captions heldout" in (tmp_path / "out" / "progress.md").read_text()
    # The default --report_to none: no tracker logs anywhere.
    assert not list(tmp_path.rglob("eval_logs")) and not list(tmp_path.rglob("*tfevents*"))
    text = tmp_path / "text.toml"
    text.write_text('name = "t"\n[[sources]]\ntask = "text"\nweight = 1.0\n')
    capsys.readouterr()  # the dataset build's progress bars
    err = bad_input(["progress", "--run", str(run), "--mixture", str(text)], capsys)
    assert "no control task, captions or VQA to score" in err

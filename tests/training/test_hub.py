"""Hub-ready checkpoints: the card's model-index round-trips through `huggingface_hub`, the
upload folder loads on its own, `push` sends exactly that folder (the upload faked: offline), no
credentials fail before anything is built, and a hub id loads from the local hub cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import EvalResult, ModelCard

from gato.checkpoints import verify_checkpoint
from gato.training import hub
from gato.training.config import TrainConfig
from gato.training.model_card import eval_results, model_card
from gato.training.trainer import main

REPORT = {
    "control": {
        "kind": "control",
        "tasks": [
            {
                "task": "gym-cartpole",
                "mean_return": 482.375,
                "normalized_score": 0.963051,
                "video": "runs/x/videos/gym-cartpole.gif",
            },
            {
                "task": "atari-pong",
                "mean_return": -20.875,
                "normalized_score": -0.016877,
                "video": None,
            },
        ],  # fmt: skip
        "summary": {"mean_normalized": 0.473087, "median_normalized": 0.473087, "above_50": 1},
    },
    "captions": {"split": "heldout", "exact_match": 0.25, "bleu": 57.2},
}


def test_card_model_index_round_trips_through_huggingface_hub():
    config = TrainConfig(mixture="demo")
    text = model_card(
        config, "python train.py --steps 2000", 2000, REPORT, tokens=6_900_000,
        videos={"gym-cartpole": "videos/gym-cartpole.gif"},
    )  # fmt: skip
    card = ModelCard(text)
    results = card.data.eval_results
    assert results == eval_results(REPORT)
    found = {(r.dataset_name, r.metric_type): r.metric_value for r in results}
    assert found[("gym-cartpole", "expert_normalized_score")] == 0.963051
    assert found[("atari-pong", "mean_reward")] == -20.875
    assert found[("control-tasks", "mean_normalized")] == 0.473087
    assert found[("control-tasks", "above_50")] == 1
    assert found[("captions", "bleu")] == 57.2 and found[("captions", "exact_match")] == 0.25
    assert len(results) == 2 + 2 + 3 + 2
    assert card.data.library_name == "gato" and card.data.model_name == "gato-tiny"
    assert "python train.py --steps 2000" in card.text
    assert "`demo`, 6,900,000 tokens trained on (2000 steps)" in card.text
    assert "[gym-cartpole](videos/gym-cartpole.gif)" in card.text
    # A card before evaluation has no model-index, and still parses.
    plain = ModelCard(model_card(config, "python train.py", 5))
    assert plain.data.eval_results is None and "Not evaluated yet" in plain.text


def test_eval_results_of_bad_reports():
    with pytest.raises(ValueError, match="no control, caption or VQA result"):
        eval_results({"model": "x"})
    with pytest.raises(ValueError, match="JSON object"):
        eval_results([1, 2])  # type: ignore[arg-type]
    # A control report alone (eval.py control --json) works too.
    alone = eval_results(REPORT["control"])
    assert all(isinstance(r, EvalResult) and r.task_type == "reinforcement-learning" for r in alone)


@pytest.fixture(scope="module")
def run(small_recipe, tmp_path_factory) -> Path:
    """A 1-step tiny run with an evaluation report and a replay video beside it."""
    root = tmp_path_factory.mktemp("hub")
    out = root / "run"
    main([
        "--preset", "tiny", "--mixture", str(small_recipe), "--steps", "1",
        "--global_batch", "2", "--context", "128", "--output_dir", str(out),
        "--cache_dir", str(root / "cache"), "--mixed_precision", "no",
    ])  # fmt: skip
    (out / "videos").mkdir()
    (out / "videos" / "gym-cartpole.gif").write_bytes(b"GIF89a fake")
    (out / "report.json").write_text(json.dumps(REPORT))
    return out


def test_upload_folder_is_the_hub_layout_and_loads_alone(run, tmp_path):
    from gato import GatoModel
    from gato.policy.loading import load_pretrained

    folder = hub.build_upload_folder(run, tmp_path / "upload")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == [
        "README.md", "config.json", "gato_text_8k.model", "model.safetensors",
        "videos/gym-cartpole.gif",
    ]  # fmt: skip
    card = ModelCard.load(folder / "README.md")
    assert card.data.eval_results == eval_results(REPORT)
    assert "[gym-cartpole](videos/gym-cartpole.gif)" in card.text
    assert "tokens trained on (1 steps)" in card.text
    # Moved away from the run (no checkout, no manifest around it), it still loads.
    alone = shutil.move(str(folder), str(tmp_path / "elsewhere"))
    model, tokenizer = load_pretrained(alone)
    assert model.config.max_position_embeddings == 128
    assert isinstance(GatoModel.from_pretrained(alone), GatoModel)
    with pytest.raises(FileExistsError, match="not empty"):
        hub.build_upload_folder(run, alone)


def test_refresh_card_keeps_the_checkpoint_verifiable(run):
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    path = hub.refresh_card(latest, REPORT)
    assert ModelCard.load(path).data.eval_results == eval_results(REPORT)
    assert "../../../videos/gym-cartpole.gif" in path.read_text()
    manifest = verify_checkpoint(latest)
    assert manifest["step"] == 1 and "config" in manifest


def test_push_sends_that_folder(run, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, folder_path, repo_id, **kwargs):
            files = sorted(
                p.relative_to(folder_path).as_posix()
                for p in Path(folder_path).rglob("*")
                if p.is_file()
            )
            card = ModelCard.load(Path(folder_path) / "README.md")
            calls.append(("upload_folder", repo_id, files, card.data.eval_results))

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_not_a_real_token")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    hub.main(["--checkpoint", str(run), "--repo_id", "someone/tiny-gato", "--private", "true"])
    assert calls[0] == ("create_repo", "someone/tiny-gato",
                        {"repo_type": "model", "private": True, "exist_ok": True})  # fmt: skip
    _, repo, files, results = calls[1]
    assert repo == "someone/tiny-gato" and "model.safetensors" in files and "README.md" in files
    assert results == eval_results(REPORT)
    assert "pushed" in capsys.readouterr().out


def test_push_without_credentials_fails_before_building(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    # The checkpoint does not even exist: the credentials error must come first.
    with pytest.raises(SystemExit) as exit_info:
        hub.main(["--checkpoint", str(tmp_path / "absent"), "--repo_id", "a/b"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "HF_TOKEN" in err and "absent" not in err
    # Building only (no upload) needs no token; a bad repo id is named.
    with pytest.raises(SystemExit):
        hub.main(["--checkpoint", str(tmp_path), "--repo_id", "no-owner", "--upload", "false"])
    assert "owner/name" in capsys.readouterr().err


def test_hub_id_loads_from_the_local_hub_cache(run, tmp_path):
    folder = hub.build_upload_folder(run, tmp_path / "upload")
    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-gato"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    code = (
        "import sys; from gato import GatoModel; from gato.policy import GatoPolicy;"
        "from gato.policy.loading import load_pretrained, CheckpointError;"
        "m = GatoModel.from_pretrained('someone/tiny-gato');"
        "model, tok = load_pretrained('someone/tiny-gato');"
        "p = GatoPolicy.from_pretrained('someone/tiny-gato', task='gym-cartpole', prompt=None);"
        "print(type(m).__name__, model.config.max_position_embeddings, type(p).__name__)\n"
        "try:\n    load_pretrained('someone/not-cached')\n"
        "except CheckpointError as e:\n    print('refused:', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "GatoModel 128 GatoPolicy"
    assert lines[1].startswith("refused: 'someone/not-cached' is neither a local folder")

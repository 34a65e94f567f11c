"""Sharing a checkpoint on the Hugging Face hub: the folder it is served as, its card, the push.

`python eval.py push --checkpoint RUN --repo_id NAME` (or `gato eval push ...`):

1. checks for credentials first (`huggingface_hub.get_token()`: `HF_TOKEN` or `hf auth login`),
   so that a push without them fails before anything is built;
2. builds the folder the hub will serve (`build_upload_folder`): the model's
   `save_pretrained` files (config, safetensors weights, the SentencePiece model), a README.md
   whose front matter carries the run's results as the hub's `model-index`
   (`gato.training.model_card`), and the run's replay videos under `videos/`, linked from the
   card. That folder alone loads with `GatoModel.from_pretrained` and
   `GatoPolicy.from_pretrained`, as does its hub id once pushed;
3. uploads it with `HfApi.create_repo` and `HfApi.upload_folder`.

`--out DIR --upload false` stops after step 2 and keeps the folder (no credentials needed): the
way to look at what would be sent.

`refresh_card` rewrites a training checkpoint's card with its evaluation (the main job calls it
after evaluating) and re-checksums the checkpoint, so that it still verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gato.checkpoints import has_manifest, read_manifest, write_manifest
from gato.training.config import TrainConfig
from gato.training.model_card import model_card, tokens_trained

__all__ = ["PushOptions", "build_upload_folder", "push", "refresh_card"]

MODEL_FILES = ("config.json", "*.safetensors", "*.model", "generation_config.json")
"""What of a model folder the hub gets (not the README, which is rebuilt)."""


class MissingCredentialsError(RuntimeError):
    """No hub token: nothing is built or sent."""


@dataclass
class _Origin:
    """Where a model folder came from: its run (if any) and how it was trained."""

    model_dir: Path
    run_dir: Path | None
    config: TrainConfig
    command: str
    step: int


def _origin(checkpoint: str | Path) -> _Origin:
    from gato.policy.loading import resolve_model_dir

    model_dir = resolve_model_dir(checkpoint)
    step_dir = model_dir.parent
    config, command, step, run_dir = TrainConfig(), "", 0, None
    if model_dir.name == "model" and has_manifest(step_dir):
        manifest = read_manifest(step_dir)
        fields = TrainConfig.__dataclass_fields__
        saved = {k: v for k, v in manifest.get("config", {}).items() if k in fields}
        config = TrainConfig(**saved)
        step = int(manifest.get("step", 0))
        run_dir = step_dir.parent.parent  # <run>/checkpoints/step-N/model
        run_file = run_dir / "run.json"
        if run_file.is_file():
            command = json.loads(run_file.read_text()).get("command", "")
    return _Origin(model_dir, run_dir, config, command, step)


def _report(run_dir: Path | None, report: str | Path | None) -> dict[str, Any] | None:
    """The evaluation to put on the card: `report` if given, else the run's report.json."""
    path = Path(report) if report else (run_dir / "report.json" if run_dir else None)
    if path is None or not path.is_file():
        if report:
            raise FileNotFoundError(f"evaluation report {report} does not exist")
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"evaluation report {path} is not JSON ({err})") from None


def _videos(report: dict[str, Any] | None, run_dir: Path | None) -> dict[str, Path]:
    """task -> replay video file of the report's control tasks (those that exist)."""
    out = {}
    control = (report or {}).get("control") or (report if (report or {}).get("kind") else {})
    for task in (control or {}).get("tasks", []):
        video = task.get("video")
        if not video:
            continue
        for candidate in (
            Path(video),
            *([run_dir / "videos" / Path(video).name] if run_dir else []),
        ):
            if candidate.is_file():
                out[task["task"]] = candidate
                break
    return out


def build_upload_folder(
    checkpoint: str | Path, out: str | Path, report: str | Path | None = None
) -> Path:
    """Write the folder the hub would serve for `checkpoint` (a model, checkpoint or run
    folder) into `out` (created; must not hold files); returns it. `report`: an evaluation JSON
    (default: the run's report.json, if any)."""
    origin = _origin(checkpoint)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder for the upload")
    out.mkdir(parents=True, exist_ok=True)
    for pattern in MODEL_FILES:
        for path in sorted(origin.model_dir.glob(pattern)):
            shutil.copy2(path, out / path.name)
    scores = _report(origin.run_dir, report)
    links = {}
    for task, video in _videos(scores, origin.run_dir).items():
        (out / "videos").mkdir(exist_ok=True)
        shutil.copy2(video, out / "videos" / video.name)
        links[task] = f"videos/{video.name}"
    tokens = tokens_trained(origin.run_dir, origin.step) if origin.run_dir else None
    card = model_card(
        origin.config, origin.command, origin.step, scores, tokens=tokens, videos=links
    )
    (out / "README.md").write_text(card)
    return out


def refresh_card(checkpoint: str | Path, report: dict[str, Any]) -> Path:
    """Rewrite a training checkpoint's `model/README.md` with its evaluation and re-checksum the
    checkpoint's manifest (keeping its other keys); returns the card's path."""
    origin = _origin(checkpoint)
    videos = {
        task: os.path.relpath(path.resolve(), origin.model_dir.resolve())
        for task, path in _videos(report, origin.run_dir).items()
    }
    tokens = tokens_trained(origin.run_dir, origin.step) if origin.run_dir else None
    card = model_card(
        origin.config, origin.command, origin.step, report, tokens=tokens, videos=videos
    )
    path = origin.model_dir / "README.md"
    from gato.files import atomic_write_text

    atomic_write_text(path, card)
    step_dir = origin.model_dir.parent
    if origin.model_dir.name == "model" and has_manifest(step_dir):
        manifest = read_manifest(step_dir)
        extra = {k: v for k, v in manifest.items() if k not in ("format", "files")}
        write_manifest(step_dir, extra)
    return path


def push(
    checkpoint: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    report: str | Path | None = None,
    out: str | Path | None = None,
    upload: bool = True,
) -> Path:
    """Build the upload folder and send it to the hub model repository `repo_id`.

    Credentials are checked first (`MissingCredentialsError` before anything is built);
    `upload=False` only builds the folder (at `out`). Returns the folder (a temporary one, gone
    after the upload, when `out` is None).
    """
    if upload:
        from huggingface_hub import get_token

        if not get_token():
            raise MissingCredentialsError(
                "no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again "
                "(nothing was built or sent)"
            )
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise ValueError(f"repo_id must be 'owner/name', got {repo_id!r}")
    if out is None and not upload:
        raise ValueError("upload=False needs an out folder to keep what would be sent")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_upload_folder(checkpoint, out or Path(tmp) / "upload", report=report)
        if upload:
            from huggingface_hub import HfApi

            api = HfApi()
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(
                folder_path=str(folder),
                repo_id=repo_id,
                repo_type="model",
                commit_message=f"gato checkpoint from {checkpoint}",
            )
        return folder


@dataclass
class PushOptions:
    """Upload a checkpoint to the Hugging Face hub (needs HF_TOKEN or `hf auth login`)."""

    checkpoint: str
    """Model, checkpoint or run folder."""
    repo_id: str
    """Hub model repository, owner/name (created if missing)."""
    private: bool = False
    """Create the repository private."""
    report: str | None = None
    """Evaluation JSON for the card (default: the run's report.json)."""
    out: str | None = None
    """Also keep the folder that is sent here (must be new or empty)."""
    upload: bool = field(default=True)
    """Send it (--upload false: only build the folder at --out; no credentials needed)."""


def main(argv: Sequence[str] | None = None) -> None:
    """`eval.py push`: bad input ends with one `error: ...` line and exit status 2."""
    from gato.cli import parse
    from gato.policy import CheckpointError

    args = parse(PushOptions, argv, prog="eval.py push", description=PushOptions.__doc__)
    try:
        folder = push(
            args.checkpoint,
            args.repo_id,
            private=args.private,
            report=args.report,
            out=args.out,
            upload=args.upload,
        )
    except (MissingCredentialsError, CheckpointError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    where = f"https://huggingface.co/{args.repo_id}" if args.upload else str(folder)
    print(f"{'pushed' if args.upload else 'built'} {args.checkpoint} -> {where}")

"""`eval.py`: evaluate a checkpoint as a control policy, a captioner or a chat model.

    python eval.py control --checkpoint runs/gato --task gym-pendulum --episodes 50 --json out.json
    python eval.py control --checkpoint runs/gato --mixture demo --video videos/
    python eval.py caption --checkpoint runs/gato --split heldout [--source vqa]
    python eval.py caption --checkpoint runs/gato --image scene.png [--question "..."]
    python eval.py chat --checkpoint runs/gato [--prompt "..."]
    python eval.py progress --run runs/gato --episodes 4   # every kept checkpoint vs tokens
    python eval.py progress --run runs/gato --report_to tensorboard   # + runs/gato/eval_logs/

`--checkpoint` takes a `save_pretrained` model folder, a training checkpoint (`step-N/`) or a run
folder (its latest checkpoint). Bad input (a missing or corrupt checkpoint, an unknown task, an
action space the checkpoint was not trained for, an image that does not decode) ends with one
line `error: ...` naming the problem and exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from gato.cli import Command, Section, parse_command
from gato.evaluation.control import ControlEvalConfig
from gato.policy import CheckpointError, PolicyConfig
from gato.tracking import Tracker, check_installed, open_tracker

EXIT_BAD_INPUT = 2


@dataclass
class Model:
    """Which model to load, where and in what precision."""

    checkpoint: str
    """Model, checkpoint or run folder."""
    device: str | None = None
    """cpu, cuda, cuda:1 (default: cuda if any)."""
    dtype: Literal["float32", "bfloat16"] | None = None
    """Weights' precision (default: bfloat16 on CUDA, float32 on the CPU)."""
    progress: bool = True
    """Show progress bars."""


@dataclass
class Control:
    """Which control tasks, and where the report goes."""

    task: list[str] = field(default_factory=list)
    """Task id (repeatable, or several after one --task)."""
    mixture: str | None = None
    """Also every control task of this mixture recipe."""
    json: Path | None = None
    """Write the report here (+ .md and .png)."""
    video: Path | None = None
    """Write a video of the first episodes of each task here (MP4; --video_format gif)."""
    allow_untrained: bool = False
    """Evaluate tasks whose action space the checkpoint was not trained for."""


@dataclass
class Caption:
    """Caption one image, or score a split of a captioning or VQA source."""

    image: Path | None = None
    """Caption this image file."""
    question: str | None = None
    """With --image: answer this question instead."""
    split: str = "heldout"
    """Split to score (without --image)."""
    source: str = "captions"
    """captions, vqa, or a dataset folder / hub id."""
    limit: int = 200
    """Examples to score (0: all)."""
    image_size: int | None = None
    """Resize images to N x N."""
    max_new_tokens: int = 48
    """Most tokens of one caption or answer."""
    json: Path | None = None
    """Write the scores here."""


@dataclass
class Chat:
    """Continue a text prompt."""

    prompt: str | None = None
    """Answer this once (default: an interactive prompt)."""
    max_new_tokens: int = 64
    """Most tokens of one answer."""
    temperature: float = 0.0
    """Softmax temperature; 0: greedy."""


@dataclass
class Progress:
    """Score every kept checkpoint of a run against its training tokens."""

    run: Path
    """Training run folder."""
    mixture: str | None = None
    """Control tasks of this recipe (default: the run's)."""
    episodes: int = 4
    """Episodes per task."""
    max_steps: int | None = None
    """Cut episodes after this many steps."""
    caption_limit: int = 100
    """Scenes per caption or VQA split."""
    splits: list[str] = field(default_factory=lambda: ["validation", "heldout"])
    """Caption and VQA splits."""
    steps: list[int] | None = None
    """Only these checkpoints (default: all kept)."""
    progress: bool = True
    """Show progress bars."""
    out: Path | None = None
    """Write progress.{json,md,png} here (default: the run folder)."""

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.caption_limit < 1:
            raise ValueError("--episodes and --caption_limit must be at least 1")


@dataclass
class Tracking:
    """Where the scores go besides the report, as training's --report_to."""

    report_to: str = "none"
    """tensorboard, wandb or none (none, the default: an evaluation writes no logs unless asked)."""
    log_dir: Path | None = None
    """Tracker logs go to LOG_DIR/<command> (default: eval_logs/ beside --json, in --out or the
    run folder for progress, else in the current folder)."""

    def __post_init__(self) -> None:
        check_installed(self.report_to)


COMMANDS = {
    "control": Command(
        "roll out control tasks",
        (
            Model,
            Control,
            Section(ControlEvalConfig, frozenset({"policy", "video_dir", "strict_tasks"})),
            # The device decides these two: the static cache and CUDA graphs on a GPU. The
            # sampling seed follows --seed (the evaluation's, whose default is the held-out range).
            Section(PolicyConfig, frozenset({"static_cache", "cuda_graphs", "seed"})),
            Tracking,
        ),
    ),
    "caption": Command("caption images, score a split", (Model, Caption, Tracking)),
    "chat": Command("continue a text prompt", (Model, Chat)),
    "progress": Command(
        "score every kept checkpoint of a run against training tokens", (Progress, Tracking)
    ),
}
"""Subcommand -> its options; `RUNS` holds what each one does."""


def _device_and_dtype(model: Model) -> tuple[torch.device, torch.dtype]:
    device = torch.device(model.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {model.device}: CUDA is not available on this machine")
    name = model.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    return device, getattr(torch, name)


def _tracker(tracking: Tracking, command: str, beside: Path | None, *options: Any) -> Tracker:
    """The tracker of `--report_to`, logging to <log dir>/<command>; the options are the run's
    config (wandb records them)."""
    root = tracking.log_dir or (beside if beside is not None else Path()) / "eval_logs"
    config = {type(o).__name__.lower(): dataclasses.asdict(o) for o in options}
    print(f"logging to {root / command} ({tracking.report_to})")
    return open_tracker(
        tracking.report_to,
        root / command,
        name=f"eval-{command}",
        # JSON-safe values (paths as text) for wandb's config.
        config=json.loads(json.dumps(config, default=str)),
    )


def run_control(
    model: Model,
    control: Control,
    config: ControlEvalConfig,
    policy: PolicyConfig,
    tracking: Tracking | None = None,
) -> dict[str, Any]:
    from gato.evaluation.control import evaluate_control
    from gato.evaluation.report import control_table, write_control_report
    from gato.evaluation.scalars import checkpoint_step, control_rows, control_scalars

    device, dtype = _device_and_dtype(model)
    on_gpu = device.type == "cuda"
    config = replace(
        config,
        policy=replace(policy, static_cache=on_gpu, cuda_graphs=on_gpu, seed=config.seed),
        video_dir=None if control.video is None else str(control.video),
        progress=model.progress,
        strict_tasks=not control.allow_untrained,
    )
    report = evaluate_control(
        model.checkpoint,
        control.task,
        mixture=control.mixture,
        config=config,
        device=device,
        dtype=dtype,
    )
    print(control_table(report))
    if control.json is not None:
        written = write_control_report(report, control.json)
        print("wrote " + ", ".join(str(p) for p in written.values() if p is not None))
    if tracking is not None and tracking.report_to != "none":
        beside = None if control.json is None else control.json.parent
        with _tracker(tracking, "control", beside, model, control, config) as tracker:
            # At the checkpoint's training step: beside the training curves of its run.
            step = checkpoint_step(model.checkpoint)
            tracker.log(control_scalars(report), step=step)
            tracker.log_table("eval/control", *control_rows(report), step=step)
    return report


def run_caption(model: Model, args: Caption, tracking: Tracking | None = None) -> dict[str, Any]:
    from gato.evaluation.language import caption_image, evaluate_captions, question_type_table
    from gato.evaluation.loading import load_model
    from gato.evaluation.report import write_json
    from gato.evaluation.scalars import caption_scalars, checkpoint_step

    device, dtype = _device_and_dtype(model)
    loaded = load_model(model.checkpoint, device=device, dtype=dtype)[:2]
    if args.image is not None:
        text = caption_image(
            loaded, args.image, args.question, args.max_new_tokens, args.image_size
        )
        print(text)
        return {"kind": "caption", "image": str(args.image), "text": text}
    if args.question is not None:
        raise ValueError("--question needs --image")
    report = evaluate_captions(
        loaded,
        source=args.source,
        split=args.split,
        limit=args.limit or None,
        max_new_tokens=args.max_new_tokens,
        image_size=args.image_size,
        progress=model.progress,
    )
    report["checkpoint"] = str(model.checkpoint)
    print(
        f"{report['source']}/{report['split']}: {report['count']} examples, "
        f"exact match {100 * report['exact_match']:.1f}%, BLEU {report['bleu']:.1f}"
    )
    if report.get("baseline"):
        b = report["baseline"]
        print(
            f"  baseline ({b['name']}): exact match {100 * b['exact_match']:.1f}%, "
            f"BLEU {b['bleu']:.1f}"
        )
    elif report.get("baseline_note"):
        print(f"  {report['baseline_note']}")
    if report.get("by_type"):
        print(question_type_table(report))
    for e in report["examples"]:
        question = f"Q: {e['question']}  " if e["question"] else ""
        print(f"  {question}target: {_clip(e['target'])!r}  output: {_clip(e['output'])!r}")
    if args.json is not None:
        print(f"wrote {write_json(report, args.json)}")
    if tracking is not None and tracking.report_to != "none":
        beside = None if args.json is None else args.json.parent
        with _tracker(tracking, "caption", beside, model, args) as tracker:
            tracker.log(caption_scalars(report), step=checkpoint_step(model.checkpoint))
    return report


def _clip(text: str, length: int = 100) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."


def run_chat(model: Model, args: Chat) -> dict[str, Any]:
    from gato.evaluation.language import chat
    from gato.evaluation.loading import load_model

    device, dtype = _device_and_dtype(model)
    loaded = load_model(model.checkpoint, device=device, dtype=dtype)[:2]
    if args.prompt is not None:
        answer = chat(loaded, args.prompt, args.max_new_tokens, args.temperature)
        print(answer)
        return {"kind": "chat", "prompt": args.prompt, "answer": answer}
    # Interactive: every line is a fresh one-shot prompt (the model is trained on plain text,
    # not on dialogues, so there is no conversation format to keep).
    print("one prompt per line; an empty line or Ctrl-D ends", file=sys.stderr)
    turns = []
    while True:
        try:
            line = input("> ")
        except EOFError:
            break
        if not line.strip():
            break
        answer = chat(loaded, line, args.max_new_tokens, args.temperature)
        print(answer)
        turns.append({"prompt": line, "answer": answer})
    return {"kind": "chat", "turns": turns}


def run_progress(args: Progress, tracking: Tracking | None = None) -> dict[str, Any]:
    from gato.evaluation.progress import evaluate_progress, plot_progress, progress_markdown
    from gato.evaluation.report import write_json
    from gato.evaluation.scalars import progress_scalars

    report = evaluate_progress(
        args.run,
        mixture=args.mixture,
        episodes=args.episodes,
        max_steps=args.max_steps,
        caption_limit=args.caption_limit,
        splits=args.splits,
        steps=args.steps,
        progress=args.progress,
    )
    table = progress_markdown(report)
    print(table)
    out = args.out or args.run
    write_json(report, out / "progress.json")
    (out / "progress.md").write_text(table)
    plot = plot_progress(report, out / "progress.png")
    print(f"wrote {out / 'progress.json'}, {out / 'progress.md'}, {plot}")
    if tracking is not None and tracking.report_to != "none":
        with _tracker(tracking, "progress", out, args) as tracker:
            for row in report["checkpoints"]:
                # The checkpoint's training step: the curves line up with training's.
                tracker.log(progress_scalars(row), step=row["step"])
    return report


RUNS = {
    "control": run_control,
    "caption": run_caption,
    "chat": run_chat,
    "progress": run_progress,
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse and run; bad input exits with status 2 and one `error: ...` line."""
    from gato.tasks.registry import UnknownTaskError

    command, configs = parse_command(
        COMMANDS, argv, prog="eval.py", description=__doc__.split("\n\n")[0]
    )
    try:
        return RUNS[command](*configs)
    except (CheckpointError, UnknownTaskError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None

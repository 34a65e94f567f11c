"""`eval.py`: evaluate a checkpoint as a control policy, a captioner or a chat model.

    python eval.py control --checkpoint runs/gato --task gym-pendulum --episodes 50 --json out.json
    python eval.py control --checkpoint runs/gato --mixture demo --video videos/
    python eval.py caption --checkpoint runs/gato --split heldout [--source vqa]
    python eval.py caption --checkpoint runs/gato --image scene.png [--question "..."]
    python eval.py chat --checkpoint runs/gato [--prompt "..."]
    python eval.py progress --run runs/gato --episodes 4   # every kept checkpoint vs tokens

`--checkpoint` takes a `save_pretrained` model folder, a training checkpoint (`step-N/`) or a run
folder (its latest checkpoint). Bad input (a missing or corrupt checkpoint, an unknown task, an
action space the checkpoint was not trained for, an image that does not decode) ends with one
line `error: ...` naming the problem and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gato.policy import CheckpointError, PolicyConfig
from gato.tasks.scores import EVALUATION_SEED

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval.py", description=__doc__.split("\n\n")[0], formatter_class=_Formatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--checkpoint", required=True, help="model, checkpoint or run folder")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if any)")
        p.add_argument(
            "--dtype",
            choices=("float32", "bfloat16"),
            default=None,
            help="weights' precision (default: bfloat16 on CUDA, float32 on the CPU)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    control = sub.add_parser("control", help="roll out control tasks", formatter_class=_Formatter)
    common(control)
    control.add_argument("--task", action="append", default=[], help="task id (repeatable)")
    control.add_argument("--mixture", help="also every control task of this mixture recipe")
    control.add_argument("--episodes", type=int, default=50, help="episodes per task (Gato: 50)")
    control.add_argument("--num-envs", type=int, default=8, help="environments in lockstep")
    control.add_argument(
        "--seed",
        type=int,
        default=EVALUATION_SEED,
        help="episode k is seeded seed + k (default: the held-out evaluation range)",
    )
    control.add_argument("--max-steps", type=int, default=None, help="cut episodes after N steps")
    control.add_argument(
        "--temperature", type=float, default=0.0, help="0: greedy; 1: sample as Gato"
    )
    control.add_argument("--prompt-tokens", type=int, default=None, help="prompt budget")
    control.add_argument("--prompt-from", choices=("start", "end"), default="start")
    control.add_argument("--slide", choices=("shift", "recompute"), default="shift")
    control.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the policy's step: on the CPU each greedy action becomes one "
        "compiled call (~1.3x faster, after 30-90 s of compilation); on CUDA the fixed-shape "
        "step, captured as CUDA graphs (on there by default)",
    )
    control.add_argument("--json", type=Path, help="write the report here (+ .md and .png)")
    control.add_argument("--video", type=Path, help="write a GIF of one episode per task here")
    control.add_argument(
        "--allow-untrained",
        action="store_true",
        help="evaluate tasks whose action space the checkpoint was not trained for",
    )

    caption = sub.add_parser(
        "caption", help="caption images, score a split", formatter_class=_Formatter
    )
    common(caption)
    caption.add_argument("--image", type=Path, help="caption this image file")
    caption.add_argument("--question", help="with --image: answer this question instead")
    caption.add_argument("--split", default="heldout", help="split to score (without --image)")
    caption.add_argument(
        "--source", default="captions", help="captions, vqa, or a dataset folder / hub id"
    )
    caption.add_argument("--limit", type=int, default=200, help="examples to score (0: all)")
    caption.add_argument("--image-size", type=int, default=None, help="resize images to N x N")
    caption.add_argument("--max-new-tokens", type=int, default=48)
    caption.add_argument("--json", type=Path, help="write the scores here")

    chat = sub.add_parser("chat", help="continue a text prompt", formatter_class=_Formatter)
    common(chat)
    chat.add_argument("--prompt", help="answer this once (default: an interactive prompt)")
    chat.add_argument("--max-new-tokens", type=int, default=64)
    chat.add_argument("--temperature", type=float, default=0.0)

    progress = sub.add_parser(
        "progress",
        help="score every kept checkpoint of a run against training tokens",
        formatter_class=_Formatter,
    )
    progress.add_argument("--run", required=True, type=Path, help="training run folder")
    progress.add_argument("--mixture", help="control tasks of this recipe (default: the run's)")
    progress.add_argument("--episodes", type=int, default=4, help="episodes per task")
    progress.add_argument("--max-steps", type=int, default=None, help="cut episodes after N steps")
    progress.add_argument("--caption-limit", type=int, default=100, help="scenes per split")
    progress.add_argument(
        "--splits", nargs="+", default=["validation", "heldout"], help="caption/VQA splits"
    )
    progress.add_argument("--steps", type=int, nargs="+", help="only these checkpoints")
    progress.add_argument("--no-progress", action="store_true", help="no progress bars")
    progress.add_argument(
        "--out", type=Path, default=None, help="progress.{json,md,png} here (default: the run)"
    )
    return parser


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _device_and_dtype(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    return device, getattr(torch, name)


def run_control(args: argparse.Namespace) -> dict[str, Any]:
    from gato.evaluation.control import ControlEvalConfig, evaluate_control
    from gato.evaluation.report import control_table, write_control_report

    device, dtype = _device_and_dtype(args)
    on_gpu = device.type == "cuda"
    policy = PolicyConfig(
        temperature=args.temperature,
        prompt_tokens=args.prompt_tokens,
        prompt_from=args.prompt_from,
        slide=args.slide,
        seed=args.seed,
        static_cache=on_gpu,
        cuda_graphs=on_gpu,
        compile=args.compile,
    )
    config = ControlEvalConfig(
        episodes=args.episodes,
        num_envs=args.num_envs,
        seed=args.seed,
        max_steps=args.max_steps,
        policy=policy,
        video_dir=None if args.video is None else str(args.video),
        progress=not args.no_progress,
        strict_tasks=not args.allow_untrained,
    )
    report = evaluate_control(
        args.checkpoint, args.task, mixture=args.mixture, config=config, device=device, dtype=dtype
    )
    print(control_table(report))
    if args.json is not None:
        written = write_control_report(report, args.json)
        print("wrote " + ", ".join(str(p) for p in written.values() if p is not None))
    return report


def run_caption(args: argparse.Namespace) -> dict[str, Any]:
    from gato.evaluation.language import caption_image, evaluate_captions
    from gato.evaluation.loading import load_model
    from gato.evaluation.report import write_json

    device, dtype = _device_and_dtype(args)
    loaded = load_model(args.checkpoint, device=device, dtype=dtype)[:2]
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
        progress=not args.no_progress,
    )
    report["checkpoint"] = str(args.checkpoint)
    print(
        f"{report['source']}/{report['split']}: {report['count']} examples, "
        f"exact match {100 * report['exact_match']:.1f}%, BLEU {report['bleu']:.1f}"
    )
    for e in report["examples"]:
        question = f"Q: {e['question']}  " if e["question"] else ""
        print(f"  {question}target: {_clip(e['target'])!r}  output: {_clip(e['output'])!r}")
    if args.json is not None:
        print(f"wrote {write_json(report, args.json)}")
    return report


def _clip(text: str, length: int = 100) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."


def run_chat(args: argparse.Namespace) -> dict[str, Any]:
    from gato.evaluation.language import chat
    from gato.evaluation.loading import load_model

    device, dtype = _device_and_dtype(args)
    loaded = load_model(args.checkpoint, device=device, dtype=dtype)[:2]
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


def run_progress(args: argparse.Namespace) -> dict[str, Any]:
    from gato.evaluation.progress import evaluate_progress, plot_progress, progress_markdown
    from gato.evaluation.report import write_json

    if args.episodes < 1 or args.caption_limit < 1:
        raise ValueError("--episodes and --caption-limit must be at least 1")
    report = evaluate_progress(
        args.run,
        mixture=args.mixture,
        episodes=args.episodes,
        max_steps=args.max_steps,
        caption_limit=args.caption_limit,
        splits=args.splits,
        steps=args.steps,
        progress=not args.no_progress,
    )
    table = progress_markdown(report)
    print(table)
    out = args.out or args.run
    write_json(report, out / "progress.json")
    (out / "progress.md").write_text(table)
    plot = plot_progress(report, out / "progress.png")
    print(f"wrote {out / 'progress.json'}, {out / 'progress.md'}, {plot}")
    return report


COMMANDS = {
    "control": run_control,
    "caption": run_caption,
    "chat": run_chat,
    "progress": run_progress,
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse and run; bad input exits with status 2 and one `error: ...` line."""
    from gato.tasks.registry import UnknownTaskError

    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CheckpointError, UnknownTaskError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None

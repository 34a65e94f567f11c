"""The main job: build the mixture's missing data, train, evaluate, report. `python train.py`.

With no arguments it runs the CPU demo end to end on the embedded default (the `demo` mixture,
the `tiny` preset); every `TrainConfig` flag still applies, and `--build_data false` /
`--evaluate false` reduce it to plain training. The report goes next to the checkpoints:
`report.json`, `report.md`, `control.png` (expert-normalised scores) and `videos/` (a video of
each control task that can render: its first `--video_episodes` episodes).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gato.checkpoints import latest_checkpoint
from gato.training.config import TrainConfig
from gato.training.trainer import Trainer

CHAT_PROMPT = "The meaning of"


@dataclass
class PipelineConfig:
    """What happens around training."""

    build_data: bool = field(
        default=True, metadata={"help": "build the mixture's missing data before training"}
    )
    evaluate: bool = field(
        default=True, metadata={"help": "evaluate the final model and write the report"}
    )
    build_episodes: int = field(
        default=60, metadata={"help": "expert episodes collected per missing control task"}
    )
    eval_episodes: int = field(default=8, metadata={"help": "episodes per control task"})
    eval_max_steps: int | None = field(
        default=None, metadata={"help": "cut evaluation episodes after this many steps"}
    )
    caption_limit: int = field(
        default=200, metadata={"help": "held-out scenes scored for captions and VQA"}
    )
    # On the CPU, software rendering is most of a MuJoCo task's evaluation: the swing-up's 8
    # episodes took 105 s with 4 of them filmed and 12 s with none.
    video_episodes: int = field(
        default=1, metadata={"help": "episodes filmed per control task (0: no videos)"}
    )

    def __post_init__(self) -> None:
        if self.eval_episodes < 1 or self.caption_limit < 1:
            raise ValueError("eval_episodes and caption_limit must be at least 1")
        if self.video_episodes < 0:
            raise ValueError(f"video_episodes must be 0 or more, got {self.video_episodes}")


def evaluate_run(
    model_dir: Path, mixture: str, pipeline: PipelineConfig, out_dir: Path, recipe: Any = None
) -> dict[str, Any]:
    """Control, captioning, VQA and a chat sample for one model folder; writes the report.

    `recipe` is the run's `ResolvedRecipe` of `mixture` (resolved here when None)."""
    from gato.data.mixture import resolve_recipe
    from gato.evaluation import evaluate_captions, evaluate_control
    from gato.evaluation.control import mixture_control_specs
    from gato.evaluation.language import chat
    from gato.evaluation.loading import load_model
    from gato.evaluation.report import control_markdown, write_control_report, write_json

    loaded = load_model(model_dir)[:2]
    # Where the recipe points a source at its own dataset, evaluate on that one.
    recipe = resolve_recipe(recipe if recipe is not None else mixture)
    sources = {entry.task: entry.path or entry.task for entry in recipe.recipe.sources}
    report: dict[str, Any] = {"model": str(model_dir), "mixture": mixture}
    timings = {}

    control = None
    # Specs, not ids: a control source the recipe points at its own dataset takes its prompt
    # from there, as it trained (an id would look for the registry's location).
    tasks = mixture_control_specs(recipe)  # a recipe of captions or text alone has none to play
    if tasks:
        start = time.perf_counter()
        control = evaluate_control(
            model_dir,  # the folder, not the loaded pair: its manifest names the training tasks
            tasks,
            episodes=pipeline.eval_episodes,
            max_steps=pipeline.eval_max_steps,
            video_dir=str(out_dir / "videos") if pipeline.video_episodes else None,
            video_episodes=max(1, pipeline.video_episodes),
        )
        write_control_report(control, out_dir / "control.json")
        report["control"] = control
        timings["control"] = time.perf_counter() - start

    for source in ("captions", "vqa"):
        if source in sources:
            start = time.perf_counter()
            report[source] = evaluate_captions(
                loaded, sources[source], "heldout", pipeline.caption_limit
            )
            timings[source] = time.perf_counter() - start
    if "text" in sources:
        report["chat"] = {"prompt": CHAT_PROMPT, "answer": chat(loaded, CHAT_PROMPT)}
    report["seconds"] = timings
    write_json(report, out_dir / "report.json")
    table = control_markdown(control) if control is not None else "No control task in the recipe."
    (out_dir / "report.md").write_text(report_markdown(report, table))
    return report


def report_markdown(report: dict[str, Any], control_table: str) -> str:
    """The run's report as Markdown: the control table, then captions, VQA and chat."""
    from gato.evaluation.language import question_type_table

    lines = ["# gato run report", "", f"Model: `{report['model']}`", "", "## Control", ""]
    lines += [control_table.strip(), ""]
    for source, title in (("captions", "Captions"), ("vqa", "Visual question answering")):
        if source in report:
            r = report[source]
            lines += [
                f"## {title} (held-out scenes: unseen colour-shape pairs)",
                "",
                f"{r['count']} scenes: exact match {100 * r['exact_match']:.1f}%, "
                f"BLEU {r['bleu']:.1f}",
                "",
            ]
            if r.get("baseline"):
                b = r["baseline"]
                lines += [f"Baseline ({b['name']}): exact match {100 * b['exact_match']:.1f}%.", ""]
            table = question_type_table(r)
            if table:
                lines += [table, ""]
            lines += [
                "| target | output |",
                "| --- | --- |",
            ]
            lines += [f"| {e['target']} | {e['output']} |" for e in r.get("examples", [])]
            lines.append("")
    if "chat" in report:
        lines += ["## Chat", "", f"> {report['chat']['prompt']}", "", report["chat"]["answer"], ""]
    return "\n".join(lines)


def print_summary(report: dict[str, Any]) -> None:
    from gato.evaluation.report import control_table

    if "control" in report:
        print(control_table(report["control"]))
    for source in ("captions", "vqa"):
        if source in report:
            r = report[source]
            baseline = r.get("baseline")
            beside = f" (baseline {100 * baseline['exact_match']:.1f}%)" if baseline else ""
            print(
                f"{source} (held-out, {r['count']} scenes): exact match "
                f"{100 * r['exact_match']:.1f}%{beside}, BLEU {r['bleu']:.1f}"
            )
    if "chat" in report:
        print(f"chat: {report['chat']['prompt']!r} -> {report['chat']['answer']!r}")


def parse(argv: list[str] | None = None) -> tuple[TrainConfig, PipelineConfig]:
    """Command line (or `--config FILE.json|yaml`) -> the training and the pipeline configs."""
    from gato.cli import parse as parse_sections

    train, pipeline = parse_sections(
        (TrainConfig, PipelineConfig),
        argv,
        prog="train.py",
        description=__doc__.split("\n\n")[0],
        config_file=True,
    )
    return train, pipeline


def main(argv: list[str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    train, pipeline = parse(argv)
    timings: dict[str, float] = {}
    from gato.data.mixture import resolve_recipe

    recipe = resolve_recipe(train.mixture)  # once: building, training and evaluation share it
    if pipeline.build_data:
        from gato.data.build import BuildPlan, build_missing
        from gato.training.trainer import is_main_launch

        if is_main_launch():
            start = time.perf_counter()
            build_missing(recipe, BuildPlan(episodes=pipeline.build_episodes))
            timings["build_data"] = time.perf_counter() - start
    start = time.perf_counter()
    trainer = Trainer(train, recipe=recipe)
    logs = trainer.train()
    timings["train"] = time.perf_counter() - start
    result: dict[str, Any] = {"steps": trainer.step, "final_loss": logs[-1].loss if logs else None}
    if pipeline.evaluate and trainer.accelerator.is_main_process:
        out_dir = trainer.output_dir
        checkpoint = latest_checkpoint(out_dir)
        start = time.perf_counter()
        report = evaluate_run(checkpoint, train.mixture, pipeline, out_dir, recipe=recipe)
        timings["evaluate"] = time.perf_counter() - start
        timings["total"] = time.perf_counter() - started
        report["timings"] = timings
        report["train"] = {"config": asdict(train), **result}
        (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        from gato.training.hub import refresh_card

        refresh_card(checkpoint, report)  # the card's model-index: what the hub will show
        print_summary(report)
        print(f"report: {out_dir / 'report.md'}  ({timings['total'] / 60:.1f} min in all)")
        result["report"] = report
    return result

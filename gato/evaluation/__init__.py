"""Evaluation: the model as a control policy, a captioner and a chat model.

- `control`: rollouts of N episodes per task with lockstep environments, expert-normalised scores.
- `language`: greedy captioning / VQA with exact match and BLEU, one-shot chat.
- `report`: the text table, JSON, Markdown, the bar chart of normalised scores, episode GIFs.

Library entry points (what `eval.py` and the main job call): `evaluate_control`,
`evaluate_captions`, `caption_image`, `chat`, `write_control_report`.
"""

from gato.evaluation.control import (
    ControlEvalConfig,
    EpisodeStats,
    TaskResult,
    check_task_supported,
    evaluate_control,
    evaluate_task,
    mixture_control_specs,
    mixture_control_tasks,
    render_frame,
    resolve_tasks,
    run_episodes,
    summarize,
)
from gato.evaluation.language import (
    caption_context,
    caption_image,
    chat,
    evaluate_captions,
    generate_text,
    load_image,
    text_context,
)
from gato.evaluation.loading import (
    ModelLike,
    load_model,
    recipe_tasks,
    trained_recipe,
    trained_tasks,
)
from gato.evaluation.report import (
    control_markdown,
    control_table,
    plot_normalized_scores,
    write_control_report,
    write_json,
    write_video,
)

__all__ = [
    "ControlEvalConfig",
    "EpisodeStats",
    "ModelLike",
    "TaskResult",
    "caption_context",
    "caption_image",
    "chat",
    "check_task_supported",
    "control_markdown",
    "control_table",
    "evaluate_captions",
    "evaluate_control",
    "evaluate_task",
    "generate_text",
    "load_image",
    "load_model",
    "plot_normalized_scores",
    "render_frame",
    "mixture_control_specs",
    "mixture_control_tasks",
    "resolve_tasks",
    "run_episodes",
    "summarize",
    "text_context",
    "recipe_tasks",
    "trained_recipe",
    "trained_tasks",
    "write_control_report",
    "write_json",
    "write_video",
]
